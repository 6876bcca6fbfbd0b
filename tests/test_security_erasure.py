"""Erasure leaves no copy: every file under the workspace is searched afterwards."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from _send_fixtures import SEND_DAY, add_readers

from digest import confirmation
from digest.people import changes
from digest.send import engine
from digest.store import open_store
from digest.workspace import Workspace

EMAIL = "erin.erasure@example.org"
NAME = "Erin Erasure"


def _files_holding(root: Path, *needles: str) -> list[str]:
    """Every file under ``root`` holding any of ``needles`` (any case), relative to it."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes().lower()
            if any(needle.lower().encode() in data for needle in needles):
                found.append(str(path.relative_to(root)))
    return found


def test_erasure_removes_every_file_written_for_the_reader(
    send_ws: Workspace, cli, tmp_path: Path
) -> None:
    others = add_readers(send_ws, 3)
    with open_store(send_ws) as store:
        sub = changes.request_signup(
            store, EMAIL, NAME, method="web_form", source="test", evidence={"ip": "192.0.2.5"}
        )
        asyncio.run(
            confirmation.send_confirmation(send_ws, sub.id, EMAIL, NAME, "https://x/confirm/t")
        )
        changes.confirm(store, sub.id, method="link", source="test", evidence={})
    assert engine.run_send(send_ws, SEND_DAY).counts["sent"] == 4
    inside = send_ws.root / "requests" / "erin.json"
    inside.parent.mkdir()
    outside = tmp_path / "elsewhere" / "erin.json"
    outside.parent.mkdir()
    for target in (inside, outside):
        assert cli("subscribers", "export", EMAIL, "-o", str(target)).exit_code == 0
    written = {
        f"outbox/{SEND_DAY}/{sub.id}.eml",
        f"outbox/confirmations/{sub.id}.eml",
        "requests/erin.json",
    }
    assert written <= set(_files_holding(send_ws.root, EMAIL, NAME))  # (and the database)

    result = cli("subscribers", "erase", EMAIL, "--yes")
    assert result.exit_code == 0, result.output
    receipt = json.loads(result.output)
    assert sorted(receipt["deleted"]["files"]) == sorted(written)
    assert receipt["kept"]["files outside the workspace"] == [str(outside)]
    assert _files_holding(send_ws.root, EMAIL, NAME) == []
    assert outside.exists()  # not ours to delete; the receipt names it
    # The other readers' copies are untouched.
    for other in others:
        assert (send_ws.outbox_dir / SEND_DAY / f"{other}.eml").exists()


def test_erasure_takes_the_reader_out_of_whole_list_exports(send_ws: Workspace, cli) -> None:
    add_readers(send_ws, 3)
    with open_store(send_ws) as store:
        sub = changes.admin_add(store, EMAIL, NAME, source="test", confirmed=True)
    exports = [send_ws.root / "everyone.csv", send_ws.root / "everyone.json"]
    for target in exports:
        result = cli("subscribers", "export", "--all", "-o", str(target))
        assert result.exit_code == 0, result.output
        assert EMAIL in target.read_text(encoding="utf-8")

    result = cli("subscribers", "erase", EMAIL, "--yes")
    assert result.exit_code == 0, result.output
    receipt = json.loads(result.output)
    assert sorted(receipt["deleted"]["files"]) == [
        "everyone.csv (their row)",
        "everyone.json (their row)",
    ]
    assert _files_holding(send_ws.root, EMAIL, NAME) == []
    # The others stay in both files, still readable as CSV and JSON.
    assert len(json.loads(exports[1].read_text(encoding="utf-8"))) == 3
    rows = exports[0].read_text(encoding="utf-8").splitlines()
    assert (
        rows[0].startswith("id,email") and len(rows) == 4 and sub.id not in exports[0].read_text()
    )
