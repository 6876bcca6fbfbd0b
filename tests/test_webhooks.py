"""Provider webhooks on `digest serve`, signed in the test the way each provider documents."""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import hmac
import json
import secrets
from datetime import date
from typing import Any

import httpx
import pytest
from _bounce_fixtures import edit_config
from _render_fixtures import sample_issue, write_issue
from _send_fixtures import SEND_DAY, add_readers, use_config
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from digest import clock, consent
from digest.config import Http
from digest.people import record, rights
from digest.send import engine
from digest.send.http import HttpSender
from digest.send.providers import provider_for
from digest.store import open_store, schema
from digest.web import public
from digest.workspace import Workspace

SIGNING = "webhook-tests-signing-key-0123456789"
MAILGUN_KEY = "key-mailgun-webhook-signing"
RESEND_SECRET = "whsec_" + base64.b64encode(b"resend-test-secret-32-bytes-long!").decode()


@pytest.fixture
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def hook_ws(
    send_ws: Workspace, monkeypatch: pytest.MonkeyPatch, sendgrid_key: ec.EllipticCurvePrivateKey
) -> Workspace:
    public_der = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for name, value in {
        "DIGEST_SECRET_KEY": SIGNING,
        "DIGEST_API_TOKEN": "tok-123",
        "PM_HOOK_USER": "postmark",
        "PM_HOOK_PASSWORD": "s3cret-hook",
        "SG_HOOK_KEY": base64.b64encode(public_der).decode(),
        "MG_HOOK_KEY": MAILGUN_KEY,
        "RESEND_HOOK_SECRET": RESEND_SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    ws = use_config(
        send_ws,
        """
[sender]
kind = "http"
[sender.http]
provider = "postmark"
base_url = "https://api.test"
""",
    )
    return edit_config(
        ws,
        {
            ("webhooks.postmark", "username_env"): '"PM_HOOK_USER"',
            ("webhooks.postmark", "password_env"): '"PM_HOOK_PASSWORD"',
            ("webhooks.sendgrid", "public_key_env"): '"SG_HOOK_KEY"',
            ("webhooks.mailgun", "signing_key_env"): '"MG_HOOK_KEY"',
            ("webhooks.resend", "secret_env"): '"RESEND_HOOK_SECRET"',
        },
    )


def post(ws: Workspace, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=public.app(ws))
        async with httpx.AsyncClient(transport=transport, base_url="https://n.test") as client:
            return await client.post(path, content=body, headers=headers)

    return asyncio.run(go())


def status_of(ws: Workspace, sid: str) -> str:
    with open_store(ws) as store:
        sub = record.get_subscriber(store, sid)
    assert sub is not None
    return sub.status


def sent_by_provider(ws: Workspace, ids: list[str], prefix: str) -> dict[str, str]:
    """Record the issue as sent to ``ids`` with provider message ids ``prefix-N``."""
    stamp = "2026-12-04T07:00:00.000000Z"
    provider_ids = {sid: f"{prefix}-{n}" for n, sid in enumerate(ids)}
    with open_store(ws) as store, store.begin() as conn:
        conn.execute(
            schema.issue_sends.insert().values(issue=SEND_DAY, frozen_at=stamp, audience=len(ids))
        )
        for sid, pid in provider_ids.items():
            conn.execute(
                schema.deliveries.insert().values(
                    issue=SEND_DAY,
                    subscriber_id=sid,
                    state="sent",
                    attempts=1,
                    provider_id=pid,
                    sent_at=stamp,
                    updated_at=stamp,
                )
            )
    return provider_ids


# -- Postmark: through a real send, then the bounce webhook --------------------------------


def postmark_api(ids_by_address: dict[str, str], inactive: str) -> Any:
    """Postmark's batch endpoint: one MessageID per message, 406 for an inactive recipient."""

    def handler(request: httpx.Request) -> httpx.Response:
        reply = []
        for item in json.loads(request.content):
            address = item["To"].split("<")[-1].rstrip(">")
            if address == inactive:
                reply.append(
                    {
                        "ErrorCode": 406,
                        "Message": "You tried to send to recipient(s) that have been marked as "
                        f"inactive. Found inactive addresses: {address}.",
                    }
                )
            else:
                reply.append({"ErrorCode": 0, "Message": "OK", "MessageID": f"pm-{address}"})
        return httpx.Response(200, json=reply)

    return handler


def test_postmark_bounce_webhook_takes_the_reader_out_of_the_next_issue(hook_ws: Workspace) -> None:
    ids = add_readers(hook_ws, 5)
    address = {sid: f"reader{n}@example.net" for n, sid in enumerate(ids)}
    http = Http(provider="postmark", base_url="https://api.test")

    def sender() -> HttpSender:
        handler = postmark_api({a: s for s, a in address.items()}, "reader3@example.net")
        return HttpSender(
            provider_for(http, "tok-123"), http, transport=httpx.MockTransport(handler)
        )

    engine.run_send(hook_ws, SEND_DAY, sender=sender())
    # Postmark's 406 during the send is a hard bounce at once.
    assert status_of(hook_ws, ids[3]) == "bounced"

    bounce = {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "MessageID": "pm-reader1@example.net",
        "Email": "reader1@example.net",
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "BouncedAt": "2026-12-04T07:05:00Z",
        "Inactive": True,
        "MessageStream": "broadcast",
    }
    body = json.dumps(bounce).encode()
    good = "Basic " + base64.b64encode(b"postmark:s3cret-hook").decode()
    wrong = "Basic " + base64.b64encode(b"postmark:guess").decode()
    assert post(hook_ws, "/webhooks/postmark", body, {"Authorization": wrong}).status_code == 401
    assert post(hook_ws, "/webhooks/postmark", body, {}).status_code == 401
    assert status_of(hook_ws, ids[1]) == "active"
    reply = post(hook_ws, "/webhooks/postmark", body, {"Authorization": good})
    assert reply.status_code == 200 and reply.json()["outcomes"] == {"suppressed": 1}
    again = post(hook_ws, "/webhooks/postmark", body, {"Authorization": good})
    assert again.status_code == 200 and again.json()["outcomes"] == {"duplicate": 1}
    complaint = {
        "RecordType": "SpamComplaint",
        "ID": 42,
        "Type": "SpamComplaint",
        "MessageID": "pm-reader2@example.net",
        "Email": "reader2@example.net",
    }
    post(hook_ws, "/webhooks/postmark", json.dumps(complaint).encode(), {"Authorization": good})
    # An event for a message digest never sent changes nobody.
    stranger = dict(bounce, ID=7, MessageID="pm-other-app", Email="reader4@example.net")
    reply = post(
        hook_ws, "/webhooks/postmark", json.dumps(stranger).encode(), {"Authorization": good}
    )
    assert reply.json()["outcomes"] == {"not ours": 1}
    assert [status_of(hook_ws, sid) for sid in ids] == [
        "active",
        "bounced",
        "complained",
        "bounced",
        "active",
    ]
    with open_store(hook_ws) as store:
        event = rights.history(store, record.get_subscriber(store, ids[1]))[-1]  # type: ignore[arg-type]
        assert (event.kind, event.method) == ("bounced", "provider_webhook")
        assert consent.verify(store).ok

    nxt = sample_issue(day=date(2026, 12, 11))
    nxt.status = "ready"
    write_issue(hook_ws, nxt)
    report = engine.run_send(hook_ws, "2026-12-11", sender=sender())
    assert report.audience == 2


def test_no_webhook_route_unless_configured(
    send_ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SECRET_KEY", SIGNING)
    reply = post(send_ws, "/webhooks/postmark", b"{}", {})
    assert reply.status_code in (404, 405)


# -- SendGrid: ECDSA over timestamp + body -------------------------------------------------


def sendgrid_headers(key: ec.EllipticCurvePrivateKey, body: bytes, at: float) -> dict[str, str]:
    timestamp = str(int(at))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def test_sendgrid_signed_events(
    hook_ws: Workspace, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    ids = add_readers(hook_ws, 3)
    pids = sent_by_provider(hook_ws, ids, "sg")
    events = [
        {
            "email": "reader0@example.net",
            "timestamp": int(clock.now().timestamp()),
            "event": "bounce",
            "type": "bounce",
            "status": "5.1.1",
            "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
            "sg_event_id": "ZGVsaXZlcmVkLTAtMTIzNDU2",
            "sg_message_id": f"{pids[ids[0]]}.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
            "digest_key": f"digest-{SEND_DAY}-{ids[0]}",
        },
        {
            "email": "reader1@example.net",
            "timestamp": int(clock.now().timestamp()),
            "event": "spamreport",
            "sg_event_id": "c3BhbXJlcG9ydC0xMjM0NTY",
            "sg_message_id": f"{pids[ids[1]]}.filterdrecv-1",
        },
        {"email": "reader2@example.net", "event": "delivered", "sg_event_id": "ZGVs"},
    ]
    body = json.dumps(events).encode()
    now = clock.now().timestamp()
    other = ec.generate_private_key(ec.SECP256R1())
    assert (
        post(hook_ws, "/webhooks/sendgrid", body, sendgrid_headers(other, body, now)).status_code
        == 401
    )
    tampered = body.replace(b"5.1.1", b"5.2.2", 1)
    signed = sendgrid_headers(sendgrid_key, body, now)
    assert post(hook_ws, "/webhooks/sendgrid", tampered, signed).status_code == 401
    old = sendgrid_headers(sendgrid_key, body, now - 3600)
    assert post(hook_ws, "/webhooks/sendgrid", body, old).status_code == 403
    assert [status_of(hook_ws, sid) for sid in ids] == ["active"] * 3
    reply = post(hook_ws, "/webhooks/sendgrid", body, signed)
    assert reply.status_code == 200 and reply.json()["outcomes"] == {"suppressed": 2}
    assert post(hook_ws, "/webhooks/sendgrid", body, signed).status_code == 403  # replayed
    assert [status_of(hook_ws, sid) for sid in ids] == ["bounced", "complained", "active"]


# -- Mailgun: HMAC-SHA256 of timestamp + token -----------------------------------------------


def mailgun_body(event: dict[str, Any], at: float, key: str = MAILGUN_KEY) -> bytes:
    timestamp, token = str(int(at)), secrets.token_hex(25)
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {
            "signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": event,
        }
    ).encode()


def test_mailgun_signed_events(hook_ws: Workspace) -> None:
    ids = add_readers(hook_ws, 2)
    pids = sent_by_provider(hook_ws, ids, "20261204070000.1.ABCDEF@news.example.org")
    failed = {
        "event": "failed",
        "severity": "permanent",
        "reason": "bounce",
        "id": "G9Bn5sl1TC6nu79C8C0bwg",
        "recipient": "reader0@example.net",
        "delivery-status": {
            "code": 550,
            "message": "5.1.1 The email account that you tried to reach does not exist",
            "description": "",
        },
        "message": {"headers": {"message-id": pids[ids[0]]}},
        "user-variables": {"digest-key": f"digest-{SEND_DAY}-{ids[0]}"},
    }
    now = clock.now().timestamp()
    assert (
        post(hook_ws, "/webhooks/mailgun", mailgun_body(failed, now, "wrong"), {}).status_code
        == 401
    )
    body = mailgun_body(failed, now)
    stale = mailgun_body(failed, now - 3600)
    assert post(hook_ws, "/webhooks/mailgun", stale, {}).status_code == 403
    assert post(hook_ws, "/webhooks/mailgun", body, {}).status_code == 200
    assert post(hook_ws, "/webhooks/mailgun", body, {}).status_code == 403  # the token again
    # Mailgun signs the timestamp and token, not the body: a signature copied onto
    # another event is refused because its token was used.
    copied = json.loads(body)
    copied["event-data"] = dict(failed, recipient="reader1@example.net", id="x")
    copied["event-data"]["user-variables"] = {"digest-key": f"digest-{SEND_DAY}-{ids[1]}"}
    assert post(hook_ws, "/webhooks/mailgun", json.dumps(copied).encode(), {}).status_code == 403
    assert status_of(hook_ws, ids[1]) == "active"
    assert status_of(hook_ws, ids[0]) == "bounced"
    temporary = dict(failed, severity="temporary", id="t1", recipient="reader1@example.net")
    reply = post(hook_ws, "/webhooks/mailgun", mailgun_body(temporary, now), {})
    assert reply.status_code == 200 and reply.json()["events"] == 0
    assert status_of(hook_ws, ids[1]) == "active"


# -- Resend: Svix signatures -------------------------------------------------------------


def svix_headers(body: bytes, at: float, secret: str = RESEND_SECRET) -> dict[str, str]:
    ident, timestamp = f"msg_{secrets.token_hex(8)}", str(int(at))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{ident}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "svix-id": ident,
        "svix-timestamp": timestamp,
        "svix-signature": f"v1,{base64.b64encode(b'old-key-signature').decode()} "
        f"v1,{base64.b64encode(mac).decode()}",
    }


def test_resend_svix_signed_events(hook_ws: Workspace) -> None:
    ids = add_readers(hook_ws, 2)
    pids = sent_by_provider(hook_ws, ids, "4ef9a417-02e9-4d39-ad75-9611e0fcc33c")
    event = {
        "type": "email.bounced",
        "created_at": "2026-12-04T07:05:00.000Z",
        "data": {
            "email_id": pids[ids[1]],
            "from": "The Weekly Brief <brief@news.example.org>",
            "to": ["reader1@example.net"],
            "subject": "The Weekly Brief",
            "bounce": {
                "message": "The recipient's email address does not exist.",
                "subType": "General",
                "type": "Permanent",
            },
        },
    }
    body = json.dumps(event).encode()
    now = clock.now().timestamp()
    other = "whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode()
    assert (
        post(hook_ws, "/webhooks/resend", body, svix_headers(body, now, other)).status_code == 401
    )
    signed = svix_headers(body, now)
    assert post(hook_ws, "/webhooks/resend", body + b" ", signed).status_code == 401
    assert (
        post(hook_ws, "/webhooks/resend", body, svix_headers(body, now - 3600)).status_code == 403
    )
    assert post(hook_ws, "/webhooks/resend", body, signed).status_code == 200
    assert post(hook_ws, "/webhooks/resend", body, signed).status_code == 403
    assert [status_of(hook_ws, sid) for sid in ids] == ["active", "bounced"]
    ignored = json.dumps({"type": "email.delivered", "data": {"email_id": "x"}}).encode()
    reply = post(hook_ws, "/webhooks/resend", ignored, svix_headers(ignored, now))
    assert reply.status_code == 200 and reply.json()["events"] == 0


# -- Amazon SES through SNS: RSA signatures with a certificate from an SNS address ----------

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-bounces"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123abcd.pem"


@pytest.fixture
def sns(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A signing key, its certificate served at an SNS address, and the requests made."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    from digest.send.intake.webhooks import ses

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = clock.now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    requests: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(str(request.url))
        if request.url.path.endswith(".pem"):
            return httpx.Response(200, content=cert.public_bytes(serialization.Encoding.PEM))
        return httpx.Response(200, text="<ConfirmSubscriptionResponse/>")

    monkeypatch.setattr(ses, "TRANSPORT", httpx.MockTransport(handler))
    monkeypatch.setattr(ses, "_CERTIFICATES", collections.OrderedDict())

    def sign(message: dict[str, Any], version: str = "2") -> bytes:
        from cryptography.hazmat.primitives.asymmetric import padding

        algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
        signature = key.sign(ses.canonical(message), padding.PKCS1v15(), algorithm)
        signed = dict(
            message,
            SignatureVersion=version,
            Signature=base64.b64encode(signature).decode(),
            SigningCertURL=message.get("SigningCertURL", CERT_URL),
        )
        return json.dumps(signed).encode()

    return sign, requests


def sns_notification(note: dict[str, Any], at: float, **more: Any) -> dict[str, Any]:
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "Type": "Notification",
        "MessageId": f"22b80b92-fdea-4c2c-8f9d-{secrets.token_hex(6)}",
        "TopicArn": TOPIC,
        "Message": json.dumps(note),
        "Timestamp": stamp,
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
        **more,
    }


def test_ses_notifications_through_sns(hook_ws: Workspace, sns: Any) -> None:
    from digest.message import message_id

    sign, requests = sns
    ws = edit_config(hook_ws, {("webhooks.ses", "topic_arn"): f'"{TOPIC}"'})
    ids = add_readers(ws, 3)
    bounce = {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": "reader0@example.net",
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
        },
        "mail": {
            "messageId": "0100018c-ses-id",
            "commonHeaders": {"messageId": message_id(ws.config, ws.tokens(), SEND_DAY, ids[0])},
        },
    }
    now = clock.now().timestamp()
    message = sns_notification(bounce, now)
    body = sign(message)
    assert post(ws, "/webhooks/ses", body.replace(b"5.1.1", b"5.2.2"), {}).status_code == 401
    other_topic = sign(dict(message, TopicArn="arn:aws:sns:eu-west-1:999:other"))
    assert post(ws, "/webhooks/ses", other_topic, {}).status_code == 401
    elsewhere = sign(dict(message, SigningCertURL="https://evil.example/cert.pem"))
    assert post(ws, "/webhooks/ses", elsewhere, {}).status_code == 401
    stale = sign(sns_notification(bounce, now - 3600))
    assert post(ws, "/webhooks/ses", stale, {}).status_code == 403
    assert status_of(ws, ids[0]) == "active"
    reply = post(ws, "/webhooks/ses", body, {})
    assert reply.status_code == 200 and reply.json()["outcomes"] == {"suppressed": 1}
    assert post(ws, "/webhooks/ses", body, {}).status_code == 403  # the same MessageId
    complaint = {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "reader1@example.net"}],
            "complaintFeedbackType": "abuse",
        },
        "mail": {
            "commonHeaders": {"messageId": message_id(ws.config, ws.tokens(), SEND_DAY, ids[1])}
        },
    }
    v1 = sign(sns_notification(complaint, now), version="1")
    assert post(ws, "/webhooks/ses", v1, {}).json()["outcomes"] == {"suppressed": 1}
    # A bounce for a Message-ID digest did not give that reader changes nobody.
    forged = dict(bounce, mail={"commonHeaders": {"messageId": "<2026-12-04.0000@elsewhere>"}})
    forged["bounce"] = dict(
        bounce["bounce"], bouncedRecipients=[{"emailAddress": "reader2@example.net"}]
    )
    reply = post(ws, "/webhooks/ses", sign(sns_notification(forged, now)), {})
    assert reply.json()["outcomes"] == {"not ours": 1}
    assert [status_of(ws, sid) for sid in ids] == ["bounced", "complained", "active"]
    assert requests.count(CERT_URL) == 1  # fetched once, then kept

    confirm = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e2425f004aed",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336",
        "Timestamp": sns_notification({}, now)["Timestamp"],
    }
    assert post(ws, "/webhooks/ses", sign(confirm), {}).status_code == 200
    assert requests[-1] == confirm["SubscribeURL"]


