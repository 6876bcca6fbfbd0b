"""Help and words: grouped top-level help, whole first sentences, DATE, plurals."""

from __future__ import annotations

import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from conftest import Cli

from digest.cli import COMMANDS, HELP_SECTIONS, first_sentence, main
from digest.cli.issues import DATE
from digest.workspace import Workspace


def _walk(group: click.Group, path: str = "digest") -> list[tuple[str, click.Command]]:
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        found.append((f"{path} {name}", command))
        if isinstance(command, click.Group):
            found.extend(_walk(command, f"{path} {name}"))
    return found


def test_top_level_help_is_grouped_and_names_every_command() -> None:
    out = CliRunner().invoke(main, ["--help"]).output
    for title, _ in HELP_SECTIONS:
        assert f"\n{title}:\n" in out
    assert "\nEdit the upcoming issue (or --issue DATE):\n" in out
    edit = out.split("Edit the upcoming issue")[1].split("\n\n")[0]
    assert [line.split()[0] for line in edit.splitlines() if re.match(r"  \S", line)] == [
        "add",
        "pick",
        "move",
        "remove",
    ]
    for name in COMMANDS:
        assert re.search(rf"^  {re.escape(name)}\s", out, re.M), f"{name} missing from --help"
    assert "..." not in out.split("\n", 1)[1]  # no help line is cut short


def test_the_written_help_lines_say_what_the_commands_say() -> None:
    ctx = click.Context(main)
    for _, entries in HELP_SECTIONS:
        for name, text in entries:
            command = main.get_command(ctx, name)
            assert command is not None, name
            listed = re.match(r"^([a-z]+(?:, [a-z]+)*)(?: …)?: ", text)
            if isinstance(command, click.Group) and listed:
                for sub in listed.group(1).split(", "):
                    assert command.get_command(ctx, sub) is not None, f"{name} {sub}"
            else:
                assert text == first_sentence(command.help or ""), name


def test_help_does_not_import_the_commands() -> None:
    code = (
        "import sys\nfrom digest.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules\n"
        "             if m.startswith('digest.cli.') and m != 'digest.cli.common'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    imported = out.strip().splitlines()[-1]
    assert imported == "[]", (
        f"digest --help imported {imported}: give each command a line in HELP_SECTIONS "
        "(digest/cli/__init__.py) so the help need not load it"
    )


def test_abbreviations_do_not_cut_a_sentence() -> None:
    out = CliRunner().invoke(main, ["subscribers", "--help"]).output
    flat = " ".join(out.split())
    assert "(GDPR Art. 15/20)" in flat and "(GDPR Art. 17)" in flat
    assert first_sentence("Export it (GDPR Art. 15/20). Then more.") == (
        "Export it (GDPR Art. 15/20)."
    )
    assert first_sentence("One. Two.") == "One."


@pytest.mark.parametrize(("path", "command"), _walk(main), ids=[p for p, _ in _walk(main)])
def test_dates_are_called_date(path: str, command: click.Command) -> None:
    ctx = click.Context(command, info_name=path)
    usage = command.get_usage(ctx)
    assert not re.search(r"\b(DAY|D)\b", usage), usage
    for param in command.params:
        if param.type is DATE:
            assert param.make_metavar(ctx) in ("DATE", "[DATE]"), (path, param.name)
    text = command.get_help(ctx)
    assert "YYYY-MM-DD" not in text and not re.search(r"\bDAY\b", text), path


def test_issue_new_help_names_the_configured_weekday(cli: Cli, workspace: Workspace) -> None:
    config = workspace.config_path
    text = config.read_text(encoding="utf-8").replace('weekday = "friday"', 'weekday = "tuesday"')
    config.write_text(text, encoding="utf-8")
    out = cli("issue", "new", "--help").output
    assert "next slot (Tuesday 07:00 UTC, from digest.toml)" in " ".join(out.split())


def test_plurals(cli: Cli, workspace: Workspace) -> None:
    cli(
        "--now",
        "2026-12-01T10:00:00Z",
        "add",
        "https://news.example/a",
        "--no-fetch",
        "--title",
        "A",
    )
    listed = cli("issue", "list").output
    assert "  1 article " in listed and "1 articles" not in listed
    cli(
        "--now",
        "2026-12-01T10:00:00Z",
        "add",
        "https://news.example/b",
        "--no-fetch",
        "--title",
        "B",
    )
    assert "  2 articles " in cli("issue", "list").output


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        (["isue", "new"], "issue"),
        (["subscriber", "list"], "subscribers"),
        (["issue", "shwo"], "show"),
        (["schedule", "corn"], "cron"),
    ],
)
def test_a_mistyped_command_gets_a_suggestion(typed: list[str], meant: str) -> None:
    # A fresh process: the top-level group loads its commands lazily, so a suggestion
    # must not depend on which commands an earlier test happened to load.
    run = subprocess.run(
        [sys.executable, "-m", "digest", *typed], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2, run.stderr
    result = run.stderr
    assert "Traceback" not in result
    wrong = typed[1] if meant in ("show", "cron") else typed[0]
    assert f"No such command '{wrong}'." in result
    assert f"Did you mean '{meant}'?" in result


def test_a_command_nothing_like_any_other_gets_no_guess(cli: Cli) -> None:
    result = cli("xyzzy")
    assert result.exit_code == 2
    assert "No such command 'xyzzy'." in result.output and "Did you mean" not in result.output
