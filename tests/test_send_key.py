"""One signing key story: `digest send` refuses to sign with a key other than the one
that signed the last issue, naming where each key comes from and how to put it right.

The trap it closes: week 1 sent from a shell with DIGEST_SECRET_KEY exported, week 2 from
cron without it, signed with the workspace's key file; every unsubscribe link of one of
the two weeks then fails on `digest serve`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _render_fixtures import sample_issue, write_issue
from _send_fixtures import add_readers
from conftest import Cli

from digest.schedule import recipes
from digest.workspace import Workspace

EXPORTED = "the-key-exported-in-the-shell-0123456789"
OTHER = "another-exported-key-abcdefghijklmnop"


def _ready(ws: Workspace, day: str) -> None:
    from datetime import date

    issue = sample_issue(day=date.fromisoformat(day))
    issue.status = "ready"
    write_issue(ws, issue)


def _send(cli: Cli, day: str, *extra: str, key: str | None = None, previous: str = ""):  # type: ignore[no-untyped-def]
    env = {"DIGEST_SECRET_KEY": key or "", "DIGEST_PREVIOUS_SECRET_KEYS": previous}
    # each week's send on its own Friday morning, as the weeks of a rehearsal go
    return cli("--now", f"{day}T07:00:00Z", "send", day, "--yes", *extra, env=env)


def _key_file(ws: Workspace) -> Path:
    return ws.subscribers_dir / ".keys" / "DIGEST_SECRET_KEY"


@pytest.fixture
def two_weeks(send_ws: Workspace, database_url: str) -> Workspace:
    add_readers(send_ws, 2)
    _ready(send_ws, "2026-12-11")
    return send_ws


def test_a_send_from_the_key_file_after_one_with_the_exported_key_is_refused(
    two_weeks: Workspace,
) -> None:
    cli = Cli(two_weeks.root)
    first = _send(cli, "2026-12-04", key=EXPORTED)
    assert first.exit_code == 0, first.output

    refused = _send(cli, "2026-12-11")  # cron, without the variable: the key file would sign
    assert refused.exit_code == 1
    said = " ".join(refused.output.split())
    assert "the key file" in said and str(_key_file(two_weeks)) in said
    assert "issue 2026-12-04" in said and "DIGEST_SECRET_KEY" in said
    assert "environment" in said and "digest schedule cron" in said
    assert not (two_weeks.outbox_dir / "2026-12-11").exists(), "nothing may go out"

    sent = _send(cli, "2026-12-11", key=EXPORTED)
    assert sent.exit_code == 0, sent.output


def test_an_exported_key_after_sends_signed_with_the_key_file_is_refused(
    two_weeks: Workspace,
) -> None:
    cli = Cli(two_weeks.root)
    assert _send(cli, "2026-12-04").exit_code == 0  # no variable: the key file signs
    refused = _send(cli, "2026-12-11", key=OTHER)
    assert refused.exit_code == 1
    said = " ".join(refused.output.split())
    assert "the environment variable DIGEST_SECRET_KEY" in said
    assert f"signed with the key file {_key_file(two_weeks)}" in said
    assert f'export DIGEST_SECRET_KEY="$(cat {_key_file(two_weeks)})"' in said
    assert "unset DIGEST_SECRET_KEY" in said
    assert not (two_weeks.outbox_dir / "2026-12-11").exists()


def test_a_rotation_or_a_retired_key_is_a_choice_not_a_trap(two_weeks: Workspace) -> None:
    cli = Cli(two_weeks.root)
    assert _send(cli, "2026-12-04", key=EXPORTED).exit_code == 0
    # A rotation: the new key signs, the old one still verifies the links already mailed.
    rotated = _send(cli, "2026-12-11", key=OTHER, previous=EXPORTED)
    assert rotated.exit_code == 0, rotated.output
    _ready(two_weeks, "2026-12-18")
    # Retiring a leaked key on purpose: the flag says so.
    refused = _send(cli, "2026-12-18", key=EXPORTED)
    assert refused.exit_code == 1 and "--retire-sent-key" in refused.output, refused.output
    retired = _send(cli, "2026-12-18", "--retire-sent-key", key=EXPORTED)
    assert retired.exit_code == 0, retired.output


def test_the_cron_recipe_tells_the_same_story(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SECRET_KEY", EXPORTED)
    entry = " ".join(recipes.cron_entry(workspace).split())
    assert "optional" not in entry
    assert "DIGEST_SECRET_KEY signing key of unsubscribe links: the value set where you ran" in (
        entry
    )
    monkeypatch.delenv("DIGEST_SECRET_KEY")
    entry = " ".join(recipes.cron_entry(workspace).split())
    # Unset here: set it, as `digest serve` needs it (no "leave it unset" for this key).
    assert "set it here to the value your shell and `digest serve` use" in entry
    assert "`digest secret` makes one" in entry and "leave it unset to sign" not in entry
    workspace.secret("DIGEST_SECRET_KEY")  # mail went out signed with the workspace's own key
    for text in (
        recipes.cron_entry(workspace),
        recipes.systemd_units(workspace)["digest-the-weekly-brief.service"],
    ):
        told = " ".join(text.split())
        assert f"signed with the key in {_key_file(workspace)}: set it to that file's value" in (
            told
        )


def test_the_scheduled_send_refuses_in_one_line_and_sends_nothing(two_weeks: Workspace) -> None:
    cli = Cli(two_weeks.root)
    assert _send(cli, "2026-12-04", key=EXPORTED).exit_code == 0
    due = cli("--now", "2026-12-11T07:01:00Z", "send", "--due", env={"DIGEST_SECRET_KEY": ""})
    assert due.exit_code == 1
    assert "issue 2026-12-04 went out signed with another key" in due.output
    assert len(due.output.strip().splitlines()) == 1, due.output
    assert not (two_weeks.outbox_dir / "2026-12-11").exists()
    fixed = cli(
        "--now", "2026-12-11T07:06:00Z", "send", "--due", env={"DIGEST_SECRET_KEY": EXPORTED}
    )
    assert fixed.exit_code == 0 and "sent issue 2026-12-11: 2 sent" in fixed.output
