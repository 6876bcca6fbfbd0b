"""Mail systems whose reports need knowledge of their own: who wrote a report, and the
layouts the general readers cannot follow.

:mod:`digest.send.intake.reports` reads a DSN part, or the text of a bounce that quotes
the server's reply beside each failed address. A few systems use words whose meaning only
the system's own documentation gives, or write a layout those readers misread. Each has
a small entry here, with the facts it relies on:

* :func:`system_of` names the system that wrote a report, for the rows of the rule table
  that apply to that system alone (the ``L`` rules of :mod:`digest.bounce_rules`):

  ======================  ===================================================================
  ``amazon-ses-inbound``  Amazon SES receiving mail for a domain (``Reporting-MTA:
                          inbound-smtp.<region>.amazonaws.com``). It accepts the message,
                          then a receipt rule's Bounce action returns it with one of SES's
                          fixed texts ("Mailbox does not exist", "Mailbox full", ...) that
                          the domain's owner picked: a filter's refusal, after DATA.
  ``powermta``            PowerMTA writes its own reading of the remote reply in each
                          recipient's DSN group: ``X-PowerMTA-BounceCategory`` (bad-mailbox,
                          bad-domain, inactive-mailbox, quota-issues, policy-related, ...).
  ``imail``               Ipswitch IMail (``X-Mailer: <SMTP32 ...>`` or ``<IMail ...>``), a
                          mailbox server: "Unknown user" and "Invalid final delivery
                          userid" are its own lookup of the mailbox, not a relayed reply.
  ``verizon``             Verizon Wireless's SMS and MMS gateways (``@vtext.com``,
                          ``@vzwpix.com``): a phone number without a subscriber is "no such
                          user here" or "No valid recipients for this MM".
  ======================  ===================================================================

* :func:`read_layout` reads the layouts that name their failed addresses in a way of
  their own:

  ================  =========================================================================
  ``fml``           fml mailing-list manager notices (``X-MLServer: fml``, a Message-ID
                    with ``.FML``): the list refused a post ("You are not a member of this
                    mailing list <list@…>", "Duplicated Message-ID in <list@…>"). The
                    address in angle brackets is the list's.
  ``apache-james``  Apache James notices (``Error message below:`` … ``Message details:``
                    … ``RCPT TO: address``, from its AbstractNotify mailet): the reply
                    follows the first marker; the failed addresses are the ``RCPT TO``
                    lines. It does not say which SMTP command the reply answered.
  ================  =========================================================================

Everything here reads headers and at most the first few kilobytes of the text, with
substring tests or bounded patterns (linear on hostile input).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

AMAZON_SES_INBOUND = "amazon-ses-inbound"
POWERMTA = "powermta"
IMAIL = "imail"
VERIZON = "verizon"
FML = "fml"
APACHE_JAMES = "apache-james"

MAX_LAYOUT_TEXT = 8000  # a layout's own words are at the top of the report

_SES_INBOUND = re.compile(
    r"reporting-mta:[ \t]{0,8}dns;[ \t]{0,8}inbound-smtp\.[a-z0-9-]{1,30}\.amazonaws\.com", re.I
)
_ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}"
)
_BRACKETED = re.compile(r"<([^<>\s@]{1,64}@[^<>\s@]{1,255})>")


@dataclass(frozen=True)
class Listed:
    """One failed address a layout names, and what the layout says of it."""

    address: str
    diagnostic: str


def system_of(msg: Message, report_fields: str = "") -> str:
    """The mail system (one of the names above) that wrote ``msg``, or "".

    ``report_fields`` is the text of its delivery-status parts, if any.
    """
    if _SES_INBOUND.search(report_fields[:MAX_LAYOUT_TEXT]):
        return AMAZON_SES_INBOUND
    if "x-powermta-" in report_fields[:MAX_LAYOUT_TEXT].lower():
        return POWERMTA
    mailer = str(msg.get("X-Mailer", "")).strip().lower()
    if mailer.startswith(("<smtp32 ", "<imail ")):
        return IMAIL
    sender = str(msg.get("From", "")).strip().lower().rstrip(">")
    if sender.endswith(("@vtext.com", ".vtext.com", "@vzwpix.com", ".vzwpix.com")):
        return VERIZON
    return ""


def read_layout(msg: Message, text: str) -> tuple[str, list[Listed]]:
    """(layout, the addresses it names) for a report in one of the layouts above, else
    ("", [])."""
    text = text[:MAX_LAYOUT_TEXT]
    if _is_fml(msg):
        return FML, _fml(text)
    if "Error message below:" in text and "Message details:" in text:
        return APACHE_JAMES, _apache_james(text)
    return "", []


def _is_fml(msg: Message) -> bool:
    return (
        "fml" in str(msg.get("X-MLServer", "")).lower()
        and ".FML" in str(msg.get("Message-ID", ""))
        and "-admin@" in str(msg.get("From", "")).lower()
    )


def _fml(text: str) -> list[Listed]:
    own = text.split("Original mail as follows:", 1)[0]
    out: list[Listed] = []
    for line in own.splitlines():
        found = _BRACKETED.search(line)
        if found and found.group(1) not in (item.address for item in out):
            out.append(Listed(found.group(1), line.strip()[:500]))
    return out


def _apache_james(text: str) -> list[Listed]:
    error, _, details = text.partition("Error message below:")[2].partition("Message details:")
    diagnostic = " ".join(error.split())[:500]
    out: list[Listed] = []
    for line in details.splitlines():
        stripped = line.strip()
        if stripped.upper().startswith("RCPT TO:"):
            out.extend(
                Listed(address, diagnostic)
                for address in _ADDRESS.findall(stripped)
                if address not in (item.address for item in out)
            )
    return out
