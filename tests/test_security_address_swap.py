"""An address swapped in the subscribers table is never mailed on someone else's consent.

The consent events name a reader by a keyed pseudonym of the address they
consented with. Someone with write access to the database who changes a
row's ``email`` (and ``email_key``) to a stranger's makes `consent verify`
fail (see test_security_ledger.py), and `send` refuses that row: it checks
the whole audience once per run, before the first message.
"""

from __future__ import annotations

from pathlib import Path

from _send_fixtures import SEND_DAY, add_readers

from digest.send import engine
from digest.store import open_store
from digest.workspace import Workspace

STRANGER = "stranger@evil.example"


def _outbox(ws: Workspace) -> list[Path]:
    return sorted((ws.outbox_dir / SEND_DAY).glob("*.eml"))


def _swap(ws: Workspace, key_too: str, address_only: str) -> None:
    with open_store(ws) as store, store.engine.begin() as conn:
        key = store.pseudonym(STRANGER)
        conn.exec_driver_sql(
            f"UPDATE subscribers SET email = '{STRANGER}', email_key = '{key}'"
            f" WHERE id = '{key_too}'"
        )
        conn.exec_driver_sql(
            f"UPDATE subscribers SET email = 'other@evil.example' WHERE id = '{address_only}'"
        )


def test_send_refuses_to_mail_a_swapped_address(send_ws: Workspace, cli) -> None:
    ids = sorted(add_readers(send_ws, 4))
    _swap(send_ws, ids[1], ids[2])
    result = cli("send", SEND_DAY, "--yes")
    assert result.exit_code == 0, result.output
    assert sorted(p.stem for p in _outbox(send_ws)) == [ids[0], ids[3]]
    assert not any(b"evil.example" in p.read_bytes() for p in _outbox(send_ws))
    assert "2 readers not mailed: their address is not the one their consent names" in (
        result.output
    )
    assert "digest consent verify" in result.output
    problems = engine.delivery_stats(send_ws, SEND_DAY)["problems"]
    assert [(p["state"], p["count"]) for p in problems] == [("skipped", 2)]
    assert "does not match its consent record" in problems[0]["reason"]


def test_a_resumed_send_checks_again(send_ws: Workspace) -> None:
    ids = sorted(add_readers(send_ws, 4))
    first = engine.run_send(send_ws, SEND_DAY, limit=1)  # freezes all four, mails ids[0]
    assert first.counts["sent"] == 1
    _swap(send_ws, ids[2], ids[3])
    report = engine.run_send(send_ws, SEND_DAY)
    assert report.complete and report.unbound == 2
    assert report.counts == {**report.counts, "sent": 2, "skipped": 2}
    assert sorted(p.stem for p in _outbox(send_ws)) == [ids[0], ids[1]]


def test_send_due_says_so_too(send_ws: Workspace, cli) -> None:
    ids = sorted(add_readers(send_ws, 3))
    _swap(send_ws, ids[0], ids[1])
    due = cli("--now", "2026-12-04T07:01:00+00:00", "send", "--due")
    assert due.exit_code == 0, due.output
    assert "2 readers not mailed: their address is not the one their consent names" in (due.output)
    assert [p.stem for p in _outbox(send_ws)] == [ids[2]]
