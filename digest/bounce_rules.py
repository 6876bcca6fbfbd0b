"""The bounce classification rules, as a table: what a refusal says about the reader.

A refusal (an SMTP reply, a DSN's ``Status`` and ``Diagnostic-Code``, the text
of a bounce) is read into a *reason* (the vocabulary of established bounce
classifiers: user unknown, host unknown, mailbox full, blocked, ...) and each
reason is hard or soft. Hard means the address cannot receive mail (it does
not exist, its domain takes no mail); soft means anything else: the mailbox is
full or suspended, the message or its sender was refused, it timed out.

How a refusal is read, in order (:func:`classify`):

1. A refusal *after the message was sent* (the reply to DATA) is never hard:
   the server accepted the recipient a moment before (``R001``).
2. Wording that blames the sender, a block list, a rate, spam, content or a
   policy, or that names a soft state of the mailbox (full, suspended), settles
   it as soft, whatever the codes say: mail systems put ``5.1.1`` on a rate
   limit and ``5.1.3`` on a Spamhaus listing (the ``S`` rules).
3. A specific RFC 3463 enhanced status code settles the rest (the ``C`` rules).
4. A generic code (``X.0.0``, ``X.5.0``, ``5.1.0``, ``5.3.0``, ``5.4.0``) or one mail
   systems are known to misuse (Exchange Online's ``5.4.1`` for an unknown
   recipient, ``5.7.1`` and ``5.4.4`` for both a block and a missing address),
   or no code at all, is refined by wording that names the address as the
   problem (the ``H`` rules), then by the SMTP reply code (RFC 5321), then by
   the code's own class; what nothing settles is soft.

The table is :data:`RULES`; ``docs/bounces.md`` shows it, made by
:func:`markdown_table` (a test keeps the two the same). Every pattern is plain
alternation over text cut to :data:`MAX_TEXT` characters, so reading any
input takes linear time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HARD = "hard"
SOFT = "soft"
IGNORED = "ignored"

MAX_TEXT = 4000  # a diagnostic longer than this is read from its start

# Reasons (the names established classifiers use) and what each means for the reader.
REASONS: dict[str, str] = {
    "userunknown": HARD,  # the mailbox does not exist
    "hostunknown": HARD,  # the domain does not exist or has no mail server
    "hasmoved": HARD,  # the address moved (551 user not local)
    "notaccept": HARD,  # the domain takes no mail (null MX, 521)
    "suspend": SOFT,  # the mailbox exists but is disabled for now
    "mailboxfull": SOFT,
    "mesgtoobig": SOFT,
    "filtered": SOFT,  # refused after DATA, or by the recipient's own filter
    "blocked": SOFT,  # the sending IP or domain is refused (block list, reputation)
    "spamdetected": SOFT,
    "policyviolation": SOFT,
    "authfailure": SOFT,  # SPF, DKIM, DMARC
    "rejected": SOFT,  # the envelope sender was refused
    "speeding": SOFT,  # rate limits, too many recipients or connections
    "expired": SOFT,  # given up after retrying
    "mailererror": SOFT,  # a local delivery program failed
    "systemerror": SOFT,
    "networkerror": SOFT,
    "contenterror": SOFT,
    "undefined": SOFT,
    "delivered": IGNORED,
}


@dataclass(frozen=True)
class Rule:
    """One rule of the table: a code, the reason it gives, what it matches, and why."""

    code: str
    reason: str
    pattern: str  # a regular expression (case-insensitive) or, for C rules, status codes
    reference: str
    example: str

    @property
    def kind(self) -> str:
        return REASONS[self.reason]


# -- the table ---------------------------------------------------------------------------

RFC3463 = "RFC 3463"
RFC5321 = "RFC 5321 4.2.3"

#: Step 1: the reply came after DATA, so the recipient had been accepted.
AFTER_DATA = Rule(
    "R001",
    "filtered",
    r"in reply to (the )?end of data|in reply to data command|after end of data|"
    r"after data command",
    "RFC 5321 3.3: RCPT accepted the recipient",
    "550 Unknown user (in reply to end of DATA command)",
)

#: Step 2: wording that blames the sender or a policy, or a soft state. First match wins.
SOFT_RULES: tuple[Rule, ...] = (
    Rule(
        "S101",
        "blocked",
        r"spamhaus|spamcop|sorbs\b|barracuda|surbl|uribl|block ?list|black ?list|"
        r"blocklisted|blacklisted|\bdnsbl\b|\brbl\b|(?<!not )listed (at|in|on|by) |reputation|"
        r"\bip\b.{0,40}\b(blocked|banned|rejected|refused|denied)|"
        r"(client|connecting) host.{0,40}\b(blocked|rejected|refused|denied)|"
        r"(access|connection) (denied|refused|blocked) (to|for|from) (ip|network|host)|"
        r"\bblocked\b|temporarily deferred|"
        r"reverse dns|\bptr\b|rdns|no reverse|helo|\bsrbounce\b",
        "RFC 3463 X.7.1; block lists",
        "553 5.1.3 http://www.spamhaus.org/query/bl?ip=192.0.2.222",
    ),
    Rule(
        "S102",
        "speeding",
        r"too many (recipients|connections|messages|mails|emails|concurrent|sessions)|"
        r"rate ?limit|rate-limit|ratelimit|throttl|this hour|per hour|daily limit|"
        r"sending limit|exceeded .{0,20}limit|slow down|\brlbounce\b",
        "RFC 3463 X.4.5, X.7.0",
        "550 5.1.1 <r@example.com> - 203.0.113.2 has sent to too many recipients this hour",
    ),
    Rule(
        "S103",
        "authfailure",
        r"\bspf\b|\bdkim\b|\bdmarc\b|authenticat|not authorized to send|"
        r"not allowed to send|is not permitted to send",
        "RFC 3463 X.7.20-X.7.26 (RFC 7372)",
        "550 5.1.0 192.0.2.222 is not allowed to send from <example.net> per its SPF Record",
    ),
    Rule(
        "S104",
        "rejected",
        r"sender (address )?(rejected|refused|denied|blocked|verify failed|unknown|invalid)|"
        r"(rejected|refused|denied|blocked|invalid|bad|unknown) sender|sender domain|"
        r"domain of sender|from address|mail from|envelope sender|return.?path|"
        r"relay(ing)? (denied|not permitted|not allowed|prohibited|access denied)|"
        r"unable to relay|not permitted to relay|no relaying",
        "RFC 3463 X.1.7, X.1.8, X.7.1",
        "550 5.1.0 <bounce@mailer.example.com> sender rejected",
    ),
    Rule(
        "S105",
        "spamdetected",
        r"\bspam\b|junk mail|unsolicited|bulk mail|\buce\b|message (content )?rejected|"
        r"content (rejected|filter)|virus|malware|phishing|suspicious|"
        r"refused due to recipient preferences|recipient preferences",
        "RFC 3463 X.7.1",
        "550 5.7.1 Message rejected as spam",
    ),
    Rule(
        "S106",
        "mailboxfull",
        r"mailbox (is )?full|over ?quota|quota|insufficient (system )?storage|"
        r"exceeded storage|storage (space|allocation)|mail ?box size|disk full|"
        r"not enough (space|storage)|mailbox has exceeded",
        "RFC 3463 X.2.2",
        "552 sorry, mailbox r@example.org is over quota temporarily (#5.1.1)",
    ),
    Rule(
        "S107",
        "suspend",
        r"(account|mailbox|user|address) (is |has been |was )?(temporarily )?"
        r"(disabled|suspended|inactive|deactivated|frozen|locked|on hold|blocked)|"
        r"discontinued|(disabled|suspended|inactive) (account|mailbox|user)",
        "RFC 3463 X.2.1",
        "550 5.2.1 The email account that you tried to reach is disabled",
    ),
    Rule(
        "S108",
        "mesgtoobig",
        r"message (size )?(is )?too (big|large)|exceeds? (the )?(maximum )?(message )?"
        r"size|size limit|message length exceeds",
        "RFC 3463 X.2.3, X.3.4",
        "552 5.3.4 Message size exceeds fixed limit",
    ),
    Rule(
        "S109",
        "policyviolation",
        r"\bpolicy\b|policies|prohibited|not accepted for policy|administrative|"
        r"greylist|graylist|try again later|temporar|please retry",
        "RFC 3463 X.7.0, X.7.1",
        "554 5.7.1 rejected by policy",
    ),
    Rule(
        "S110",
        "mailererror",
        r"procmail|maildrop|\bpipe\b|command (died|failed)|exit (status|code)|"
        r"x-unix;|unknown mailer error|mailer error",
        "RFC 3464 2.3.6 (x-unix diagnostic)",
        "x-unix; procmail: Couldn't create /var/spool/mail/neko",
    ),
    Rule(
        "S111",
        "expired",
        r"timed? ?out|time-?out|expired|too long in (the )?queue|retry time|"
        r"could not be delivered (for|within|after)|no answer from|"
        r"connection (refused|reset|lost|closed)|delivery time",
        "RFC 3463 X.4.7",
        "Connection timed out",
    ),
)

#: Step 3: enhanced status codes (RFC 3463) specific enough to settle it.
STATUS_RULES: tuple[Rule, ...] = (
    Rule("C511", "userunknown", "5.1.1", RFC3463 + " 3.2", "bad destination mailbox address"),
    Rule("C512", "hostunknown", "5.1.2", RFC3463 + " 3.2", "bad destination system address"),
    Rule("C513", "userunknown", "5.1.3", RFC3463 + " 3.2", "bad destination mailbox syntax"),
    Rule("C516", "hasmoved", "5.1.6", RFC3463 + " 3.2", "destination mailbox has moved"),
    Rule("C5110", "notaccept", "5.1.10", "RFC 7505 4.2 (null MX)", "recipient address has null MX"),
    Rule("C517", "rejected", "5.1.7 5.1.8", RFC3463 + " 3.2", "bad sender's mailbox or system"),
    Rule("C521", "suspend", "5.2.1", RFC3463 + " 3.3", "mailbox disabled, not accepting"),
    Rule("C522", "mailboxfull", "5.2.2 4.2.2", RFC3463 + " 3.3", "mailbox full"),
    Rule("C523", "mesgtoobig", "5.2.3 5.3.4", RFC3463 + " 3.3, 3.4", "message too big"),
    Rule("C532", "notaccept", "5.3.2", RFC3463 + " 3.4", "system not accepting messages"),
    Rule("C547", "expired", "4.4.7 5.4.7", RFC3463 + " 3.5", "delivery time expired"),
    Rule("C57x", "blocked", "5.7.*", RFC3463 + " 3.8", "security or policy status"),
    Rule("C4xx", "undefined", "4.*", RFC3463 + " 2", "persistent transient failure"),
    Rule("C2xx", "delivered", "2.*", RFC3463 + " 2", "success"),
)

# Codes that say too little, or that mail systems are known to misuse: wording decides.
GENERIC_STATUS = frozenset(
    {"5.0.0", "5.1.0", "5.2.0", "5.3.0", "5.4.0", "5.5.0", "5.2.1", "5.4.1", "5.4.4", "5.7.1"}
)

#: Step 4: wording that names the address or its domain as what failed.
HARD_RULES: tuple[Rule, ...] = (
    Rule(
        "H201",
        "hostunknown",
        r"host (or domain name )?(not found|unknown)|domain (name )?(not found|"
        r"does not exist|doesn't exist|is not reachable|not reachable|unknown)|"
        r"no (mx|mail exchanger|mx record|dns entry)|nxdomain|no such domain|"
        r"unrouteable mail domain|unroutable domain|name service error|"
        r"host unknown|unknown host|domain is invalid|invalid domain",
        RFC3463 + " X.1.2",
        "554 the mail could not be delivered because the domain is not reachable",
    ),
    Rule(
        "H202",
        "notaccept",
        r"does not accept (e-?)?mail|not accepting (e-?)?mail|accepts no mail|null mx|"
        r"system not accepting",
        "RFC 7505; " + RFC3463 + " X.3.2",
        "521 5.3.2 System not accepting network messages",
    ),
    Rule(
        "H203",
        "hasmoved",
        r"has moved|address (has )?changed|user not local|no longer (at|with) ",
        RFC5321 + " (551)",
        "551 User not local; please try <r@example.net>",
    ),
    Rule(
        "H204",
        "userunknown",
        r"no such (person|account|local user)|"
        r"(user|mailbox|recipient|address|account|addressee) (does not|doesn't|did not) exist|"
        r"(?<!may )not exist|recipientnotfound|(recipient|mailbox|user) not found|"
        r"not listed in (the )?(domino )?directory|not listed in public name|"
        r"name is not recognized|not recognised|invalid final delivery userid|"
        r"(doesn't|does not) have an? [\w.-]{0,40} ?account|account (is )?closed|"
        r"address (couldn't|could not|can't|cannot) be found|address not found|"
        r"(wasn't|was not|wasn’t) found at|not our customer|unknown or illegal alias",
        RFC3463 + " X.1.1: the mailbox does not exist, in so many words",
        "550 5.1.1 The email account that you tried to reach does not exist",
    ),
    Rule(
        "H205",
        "userunknown",
        r"user unknown|unknown user|no such (user|mailbox|recipient|address)|"
        r"unknown (recipient|mailbox|address|"
        r"local.?part|alias)|invalid (recipient|mailbox|address|user|account)|"
        r"recipient (address )?rejected|address rejected|mailbox (not found|unavailable|"
        r"is unavailable)|no mailbox|mailbox name not allowed|not a valid (mailbox|recipient|"
        r"user|address)|user (is )?not (found|known)|addressee unknown|unrouteable address|"
        r"unroutable address|bad destination|(is )?not a known user|no account|"
        r"no valid recipients|recipient unknown|destination address unknown",
        RFC3463 + " X.1.1, as the reply to RCPT TO (RFC 5321 3.3)",
        "550 5.5.0 Requested action not taken: mailbox unavailable",
    ),
)

RULES: tuple[Rule, ...] = (AFTER_DATA, *SOFT_RULES, *STATUS_RULES, *HARD_RULES)

# Reply codes (RFC 5321) that settle it when the wording does not.
REPLY_REASONS = {551: "hasmoved", 553: "userunknown", 521: "notaccept", 556: "notaccept"}
SOFT_REPLIES = {552: "mailboxfull"}

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_REPLY = re.compile(r"(?<![\d.])([245]\d\d)(?:[\s,;-]|$)")
_COMPILED = {rule.code: re.compile(rule.pattern, re.I) for rule in (AFTER_DATA, *SOFT_RULES)}
_COMPILED.update({rule.code: re.compile(rule.pattern, re.I) for rule in HARD_RULES})


@dataclass(frozen=True)
class Classification:
    kind: str  # hard | soft | ignored
    status: str = ""  # the enhanced status code found (5.1.1), if any
    code: int | None = None  # the SMTP reply code found, if any
    by: str = ""  # status | reply | wording | default
    reason: str = ""  # userunknown, mailboxfull, ...
    rule: str = ""  # the rule's code in the table


def _status_rule(status: str) -> Rule | None:
    for rule in STATUS_RULES:
        for pattern in rule.pattern.split():
            if pattern == status or (pattern.endswith("*") and status.startswith(pattern[:-1])):
                return rule
    return None


def _match(rules: tuple[Rule, ...], text: str) -> Rule | None:
    for rule in rules:
        if _COMPILED[rule.code].search(text):
            return rule
    return None


# With a policy code (5.7.x) only these words make the address the problem.
_PLAINLY_MISSING = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient)|does not exist|"
    r"doesn't exist|invalid recipient|recipient not found|mailbox not found",
    re.I,
)


# The SMTP command a refusal answered, as reports name it (Postfix "in reply to RCPT TO
# command", Exim "after RCPT TO:", qmail "most progress was RCPT TO response").
_COMMAND = re.compile(
    r"(?:in reply to|after|most progress was|smtp:)[ :]{0,3}(rcpt to|rcpt|mail from|"
    r"end of data|data|initial connection|helo|ehlo)\b",
    re.I,
)


def command_of(text: str) -> str:
    """RCPT, MAIL, DATA, CONN or "" (unknown): what the refusal in ``text`` answered."""
    found = _COMMAND.search(text[:MAX_TEXT])
    if found is None:
        return ""
    word = found.group(1).lower()
    if word.endswith("data"):
        return "DATA"
    return {"rcpt to": "RCPT", "rcpt": "RCPT", "mail from": "MAIL"}.get(word, "CONN")


def classify(
    status: str = "", code: int | None = None, text: str = "", *, command: str = ""
) -> Classification:
    """Hard or soft, from an enhanced status code, an SMTP reply code and a diagnostic.

    Missing codes are looked for in ``text`` ("550 5.1.1 <a@b>: user unknown"); a
    generic ``status`` gives way to a more specific one in the text. ``command`` is
    the SMTP command the refusal answered (RCPT, DATA...), read from the text when
    not given: words saying the *user* is unknown prove it only in reply to RCPT TO
    (after DATA the recipient was already accepted: a filter refused the message).
    """
    text = text[:MAX_TEXT]
    command = command.upper()[:4] or command_of(text)
    found = _STATUS.search(status)
    shown = ".".join(found.groups()) if found else ""
    if not shown or shown in GENERIC_STATUS:
        for match in _STATUS.finditer(text):
            candidate = ".".join(match.groups())
            if not shown or (shown in GENERIC_STATUS and candidate not in GENERIC_STATUS):
                shown = candidate
            if shown not in GENERIC_STATUS:
                break
    if code is None:
        reply = _REPLY.search(text.strip())
        code = int(reply.group(1)) if reply else None

    def result(rule: Rule | None, by: str, reason: str = "") -> Classification:
        reason = reason or (rule.reason if rule else "undefined")
        return Classification(REASONS[reason], shown, code, by, reason, rule.code if rule else "")

    if shown.startswith("2"):
        return result(_status_rule(shown), "status")
    plainly = _COMPILED["H204"].search(text)  # "does not exist", in so many words
    if (command == "DATA" or _COMPILED[AFTER_DATA.code].search(text)) and not plainly:
        return result(AFTER_DATA, "wording")
    soft = _match(SOFT_RULES, text)
    if soft is not None:
        return result(soft, "wording")
    rule = _status_rule(shown) if shown else None
    if shown and shown not in GENERIC_STATUS:
        if rule is not None:
            return result(rule, "status")
        if shown.startswith("5.1."):  # other bad-address codes (5.1.4, 5.1.9 ...)
            return result(None, "status", "userunknown")
        return result(None, "status")  # 5.2.x-5.6.x: the system, the network, the content
    transient = shown.startswith("4") or (code is not None and 400 <= code < 500)
    hard = _match(HARD_RULES, text)
    if hard is not None and not transient:
        # A refusal in so many words ("user unknown") without a bad-mailbox code proves
        # it only as the reply to RCPT TO, or in a notice the recipient's own system
        # wrote (no SMTP reply in it): at DATA, a filter says the same words.
        proven = hard.code != "H205" or command == "RCPT" or code is None
        if proven and (not shown.startswith("5.7.") or _PLAINLY_MISSING.search(text)):
            return result(hard, "wording")
        if hard.code == "H205" and not command:
            return result(hard, "wording", "filtered")
    if rule is not None:
        return result(rule, "status")
    if code is not None:
        if transient:
            return result(None, "reply")
        if code in REPLY_REASONS:
            return result(None, "reply", REPLY_REASONS[code])
        if code in SOFT_REPLIES:
            return result(None, "reply", SOFT_REPLIES[code])
    return result(None, "default")


def markdown_table() -> str:
    """The rules as the Markdown table docs/bounces.md shows."""
    lines = ["| rule | matches | reason | kind | reference |", "|---|---|---|---|---|"]
    for rule in RULES:
        if rule in STATUS_RULES:
            matches = "status " + ", ".join(f"`{p}`" for p in rule.pattern.split())
        else:
            matches = f"wording, e.g. “{rule.example}”"
        lines.append(
            f"| {rule.code} | {matches} | {rule.reason} | {rule.kind} | {rule.reference} |"
        )
    return "\n".join(lines)
