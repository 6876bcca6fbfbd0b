"""Fixtures for bounces: the report corpus, a reader's addresses, a throwaway Dovecot.

``report(name, ws, subscriber_id)`` fills a corpus message (tests/fixtures/bounces)
with what digest really sent that reader: the signed return path, the Message-ID,
the unsubscribe link and the reader's own unsubscribe address.

``dovecot`` starts Debian's Dovecot on a free loopback port with a throwaway
Maildir (any user logs in with password "secret"), as ../shared/CI-NOTES.md
describes. Without dovecot the tests skip with the reason, except on CI, where
they fail: CI installs it.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CORPUS = Path(__file__).parent / "fixtures" / "bounces"
SECRET = "bounce-tests-signing-key-0123456789"

__all__ = [
    "CORPUS",
    "SECRET",
    "Dovecot",
    "bounce_config",
    "edit_config",
    "corpus",
    "dovecot",
    "reader_values",
    "report",
]


def corpus(name: str) -> str:
    return (CORPUS / name).read_text(encoding="utf-8")


def edit_config(ws: Any, settings: dict[tuple[str, str], str]) -> Any:
    """Set ``key = value`` (TOML text) in ``[table]`` of digest.toml; reload the workspace."""
    lines = ws.config_path.read_text(encoding="utf-8").splitlines()
    for (table, key), value in settings.items():
        current = ""
        for index, line in enumerate(lines):
            stripped = line.strip()
            if stripped.startswith("["):
                current = stripped.split("]")[0].strip("[ ")
            elif current == table and stripped.startswith(f"{key} ="):
                lines[index] = f"{key} = {value}"
                break
        else:
            raise AssertionError(f"no {key} in [{table}] of digest.toml")
    ws.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ws.reload()


def bounce_config(ws: Any, extra: dict[tuple[str, str], str] | None = None) -> Any:
    """Turn on VERP and the per-reader mailto in ``ws`` (and ``extra`` settings); reload."""
    settings = {
        ("bounces", "return_path"): '"bounce+{token}@bounces.news.example.org"',
        ("newsletter", "unsubscribe_mailto"): '"unsubscribe+{token}@news.example.org"',
        **(extra or {}),
    }
    return edit_config(ws, settings)


def reader_values(ws: Any, subscriber_id: str, email: str, issue: str) -> dict[str, str]:
    """What digest's message to this reader carried."""
    from digest.message import message_id
    from digest.tokens import Tokens

    tokens = Tokens(ws.secret(ws.config.web.secret_key_env))
    config = ws.config
    template = config.bounces.return_path or "brief@news.example.org"
    return {
        "RETURN_PATH": template.replace("{token}", tokens.return_path(issue, subscriber_id)),
        "RCPT": email,
        "MESSAGE_ID": message_id(config, tokens, issue, subscriber_id),
        "UNSUBSCRIBE_URL": f"{config.newsletter.base_url}/unsubscribe/"
        + tokens.unsubscribe(subscriber_id),
        "MAILTO": config.newsletter.unsubscribe_mailto.replace(
            "{token}", tokens.mailto(subscriber_id)
        ),
    }


def report(name: str, values: dict[str, str]) -> bytes:
    text = corpus(name)
    for key, value in values.items():
        text = text.replace(f"%%{key}%%", value)
    assert "%%" not in text, f"{name}: a placeholder was left unfilled"
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


# -- Dovecot --------------------------------------------------------------------------


@dataclass
class Dovecot:
    host: str
    port: int
    config: Path

    def login(self, user: str = "bounces") -> imaplib.IMAP4:
        client = imaplib.IMAP4(self.host, self.port, timeout=10)
        client.login(user, "secret")
        return client

    def deliver(self, raw: bytes, user: str = "bounces", folder: str = "INBOX") -> None:
        """Put a message in a folder, as the MTA's delivery would."""
        client = self.login(user)
        try:
            client.create(folder)
            status, _ = client.append(folder, None, None, raw)
            assert status == "OK"
        finally:
            client.logout()

    def count(self, folder: str, user: str = "bounces") -> int:
        client = self.login(user)
        try:
            status, data = client.select(folder, readonly=True)
            return int(data[0]) if status == "OK" and data[0] else 0
        finally:
            client.logout()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    binary = shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None
    )
    if binary is None:
        if _on_ci():
            pytest.fail("dovecot is not installed on CI: .ci/run must install dovecot-imapd")
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd to run IMAP tests)")
    if os.geteuid() != 0:
        if _on_ci():
            pytest.fail("the IMAP tests start dovecot, which needs root on CI")
        pytest.skip("dovecot is started as root (its login process drops to the dovecot user)")
    folder = Path(tempfile.mkdtemp(prefix="digest-dovecot-"))
    folder.chmod(0o755)
    for sub in ("mail", "run"):
        (folder / sub).mkdir()
    shutil.chown(folder / "mail", "dovecot", "dovecot")
    port = _free_port()
    config = folder / "dovecot.conf"
    config.write_text(
        f"""base_dir = {folder}/run
state_dir = {folder}/run
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
first_valid_uid = 100
mail_location = maildir:{folder}/mail/%u
passdb {{
  driver = static
  args = password=secret
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={folder}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
}}
log_path = {folder}/log
""",
        encoding="utf-8",
    )
    subprocess.run([binary, "-c", str(config)], check=True)
    server = Dovecot("127.0.0.1", port, config)
    deadline = time.monotonic() + 10
    while True:
        try:
            server.login().logout()
            break
        except (OSError, imaplib.IMAP4.error):
            if time.monotonic() > deadline:
                log = (folder / "log").read_text(errors="replace")[-2000:]
                pytest.fail(f"dovecot did not answer on 127.0.0.1:{port}: {log}")
            time.sleep(0.1)
    yield server
    doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
    subprocess.run([doveadm, "-c", str(config), "stop"], check=False)
    shutil.rmtree(folder, ignore_errors=True)
