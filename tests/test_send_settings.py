"""One knob for parallelism: ``[sender] connections``, for every sender.

It is how many SMTP connections run at once (each with up to two messages on it
when the server pipelines), or how many HTTP requests are in flight. An old file
that sets ``[sender] concurrency`` or ``[sender.smtp] connections`` keeps
working, with one warning line; a setting that does nothing for the configured
sender is reported when the file loads and by `digest check`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _render_fixtures import sample_issue, write_issue

from digest.check import check_issue
from digest.config import load
from digest.errors import ConfigError
from digest.send.configured import open_sender
from digest.workspace import Workspace


def sender_table(
    ws: Workspace, sender: str, smtp: str = "", http: str = "", *, reload: bool = True
) -> Workspace:
    """Replace digest.toml's [sender] tables with the given lines."""
    path = ws.config_path
    text = path.read_text(encoding="utf-8")
    head, _, rest = text.partition("[sender]")
    tail = rest[rest.index("[dkim]") :]
    tables = f"[sender]\n{sender}\n\n[sender.smtp]\n{smtp}\n\n[sender.http]\n{http}\n\n"
    path.write_text(head + tables + tail, encoding="utf-8")
    return ws.reload() if reload else ws


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_new_workspace_has_the_one_setting_and_nothing_to_report(workspace: Workspace) -> None:
    text = workspace.config_path.read_text(encoding="utf-8")
    assert re.search(r"^connections = 4 ", text, re.M) and "concurrency" not in text
    assert workspace.config.sender.connections == 4
    assert workspace.config.notices == ()


@pytest.mark.parametrize("kind", ["smtp", "http"])
def test_one_setting_sets_smtp_connections_and_http_requests(
    workspace: Workspace, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_API_TOKEN", "t")
    ws = sender_table(workspace, f'kind = "{kind}"\nconnections = 16')
    assert ws.config.notices == ()
    sender = open_sender(ws, "2026-12-04")
    assert sender.parallel == 16
    assert "16 connections" in sender.name or kind == "http"


def test_the_old_smtp_setting_keeps_working_with_one_warning_line(workspace: Workspace) -> None:
    ws = sender_table(workspace, 'kind = "smtp"', smtp="connections = 8")
    assert ws.config.sender.connections == 8
    [notice] = ws.config.notices
    where = f"{ws.config_path}:{line_of(ws.config_path, 'connections = 8')}"
    assert notice.startswith(f"{where}: [sender.smtp] connections is now [sender] connections")
    assert "\n" not in notice and "rename it" in notice


def test_concurrency_alone_now_sets_smtp_connections(workspace: Workspace) -> None:
    """It used to do nothing for SMTP: 16 in flight took two settings, silently."""
    ws = sender_table(workspace, 'kind = "smtp"\nconcurrency = 16')
    assert ws.config.sender.connections == 16
    assert open_sender(ws, "2026-12-04").parallel == 16
    [notice] = ws.config.notices
    assert "[sender] concurrency is now [sender] connections" in notice


def test_an_old_file_with_both_old_names_takes_the_one_its_sender_read(
    workspace: Workspace,
) -> None:
    ws = sender_table(workspace, 'kind = "smtp"\nconcurrency = 16', smtp="connections = 8")
    assert ws.config.sender.connections == 8  # what an SMTP send used before
    assert len(ws.config.notices) == 2
    assert "ignored: [sender.smtp] connections is the one that applied" in ws.config.notices[1]


def test_the_new_name_wins_over_an_old_one(workspace: Workspace) -> None:
    ws = sender_table(workspace, 'kind = "smtp"\nconnections = 6', smtp="connections = 8")
    assert ws.config.sender.connections == 6
    [notice] = ws.config.notices
    assert "ignored: the file sets [sender] connections too" in notice


def test_a_bad_old_value_names_its_own_line(workspace: Workspace) -> None:
    sender_table(workspace, 'kind = "smtp"', smtp="connections = 0", reload=False)
    path = workspace.config_path
    with pytest.raises(ConfigError) as info:
        load(path)
    line = line_of(path, "connections = 0")
    assert str(info.value).startswith(f"{path}:{line}: sender.smtp.connections must be at least 1")


@pytest.mark.parametrize(
    ("sender", "smtp", "http", "says"),
    [
        (
            'kind = "outbox"\nconnections = 8',
            "",
            "",
            '[sender] connections has no effect with kind = "outbox"',
        ),
        (
            'kind = "smtp"',
            "",
            "batch_size = 100",
            '[sender.http] batch_size has no effect: [sender] kind is "smtp"',
        ),
        (
            'kind = "http"',
            'host = "mail.example.com"\nmessages_per_connection = 10',
            "",
            '[sender.smtp] host, messages_per_connection have no effect: [sender] kind is "http"',
        ),
        (
            'kind = "http"',
            "",
            'provider = "postmark"\ndomain = "mg.example.com"',
            '[sender.http] domain has no effect: provider is "postmark"',
        ),
    ],
    ids=["connections-outbox", "http-table-for-smtp", "smtp-table-for-http", "mailgun-only"],
)
def test_a_setting_without_effect_is_one_line(
    workspace: Workspace, sender: str, smtp: str, http: str, says: str
) -> None:
    ws = sender_table(workspace, sender, smtp, http)
    [notice] = ws.config.notices
    assert says in notice and notice.startswith(f"{ws.config_path}:")


def test_the_same_defaults_as_a_new_file_are_not_reported(workspace: Workspace) -> None:
    ws = sender_table(workspace, 'kind = "smtp"', http="batch_size = 0\ntimeout = 30.0")
    assert ws.config.notices == ()


def test_load_prints_each_notice_once_and_check_lists_it(workspace: Workspace, cli) -> None:
    ws = sender_table(workspace, 'kind = "outbox"\nconcurrency = 8')
    write_issue(ws, sample_issue())
    result = cli("issue", "list")
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2  # renamed, and without effect for the outbox
    assert "[sender] concurrency is now [sender] connections" in warnings[0]
    assert "has no effect" in warnings[1]
    assert "warning:" not in result.stdout
    findings = [f for f in check_issue(ws, sample_issue()).findings if f.code == "settings"]
    assert [f.level for f in findings] == ["warning", "warning"]
    assert [f.message for f in findings] == list(ws.config.notices)


def test_digest_check_shows_each_notice_once(workspace: Workspace, cli) -> None:
    """`digest check` lists the settings' notices among its findings, and only there."""
    ws = sender_table(workspace, 'kind = "outbox"\nconcurrency = 8')
    write_issue(ws, sample_issue())
    result = cli("check")
    both = result.stdout + result.stderr
    assert both.count("[sender] concurrency is now [sender] connections") == 1, both
    assert both.count("has no effect") == 1, both
    assert "warning settings" in result.stdout.replace("  ", " ")


def test_digest_check_shows_the_notices_when_there_is_no_issue_to_check(
    workspace: Workspace, cli
) -> None:
    """Stopping before the findings (no issue yet) still tells what the settings need."""
    sender_table(workspace, 'kind = "outbox"\nconcurrency = 8')
    result = cli("check")
    assert result.exit_code == 1
    assert "no upcoming draft or ready issue" in result.stderr
    both = result.stdout + result.stderr
    assert both.count("[sender] concurrency is now [sender] connections") == 1, both
    assert both.count("has no effect") == 1, both
