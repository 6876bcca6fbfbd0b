"""Fixtures for sending: a real aiosmtpd server on loopback, scriptable per recipient.

``smtp_sink`` runs an aiosmtpd Controller on 127.0.0.1 in a thread. Its handler
records every accepted message and can be told to answer a chosen recipient
with a list of replies (``sink.script("a@x.test", "451 4.7.1 later")``), to drop
the connection in the middle of DATA for a recipient, to require STARTTLS and
AUTH. ``tls_files`` makes a throwaway CA-less self-signed certificate.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

__all__ = [
    "SmtpSink",
    "free_port",
    "smtp_sink",
    "any_sink",
    "tls_files",
    "TlsFiles",
    "send_ws",
    "add_readers",
    "use_config",
    "SEND_DAY",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt: str
    data: bytes
    utf8: bool = False  # MAIL FROM carried SMTPUTF8

    @property
    def subject(self) -> str:
        return str(message_from_bytes(self.data)["Subject"])


@dataclass
class SinkHandler:
    received: list[Received] = field(default_factory=list)
    scripts: dict[str, list[str]] = field(default_factory=dict)
    drop_data: set[str] = field(default_factory=set)
    connections: int = 0
    delay: float = 0.0
    stall: float = 0.0  # seconds MAIL FROM waits before its reply (a server gone quiet)
    pipelining: bool = False
    # Commands that were already waiting when the one before them was answered: the
    # client did not wait for a reply (RFC 2920 pipelining), counted per command.
    ahead: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _ahead(self, server: Any, command: str) -> None:
        if server._reader is not None and server._reader._buffer:
            with self.lock:
                self.ahead[command] = self.ahead.get(command, 0) + 1

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        self._ahead(server, "MAIL")
        if self.stall:
            await asyncio.sleep(self.stall)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        with self.lock:
            self.connections += 1
        if self.pipelining:  # aiosmtpd reads commands in order, so it can offer RFC 2920
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        self._ahead(server, "RCPT")
        with self.lock:
            script = self.scripts.get(address)
            if script:
                reply = script.pop(0)
                if reply != "250 OK":
                    return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self._ahead(server, "after the message")
        if self.delay:
            await asyncio.sleep(self.delay)
        for rcpt in envelope.rcpt_tos:
            if rcpt in self.drop_data:
                self.drop_data.discard(rcpt)
                with self.lock:
                    self.received.append(Received(envelope.mail_from, rcpt, envelope.content))
                server.transport.close()
                return "250 OK (never heard)"
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.received.append(
                    Received(envelope.mail_from, rcpt, envelope.content, envelope.smtp_utf8)
                )
        return f"250 OK queued as Q{len(self.received)}"


class _Controller(Controller):
    """aiosmtpd's Controller, closing the connections still open when it stops.

    Its own stop cancels the tasks and ends the loop: a connection a client had
    not closed yet (a send killed a moment before) keeps its socket until the
    garbage collector finds it, and warns during whatever test runs then.
    """

    def factory(self) -> Any:
        server = super().factory()
        self.servers = [*getattr(self, "servers", []), server]
        return server

    def stop(self, no_assert: bool = False) -> None:
        async def close_all() -> None:
            for server in getattr(self, "servers", []):
                for name in ("transport", "_original_transport"):  # the latter under STARTTLS
                    transport = getattr(server, name, None)
                    if transport is not None and not transport.is_closing():
                        transport.abort()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            for _ in range(5):  # the loop closes each socket on one of its next turns
                await asyncio.sleep(0)

        if self._thread is not None:
            asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(10)
        self.servers = []
        super().stop(no_assert)


class SmtpSink:
    """A running aiosmtpd server: ``host``, ``port``, ``received``, ``script(...)``."""

    def __init__(
        self,
        *,
        tls: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
        utf8: bool = False,
    ) -> None:
        self.handler = SinkHandler()
        self.host = "127.0.0.1"
        self.port = free_port()
        kwargs: dict[str, Any] = {"enable_SMTPUTF8": utf8}
        if tls is not None:
            kwargs["tls_context"] = tls
            kwargs["require_starttls"] = True
        if auth is not None:
            user, password = auth

            def authenticator(
                server: Any, session: Any, envelope: Any, mechanism: str, data: Any
            ) -> AuthResult:
                ok = isinstance(data, LoginPassword) and (
                    data.login.decode(),
                    data.password.decode(),
                ) == (user, password)
                return AuthResult(success=ok, handled=False)

            kwargs["authenticator"] = authenticator
            kwargs["auth_required"] = True
            kwargs["auth_require_tls"] = tls is not None
        self.controller = _Controller(
            self.handler, hostname=self.host, port=self.port, ready_timeout=10, **kwargs
        )

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def recipients(self) -> list[str]:
        return [r.rcpt for r in self.handler.received]

    def script(self, address: str, *replies: str) -> None:
        self.handler.scripts[address] = list(replies)

    def drop_during_data(self, address: str) -> None:
        self.handler.drop_data.add(address)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(params=[True, False], ids=["smtputf8", "ascii-only"])
def any_sink(request: pytest.FixtureRequest) -> Iterator[SmtpSink]:
    """A sink that offers SMTPUTF8 (RFC 6531), then one that does not."""
    sink = SmtpSink(utf8=request.param).start()
    yield sink
    sink.stop()


@dataclass
class TlsFiles:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.cert))
        return context


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    """A self-signed certificate for 127.0.0.1 and localhost, made on the spot."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TlsFiles(cert_path, key_path)


# -- a workspace with a ready issue and subscribers, on each backend ----------------------

SEND_DAY = "2026-12-04"


def add_readers(ws: Any, count: int, start: int = 0) -> list[str]:
    """``count`` confirmed subscribers reader{n}@example.net; returns their ids."""
    from digest.people.changes import admin_add
    from digest.store import open_store

    ids = []
    with open_store(ws) as store:
        for n in range(start, start + count):
            sub = admin_add(
                store,
                f"reader{n}@example.net",
                f"Reader {n}" if n % 2 else None,
                source="test",
                confirmed=True,
            )
            ids.append(sub.id)
    return ids


def use_config(ws: Any, text: str) -> Any:
    """Append TOML tables to digest.toml (replacing [sender] defaults) and reload."""
    path = ws.config_path
    config = path.read_text(encoding="utf-8")
    head, sep, _ = config.partition("[sender]")
    tail = config[config.index("[dkim]") :] if "[dkim]" in config else ""
    path.write_text(head + text.strip() + "\n\n" + tail, encoding="utf-8")
    return ws.reload()


def use_smtp(ws: Any, sink: SmtpSink, connections: int = 2) -> Any:
    """Send over plain SMTP to ``sink`` on loopback with ``connections`` connections."""
    return use_config(
        ws,
        f"""
[sender]
kind = "smtp"
connections = {connections}
[sender.smtp]
host = "127.0.0.1"
port = {sink.port}
security = "none"
""",
    )


@pytest.fixture
def send_ws(database_url: str, workspace: Any) -> Any:
    """A workspace (SQLite or PostgreSQL) with a ready six-article issue dated 2026-12-04.

    It has its own From and privacy policy: `digest check` refuses a real (SMTP or
    HTTP) send from the placeholders `digest init` writes.
    """
    from _render_fixtures import sample_issue, set_config, write_issue

    workspace = set_config(workspace, "brief@example.com", "brief@weekly-brief.news")
    workspace = set_config(
        workspace, "https://newsletter.example.com/privacy", "https://weekly-brief.news/privacy"
    )
    issue = sample_issue()
    issue.status = "ready"
    write_issue(workspace, issue)
    return workspace