# -- proof names the reader: custom arguments and computable ids are not proof ---------------


def test_a_signed_event_for_another_address_with_alices_custom_args_changes_nobody(
    hook_ws: Workspace, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    """Another application on a shared account sets custom args; subscriber ids are public."""
    [alice] = add_readers(hook_ws, 1)
    sent_by_provider(hook_ws, [alice], "sg")
    now = clock.now().timestamp()
    sendgrid = [
        {
            "email": "mallory@evil.example",
            "timestamp": int(now),
            "event": event,
            "type": "bounce",
            "status": "5.1.1",
            "reason": "550 5.1.1 user unknown",
            "sg_event_id": f"mallory-{event}",
            "sg_message_id": "mallory-own-message.filterdrecv-1",
            "digest_key": f"digest-{SEND_DAY}-{alice}",
        }
        for event in ("bounce", "spamreport")
    ]
    body = json.dumps(sendgrid).encode()
    reply = post(hook_ws, "/webhooks/sendgrid", body, sendgrid_headers(sendgrid_key, body, now))
    assert reply.status_code == 200 and reply.json()["outcomes"] == {"unknown": 2}
    mailgun = {
        "event": "complained",
        "id": "mallory-complaint",
        "recipient": "mallory@evil.example",
        "message": {"headers": {"message-id": "<mallory@evil.example>"}},
        "user-variables": {"digest-key": f"digest-{SEND_DAY}-{alice}"},
    }
    reply = post(hook_ws, "/webhooks/mailgun", mailgun_body(mailgun, now), {})
    assert reply.status_code == 200 and reply.json()["outcomes"] == {"unknown": 1}
    # Alice's own address with only her custom args (no provider id of hers) is no proof.
    alone = dict(sendgrid[0], email="reader0@example.net", sg_event_id="alone")
    body = json.dumps([alone]).encode()
    reply = post(hook_ws, "/webhooks/sendgrid", body, sendgrid_headers(sendgrid_key, body, now))
    assert reply.json()["outcomes"] == {"not ours": 1}
    assert status_of(hook_ws, alice) == "active"


def test_an_ses_event_with_a_computed_message_id_changes_nobody(
    hook_ws: Workspace, sns: Any
) -> None:
    """The Message-ID used to be an unkeyed hash of public values: anyone could make it."""
    import hashlib as _hashlib

    sign, _ = sns
    ws = edit_config(hook_ws, {("webhooks.ses", "topic_arn"): f'"{TOPIC}"'})
    [alice] = add_readers(ws, 1)
    n = ws.config.newsletter
    unkeyed = _hashlib.blake2b(
        f"{n.list_id_value}\0{SEND_DAY}\0{alice}".encode(), digest_size=12
    ).hexdigest()
    guessed = [f"<{SEND_DAY}.{unkeyed}@{n.domain}>", f"<{SEND_DAY}.{alice}.{'0' * 24}@{n.domain}>"]
    now = clock.now().timestamp()
    for mid in guessed:
        complaint = {
            "notificationType": "Complaint",
            "complaint": {
                "complainedRecipients": [{"emailAddress": "reader0@example.net"}],
                "complaintFeedbackType": "abuse",
            },
            "mail": {"messageId": "ses-not-ours", "commonHeaders": {"messageId": mid}},
        }
        reply = post(ws, "/webhooks/ses", sign(sns_notification(complaint, now)), {})
        assert reply.status_code == 200 and reply.json()["outcomes"] == {"not ours": 1}
    assert status_of(ws, alice) == "active"


# -- the intake can't be stalled or poisoned ----------------------------------------------------


def test_deeply_nested_json_is_refused_before_it_is_parsed(hook_ws: Workspace, sns: Any) -> None:
    ws = edit_config(hook_ws, {("webhooks.ses", "topic_arn"): f'"{TOPIC}"'})
    for path in ("/webhooks/mailgun", "/webhooks/ses", "/webhooks/sendgrid"):
        reply = post(ws, path, b"[" * 50_000, {})
        assert reply.status_code in (400, 401), (path, reply.status_code)


def test_sns_certificates_are_kept_by_address_without_query_and_bounded(
    hook_ws: Workspace, sns: Any
) -> None:
    from digest.send.intake.webhooks import ses

    sign, requests = sns
    ws = edit_config(hook_ws, {("webhooks.ses", "topic_arn"): f'"{TOPIC}"'})
    now = clock.now().timestamp()
    for n in range(20):
        message = sns_notification({"notificationType": "Delivery"}, now)
        message["SigningCertURL"] = f"{CERT_URL}?nonce={n}"
        signed = json.loads(sign(message))
        signed["SigningCertURL"] = f"{CERT_URL}?nonce={n}"
        assert post(ws, "/webhooks/ses", json.dumps(signed).encode(), {}).status_code == 200
    assert requests.count(CERT_URL) == 1 and not [r for r in requests if "nonce" in r]
    for n in range(3 * ses.MAX_CERTIFICATES):  # as many certificate addresses, each kept once
        message = sns_notification({"notificationType": "Delivery"}, now)
        message["SigningCertURL"] = CERT_URL.replace(".pem", f"-{n}.pem")
        assert post(ws, "/webhooks/ses", sign(message), {}).status_code == 200
    assert len(ses._CERTIFICATES) <= ses.MAX_CERTIFICATES


def test_sendgrid_replay_guard_ignores_how_the_signature_is_written(
    hook_ws: Workspace, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import (
        decode_dss_signature,
        encode_dss_signature,
    )

    [reader] = add_readers(hook_ws, 1)
    pids = sent_by_provider(hook_ws, [reader], "sg")
    now = clock.now().timestamp()
    event = {
        "email": "reader0@example.net",
        "timestamp": int(now),
        "event": "bounce",
        "type": "blocked",
        "status": "5.7.1",
        "reason": "550 5.7.1 blocked",
        "sg_event_id": "soft-once",
        "sg_message_id": f"{pids[reader]}.filterdrecv-1",
    }
    body = json.dumps([event]).encode()
    headers = sendgrid_headers(sendgrid_key, body, now)
    assert post(hook_ws, "/webhooks/sendgrid", body, headers).status_code == 200
    signature = base64.b64decode(headers["X-Twilio-Email-Event-Webhook-Signature"])
    # Lenient base64: the same bytes, written with characters the decoder skips.
    lenient = dict(headers)
    text = headers["X-Twilio-Email-Event-Webhook-Signature"]
    lenient["X-Twilio-Email-Event-Webhook-Signature"] = text[:10] + "!" + text[10:]
    assert post(hook_ws, "/webhooks/sendgrid", body, lenient).status_code == 403
    # ECDSA malleability: (r, n - s) verifies as well as (r, s).
    r, s_value = decode_dss_signature(signature)
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    flipped = dict(headers)
    flipped["X-Twilio-Email-Event-Webhook-Signature"] = base64.b64encode(
        encode_dss_signature(r, order - s_value)
    ).decode()
    assert post(hook_ws, "/webhooks/sendgrid", body, flipped).status_code == 403


def test_a_failed_sns_subscription_confirmation_can_be_retried(
    hook_ws: Workspace, sns: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest.send.intake.webhooks import ses

    sign, requests = sns
    ws = edit_config(hook_ws, {("webhooks.ses", "topic_arn"): f'"{TOPIC}"'})
    working = ses.TRANSPORT
    assert working is not None

    def down(request: httpx.Request) -> httpx.Response:
        if "ConfirmSubscription" in str(request.url):
            return httpx.Response(503)
        return working.handle_request(request)

    confirm = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1c",
        "Token": "2336412f37fb687f5d51e6e2425f004aee",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=1",
        "Timestamp": sns_notification({}, clock.now().timestamp())["Timestamp"],
    }
    body = sign(confirm)
    monkeypatch.setattr(ses, "TRANSPORT", httpx.MockTransport(down))
    assert post(ws, "/webhooks/ses", body, {}).status_code == 502
    monkeypatch.setattr(ses, "TRANSPORT", working)
    assert post(ws, "/webhooks/ses", body, {}).status_code == 200  # SNS's retry gets through
    assert requests[-1] == confirm["SubscribeURL"]
