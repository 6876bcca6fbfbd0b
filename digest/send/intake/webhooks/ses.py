"""Amazon SES through SNS: bounce and complaint notifications, signed by SNS.

SNS signs each message with the private key of a certificate it names in
``SigningCertURL``; the signature (``SignatureVersion`` 1: SHA1withRSA, 2:
SHA256withRSA) covers a canonical string of the message's fields, each name
and value on its own line: ``Message``, ``MessageId``, ``Subject`` (if any),
``Timestamp``, ``TopicArn``, ``Type`` for a notification, and ``Message``,
``MessageId``, ``SubscribeURL``, ``Timestamp``, ``Token``, ``TopicArn``,
``Type`` for a subscription confirmation. digest accepts a certificate only
from an ``https://sns.<region>.amazonaws.com/....pem`` address, fetched over
HTTPS (httpx checks the server's certificate, so the file is AWS's), refuses
any topic but ``[webhooks.ses] topic_arn``, a stale ``Timestamp`` and a
``MessageId`` seen before, and confirms a subscription to that topic by
visiting its ``SubscribeURL`` (same host rule).

The SES notification (``notificationType`` or ``eventType``) ``Bounce`` is
hard for ``bounceType`` Permanent and soft otherwise; ``Complaint`` is a
complaint unless its feedback type is ``not-spam``. The reader is proven ours
by the Message-ID digest gave the message (``mail.commonHeaders.messageId``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from digest.config import Config
from digest.send.intake.webhooks.common import Event, Refused, fresh, load_json, raw_json

# Certificates and confirmations are fetched with this transport (None: the network);
# tests set an httpx.MockTransport.
TRANSPORT: httpx.BaseTransport | None = None
# SNS signing certificates, by address without its query string; the newest few kept.
_CERTIFICATES: OrderedDict[str, x509.Certificate] = OrderedDict()
MAX_CERTIFICATES = 8
_SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_FIELDS["UnsubscribeConfirmation"] = _FIELDS["SubscriptionConfirmation"]


def secrets(config: Config) -> str:
    return config.webhooks.ses.topic_arn


def canonical(message: Mapping[str, Any]) -> bytes:
    """The string SNS signs: each present field's name and value, one per line."""
    lines = []
    for name in _FIELDS[str(message["Type"])]:
        if name == "Subject" and message.get("Subject") is None:
            continue
        lines += [name, str(message[name])]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _sns_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" and bool(_SNS_HOST.fullmatch(parts.hostname or ""))


def _certificate(url: str) -> x509.Certificate:
    """The certificate at an SNS address, fetched once and kept (a few, newest first).

    It is fetched from the address without its query string or fragment, and kept under
    that: a query string varied per request neither fetches again nor fills the cache.
    """
    parts = urlsplit(url)
    if not _sns_url(url) or not parts.path.endswith(".pem"):
        raise Refused(401, "ses: the signing certificate is not on an SNS address")
    address = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    cached = _CERTIFICATES.get(address)
    if cached is None:
        try:
            with httpx.Client(transport=TRANSPORT, timeout=10) as client:
                reply = client.get(address)
            reply.raise_for_status()
            cached = x509.load_pem_x509_certificate(reply.content)
        except (httpx.HTTPError, ValueError):
            raise Refused(401, "ses: the signing certificate could not be fetched") from None
        _CERTIFICATES[address] = cached
        while len(_CERTIFICATES) > MAX_CERTIFICATES:
            _CERTIFICATES.popitem(last=False)
    _CERTIFICATES.move_to_end(address)
    return cached


def verify(config: Config, headers: Mapping[str, str], body: bytes, now: float) -> str:
    message = load_json(body, "ses")  # SNS signs fields inside the body
    try:
        kind = str(message["Type"])
        signed = canonical(message)
        signature = base64.b64decode(str(message["Signature"]))
        version = str(message.get("SignatureVersion", "1"))
        url = str(message["SigningCertURL"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise Refused(401, "ses: not a signed SNS message") from None
    if message.get("TopicArn") != config.webhooks.ses.topic_arn:
        raise Refused(401, "ses: the message is from another SNS topic")
    if kind not in _FIELDS or version not in ("1", "2"):
        raise Refused(401, f"ses: unknown SNS message type {kind!r} or signature version")
    key = _certificate(url).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Refused(401, "ses: the signing certificate does not hold an RSA key")
    algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()  # version 1 is SHA1withRSA
    try:
        key.verify(signature, signed, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise Refused(401, "ses: the signature does not match") from None
    try:
        when = datetime.fromisoformat(str(message["Timestamp"]).replace("Z", "+00:00"))
    except ValueError:
        raise Refused(401, "ses: the message has no valid timestamp") from None
    fresh(str(when.timestamp()), now, config.webhooks.tolerance_seconds, "ses")
    return str(message["MessageId"])


def events(body: bytes) -> list[Event]:
    """The bounces and complaints of a verified message; a subscription is confirmed here."""
    message = load_json(body, "ses")
    if message["Type"] == "SubscriptionConfirmation":
        url = str(message["SubscribeURL"])
        if _sns_url(url):
            try:
                with httpx.Client(transport=TRANSPORT, timeout=10) as client:
                    client.get(url).raise_for_status()
            except httpx.HTTPError:
                # Not confirmed: answered 502 (its replay marker dropped), so SNS sends
                # the confirmation again.
                raise Refused(502, "ses: confirming the subscription failed") from None
        return []
    if message["Type"] != "Notification":
        return []
    note: dict[str, Any] = json.loads(message["Message"])
    kind_name = str(note.get("notificationType") or note.get("eventType") or "")
    mail = note.get("mail") or {}
    ours = str((mail.get("commonHeaders") or {}).get("messageId", ""))
    common = {"provider_id": str(mail.get("messageId", "")), "message_id": ours}
    raw = raw_json(note)  # once per notification, shared by its recipients
    out = []
    if kind_name == "Bounce":
        bounce = note.get("bounce") or {}
        kind = "hard" if bounce.get("bounceType") == "Permanent" else "soft"
        for person in bounce.get("bouncedRecipients") or []:
            address = str(person.get("emailAddress", ""))
            out.append(
                Event(
                    kind,
                    address,
                    raw,
                    event_id=f"{message['MessageId']}:{address}",
                    status=str(person.get("status", ""))[:16],
                    diagnostic=str(person.get("diagnosticCode", "") or bounce.get("bounceSubType"))[
                        :300
                    ],
                    **common,
                )
            )
    elif kind_name == "Complaint":
        complaint = note.get("complaint") or {}
        kind = "ignored" if complaint.get("complaintFeedbackType") == "not-spam" else "complaint"
        for person in complaint.get("complainedRecipients") or []:
            address = str(person.get("emailAddress", ""))
            out.append(
                Event(
                    kind,
                    address,
                    raw,
                    event_id=f"{message['MessageId']}:{address}",
                    diagnostic=f"complaint: {complaint.get('complaintFeedbackType', 'abuse')}",
                    **common,
                )
            )
    return out
