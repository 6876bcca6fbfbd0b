"""A throwaway workspace that sends the sample issue over SMTP, for the sending benchmarks."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DAY = "2026-12-04"
ROOT = Path(__file__).resolve().parent.parent


def bench_env(**extra: str) -> dict[str, str]:
    """The environment of a `digest` process as a user runs it: bytecode cached."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra)
    return env


def compile_digest() -> None:
    """Write digest's bytecode once, so no timed process compiles it."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "digest")],
        check=True,
        env=bench_env(),
    )


def make_workspace(
    root: Path,
    port: int,
    total: int,
    connections: int,
    *,
    database_url: str = "",
    kind: str = "smtp",
    readers: bool = True,
) -> Any:
    """A workspace at ``root`` sending to 127.0.0.1:``port`` over ``connections`` connections,
    its issue ready and ``total`` readers inserted straight into the table (setup, not
    what is measured). ``database_url``: PostgreSQL instead of the SQLite file."""
    from _render_fixtures import sample_issue, write_issue
    from insert_subscribers import insert_subscribers

    from digest.store import open_store
    from digest.workspace import init_workspace, open_workspace

    init_workspace(root)
    text = (root / "digest.toml").read_text()
    text = text.replace('postal_address = ""', 'postal_address = "1 Press Lane"')
    # A real-looking sender and policy: `digest check` refuses the placeholders.
    text = text.replace("brief@example.com", "brief@weekly-brief.news")
    text = text.replace(
        "https://newsletter.example.com/privacy", "https://weekly-brief.news/privacy"
    )
    text = text.replace('kind = "outbox"', f'kind = "{kind}"')
    text = text.replace("port = 587", f"port = {port}").replace(
        'security = "starttls"', 'security = "none"'
    )
    text = set_connections(text, connections)
    if database_url:
        text = text.replace('[database]\nurl = ""', f'[database]\nurl = "{database_url}"', 1)
    (root / "digest.toml").write_text(text)
    ws = open_workspace(root)
    assert ws.config.sender.connections == connections
    if database_url:
        assert ws.database_url == database_url, ws.database_url
    issue = sample_issue()
    issue.status = "ready"
    write_issue(ws, issue)
    if readers:
        with open_store(ws) as store:
            insert_subscribers(store, total)
    return ws


def set_connections(text: str, connections: int) -> str:
    """digest.toml's text with ``[sender] connections`` set."""
    lines = text.splitlines()
    at = lines.index("[sender]")
    for n in range(at + 1, len(lines)):
        if lines[n].startswith("connections"):
            lines[n] = f"connections = {connections}"
            break
        if lines[n].startswith("["):
            lines.insert(at + 1, f"connections = {connections}")
            break
    return "\n".join(lines) + "\n"


def sample_message(ws: Any) -> bytes:
    from digest.issue import workspace_issue
    from digest.message import MessageBuilder
    from digest.render import Recipient, prepare

    builder = MessageBuilder.for_workspace(ws, prepare(ws, workspace_issue(ws, DAY)))
    return builder.build(Recipient("s000000001", "reader1@example.net", "Reader 1"))


def postgres_database(server: str) -> tuple[str, Any]:
    """A fresh schema on ``server``: its URL and a function that drops it."""
    import psycopg

    name = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")

    def drop() -> None:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")

    return f"{server}?options=-csearch_path%3D{name}", drop


def digest_process(root: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """Start `digest -C ROOT ARGS...` as a user would."""
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "-C", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env or bench_env(),
    )


def timed_send(root: Path, *extra: str) -> tuple[float, float, str]:
    """Wall-clock and CPU seconds of one `digest send DAY --yes` process, and its output."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = digest_process(root, "send", DAY, "--yes", *extra)
    output = proc.communicate()[0]
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if proc.returncode != 0:
        raise SystemExit(f"digest send failed:\n{output}")
    return seconds, cpu, output
