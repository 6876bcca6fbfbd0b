"""`digest doctor` against a DNS server on loopback (dnslib) and the real public app."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _bounce_fixtures import edit_config
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dnslib import MX, QTYPE, RCODE, RR, TXT, A, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from digest.send.doctor import ERROR, OK, WARN, public_key_text, resolver_for, run_doctor
from digest.web import public
from digest.workspace import Workspace

SIGNING = "doctor-tests-signing-key-0123456789"


class Zone(BaseResolver):  # type: ignore[misc]
    """Answers from a dict {(name, type): [rdata, ...]}; NXDOMAIN for unknown names."""

    def __init__(self, records: dict[tuple[str, str], list[object]]) -> None:
        self.records = records

    def resolve(self, request, handler):  # type: ignore[no-untyped-def]
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        kind = QTYPE[request.q.qtype]
        for rdata in self.records.get((name, kind), []):
            reply.add_answer(RR(DNSLabel(name), request.q.qtype, rdata=rdata, ttl=60))
        if not any(n == name for n, _ in self.records):
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


def _port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dns_zone() -> Iterator[dict[tuple[str, str], list[object]]]:
    records: dict[tuple[str, str], list[object]] = {}
    port = _port()
    quiet = DNSLogger("-recv,-send,-request,-reply,-truncated,-error,-data", prefix=False)
    server = DNSServer(Zone(records), port=port, address="127.0.0.1", logger=quiet)
    server.start_thread()
    records[("__port__", "")] = [port]
    yield records
    server.stop()
    server.server.server_close()


def _txt(text: str) -> TXT:
    return TXT([text[i : i + 255] for i in range(0, len(text), 255)])


@pytest.fixture
def dkim_key() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture
def doctor_ws(workspace: Workspace, monkeypatch: pytest.MonkeyPatch, dkim_key: bytes) -> Workspace:
    monkeypatch.setenv("DIGEST_SECRET_KEY", SIGNING)
    monkeypatch.setenv("DKIM_KEY", dkim_key.decode())
    return edit_config(
        workspace,
        {
            ("newsletter", "from"): '"The Weekly Brief <brief@news.example.org>"',
            ("newsletter", "base_url"): '"https://news.example.org"',
            ("sender", "kind"): '"smtp"',
            ("sender.smtp", "host"): '"mail.news.example.org"',
            ("dkim", "selector"): '"d2026"',
            ("dkim", "private_key_env"): '"DKIM_KEY"',
            ("bounces", "return_path"): '"bounce+{token}@bounces.news.example.org"',
        },
    )


def good_zone(records: dict[tuple[str, str], list[object]], dkim_key: bytes) -> None:
    records.update(
        {
            ("news.example.org", "TXT"): [_txt("v=spf1 ip4:192.0.2.0/24 -all")],
            ("bounces.news.example.org", "TXT"): [
                _txt("v=spf1 include:_spf.news.example.org -all")
            ],
            ("_spf.news.example.org", "TXT"): [_txt("v=spf1 a:mail.news.example.org ~all")],
            ("mail.news.example.org", "A"): [A("192.0.2.10")],
            ("d2026._domainkey.news.example.org", "TXT"): [
                _txt(f"v=DKIM1; k=rsa; p={public_key_text(dkim_key)}")
            ],
            ("_dmarc.news.example.org", "TXT"): [
                _txt("v=DMARC1; p=quarantine; rua=mailto:dmarc@example.org")
            ],
            ("bounces.news.example.org", "MX"): [MX("mx.news.example.org", 10)],
        }
    )


def doctor(ws: Workspace, records: dict[tuple[str, str], list[object]], app: Any = None) -> list:
    port = records[("__port__", "")][0]
    transport = httpx.ASGITransport(app=app or public.app(ws))
    return run_doctor(ws, resolver=resolver_for(f"127.0.0.1:{port}"), transport=transport)


def test_a_good_setup_is_all_ok(doctor_ws: Workspace, dns_zone: dict, dkim_key: bytes) -> None:
    good_zone(dns_zone, dkim_key)
    findings = doctor(doctor_ws, dns_zone)
    lines = [f.line() for f in findings]
    assert all(f.level == OK for f in findings), lines
    checks = {f.check for f in findings}
    assert checks == {"spf", "dkim", "dmarc", "bounce-mx", "one-click", "alignment"}
    text = "\n".join(lines)
    assert "covers the SMTP host mail.news.example.org (192.0.2.10)" in text
    assert "p=quarantine" in text
    assert "mx.news.example.org" in text


def test_a_broken_setup_says_what_to_fix(
    doctor_ws: Workspace, dns_zone: dict, dkim_key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    dns_zone.update(
        {
            ("news.example.org", "TXT"): [_txt("v=spf1 ip4:198.51.100.0/24 -all")],
            ("bounces.news.example.org", "TXT"): [_txt("v=spf1 ip4:198.51.100.7 -all")],
            ("mail.news.example.org", "A"): [A("192.0.2.10")],
            ("d2026._domainkey.news.example.org", "TXT"): [
                _txt(f"v=DKIM1; k=rsa; p={public_key_text(other)}")
            ],
        }
    )
    ws = edit_config(doctor_ws, {("newsletter", "base_url"): '"http://news.example.org"'})
    # The server was given another signing key than the sender's.
    monkeypatch.setenv("DIGEST_SECRET_KEY", "another-key-entirely-Qm7vK2pX9wR4tZ8c")
    server = public.app(ws)
    monkeypatch.setenv("DIGEST_SECRET_KEY", SIGNING)
    findings = doctor(ws, dns_zone, server)
    errors = {(f.check, f.message) for f in findings if f.level == ERROR}
    messages = "\n".join(m for _, m in errors)
    assert "bounces.news.example.org's SPF does not cover the SMTP host" in messages
    assert "does not match the configured private key" in messages
    assert "no DMARC record for news.example.org" in messages
    assert "bounces.news.example.org has no MX record" in messages
    assert "is not https" in messages
    assert "refused a link signed here" in messages
    assert all(f.fix for f in findings if f.level != OK)


def test_dmarc_none_and_misaligned_dkim_warn_or_fail(
    doctor_ws: Workspace, dns_zone: dict, dkim_key: bytes
) -> None:
    good_zone(dns_zone, dkim_key)
    dns_zone[("_dmarc.news.example.org", "TXT")] = [_txt("v=DMARC1; p=none")]
    dns_zone[("d2026._domainkey.mailer.example.com", "TXT")] = [
        _txt(f"v=DKIM1; p={public_key_text(dkim_key)}")
    ]
    ws = edit_config(
        doctor_ws,
        {
            ("dkim", "domain"): '"mailer.example.com"',
            ("bounces", "return_path"): '"bounce+{token}@bounces.elsewhere.example"',
        },
    )
    dns_zone[("bounces.elsewhere.example", "MX")] = [MX("mx.elsewhere.example", 5)]
    dns_zone[("bounces.elsewhere.example", "TXT")] = [_txt("v=spf1 a:mail.news.example.org -all")]
    found = {(f.check, f.level) for f in doctor(ws, dns_zone)}
    assert ("dmarc", WARN) in found
    assert ("alignment", ERROR) in found  # DKIM d= on another domain
    assert ("alignment", WARN) in found  # return path on another domain


def test_doctor_command_prints_one_line_per_finding(
    doctor_ws: Workspace, dns_zone: dict, dkim_key: bytes
) -> None:
    from conftest import Cli

    good_zone(dns_zone, dkim_key)
    ws = edit_config(doctor_ws, {("newsletter", "base_url"): '"https://127.0.0.1:9"'})
    port = dns_zone[("__port__", "")][0]
    result = Cli(ws.root)("doctor", "--nameserver", f"127.0.0.1:{port}")
    assert result.exit_code == 1  # nothing listens for the one-click POST
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("ok    spf")
    assert any(line.startswith("error one-click") and "did not answer" in line for line in lines)


def test_alignment_reads_the_public_suffix_list(
    doctor_ws: Workspace, dns_zone: dict, dkim_key: bytes
) -> None:
    """Two companies under co.uk do not align, though they share the last two labels."""
    good_zone(dns_zone, dkim_key)
    ws = edit_config(
        doctor_ws,
        {
            ("newsletter", "from"): '"The Weekly Brief <brief@news.example.co.uk>"',
            ("dkim", "domain"): '"mailer.other.co.uk"',
            ("bounces", "return_path"): '"bounce+{token}@bounces.news.example.co.uk"',
        },
    )
    found = {(f.level, f.message) for f in doctor(ws, dns_zone) if f.check == "alignment"}
    assert (ERROR, "DKIM d=mailer.other.co.uk does not align with From (news.example.co.uk)") in (
        found
    )
    assert (OK, "the return path domain bounces.news.example.co.uk aligns with From") in found
