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


# -- the exports record, and the order of erasure -----------------------------------------

_EXPORTER = """
import sys
from pathlib import Path
from digest.people import rights
from digest.store import open_store
from digest.workspace import open_workspace
ws = open_workspace(Path(sys.argv[1]))
with open_store(ws) as store:
    for sid in sys.argv[3:]:
        rights.export_to_file(store, sid, Path(sys.argv[2]) / f"{sid}.json", source="race")
"""


def test_concurrent_exports_keep_every_entry_of_the_record(
    send_ws: Workspace, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    from conftest import running

    ids = add_readers(send_ws, 24)
    out = send_ws.root / "requests"
    out.mkdir()
    key = send_ws.secret(send_ws.config.consent.pseudonym_key_env).decode()
    env = {**os.environ, "DIGEST_PSEUDONYM_KEY": key}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _EXPORTER, str(send_ws.root), str(out), *ids[n::6]], env=env
        )
        for n in range(6)
    ]
    for process in processes:
        with running(process):  # type: ignore[arg-type]
            assert process.wait(timeout=120) == 0
    recorded = json.loads(send_ws.exports_record.read_text(encoding="utf-8"))
    assert sorted(recorded) == sorted(ids)
    assert all(recorded[sid] == [str((out / f"{sid}.json").resolve())] for sid in ids)


def test_a_crash_after_the_erasure_commits_leaves_no_file_behind(
    send_ws: Workspace, cli, monkeypatch
) -> None:
    from digest.people import rights

    add_readers(send_ws, 2)
    with open_store(send_ws) as store:
        sub = changes.admin_add(store, EMAIL, NAME, source="test", confirmed=True)
    assert engine.run_send(send_ws, SEND_DAY).counts["sent"] == 3
    request = send_ws.root / "requests" / "erin.json"
    assert cli("subscribers", "export", EMAIL, "-o", str(request)).exit_code == 0

    def crash(store: object) -> None:  # the process dies right after the commit
        raise KeyboardInterrupt

    monkeypatch.setattr(rights, "_scrub", crash)
    with open_store(send_ws) as store, __import__("pytest").raises(KeyboardInterrupt):
        rights.erase(store, sub.id, source="test")
    assert _files_holding(send_ws.root, EMAIL, NAME) == []
    assert not request.exists()
    assert not (send_ws.outbox_dir / SEND_DAY / f"{sub.id}.eml").exists()


def test_erasing_again_sweeps_what_an_interrupted_erasure_left(
    send_ws: Workspace, cli, monkeypatch
) -> None:
    """Files are deleted before the commit; should a copy appear or stay anyway (a
    backup restored), erasing the erased reader again deletes it instead of refusing."""
    with open_store(send_ws) as store:
        sub = changes.admin_add(store, EMAIL, NAME, source="test", confirmed=True)
    assert engine.run_send(send_ws, SEND_DAY).counts["sent"] == 1
    copy = send_ws.outbox_dir / SEND_DAY / f"{sub.id}.eml"
    kept = copy.read_bytes()
    assert cli("subscribers", "erase", EMAIL, "--yes").exit_code == 0
    copy.write_bytes(kept)  # restored from a backup
    again = cli("subscribers", "erase", sub.id, "--yes")
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["deleted"]["files"] == [f"outbox/{SEND_DAY}/{sub.id}.eml"]
    assert not copy.exists()
