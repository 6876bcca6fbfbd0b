"""The ``digest`` command: a thin click layer over the library.

Each command parses its options, calls one library function and prints the
result; the commands live in this package's modules, which share
:mod:`digest.cli.common` and are imported only when their command runs. A
:class:`DigestError` becomes one clean line and exit status 1 here, in one
place; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from digest import __version__, clock
from digest.cli.common import (
    HelpGroup,
    State,
    SuggestingGroup,
    echo_json,
    echo_json_rows,
    first_sentence,
    pass_state,
    plural,
    workspace_of,
)
from digest.errors import DigestError

# The top-level help, grouped as an editor's week goes. The lines are written here,
# not read from each command, so that `digest --help` imports no command module
# (tests/test_help.py holds them to the commands' own help). A command missing
# here (a new one) is listed under "Other commands" from its own help.
HELP_SECTIONS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Start",
        (
            ("init", "Make a new workspace in DIRECTORY (default: here)."),
            ("demo", "Run the whole path on sample material, offline, in a new workspace."),
        ),
    ),
    (
        "One issue (DATE; default: the upcoming one)",
        (
            ("issue", "new, list, show, ready, draft, skip: the issue files (issues/DATE.yaml)."),
            (
                "preview",
                "Preview an issue in the browser, live as you edit (default: the upcoming one).",
            ),
            ("check", "Check an issue before it goes; exit status 1 when there are errors."),
            ("render", "Render an issue for one sample reader (default: the upcoming issue)."),
            ("send", "Mail an issue to every subscriber, once each; run it again to resume."),
            (
                "deliveries",
                "Show how an issue's send went: counts per state, rate, failures by reason.",
            ),
            ("retry", "Send again the deferred and temporarily failed messages of an issue."),
        ),
    ),
    (
        "How it went",
        (
            (
                "stats",
                "Show the list's growth and what each sent issue did; no opens or clicks, ever.",
            ),
        ),
    ),
    (
        "Edit the upcoming issue (or --issue DATE)",
        (
            ("add", "Add the article at URL, reading its title, summary and image from the page."),
            ("pick", "Add candidates (numbers from `digest candidates`), as `digest add` does."),
            (
                "move",
                "Move ARTICLE (a number or reference from `issue show`, or a URL) within or "
                "across sections.",
            ),
            (
                "remove",
                "Remove ARTICLE (a number or reference from `issue show`, or a URL) from the "
                "issue.",
            ),
        ),
    ),
    (
        "Find articles",
        (
            ("feed", "add, list, remove, pull: the RSS and Atom feeds you follow."),
            ("candidates", "List the candidates pulled from feeds, numbered for `digest pick`."),
        ),
    ),
    (
        "Readers and the web",
        (
            (
                "subscribers",
                "add, import, reconfirm, list, show, export, erase …: the list and its consent.",
            ),
            (
                "consent",
                "Check the consent ledger; register the privacy policies readers agreed to.",
            ),
            (
                "serve",
                "Serve the public pages: subscribe, confirm, unsubscribe, archive, /healthz.",
            ),
            ("secret", "Print a fresh random signing key for DIGEST_SECRET_KEY."),
        ),
    ),
    (
        "Deliverability",
        (
            (
                "bounces",
                "fetch, ingest: read reports; `digest bounces [DATE]`: an issue's bounces.",
            ),
            (
                "doctor",
                "Check SPF, DKIM, DMARC, the bounce domain's MX, the one-click unsubscribe and "
                "alignment.",
            ),
        ),
    ),
    (
        "Every week, unattended",
        (
            ("schedule", "cron, systemd: show the next slot, or print a cron or systemd set-up."),
            (
                "scheduler",
                "Send each issue when due, in the foreground (containers, systemd); "
                "stop with SIGTERM.",
            ),
        ),
    ),
    (
        "Settings",
        (
            ("templates", "List the built-in templates and which ones this workspace overrides."),
            ("db", "status, upgrade: migrate and inspect the subscriber database."),
            (
                "translations",
                "list, init, update: the workspace's own wording of what digest writes, "
                "per language.",
            ),
        ),
    ),
)


class DigestGroup(SuggestingGroup):
    """Maps library errors to click errors once, for every command; loads commands lazily;
    lists them in sections without importing them; suggests the nearest to a mistyped one."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        known = self.list_commands(ctx)
        listed: set[str] = set()
        for title, entries in HELP_SECTIONS:
            rows = [(name, text) for name, text in entries if name in known]
            listed.update(name for name, _ in rows)
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        rest = []
        for name in known:
            command = None if name in listed else self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rest.append((name, command.short_help or first_sentence(command.help or "")))
        if rest:
            with formatter.section("Other commands"):
                formatter.write_dl(rest)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            self.commands[name] = _load(name)
        return self.commands.get(name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DigestError as exc:
            # the person who typed the command sees the addresses as typed; logs get str()
            raise click.ClickException(exc.for_terminal()) from None


@click.group(cls=DigestGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="digest")
@click.option(
    "-C",
    "directory",
    metavar="DIR",
    envvar="DIGEST_WORKSPACE",
    help="Run in the workspace DIR (default: the nearest folder upward holding digest.toml).",
)
@click.option(
    "--now",
    metavar="ISO-8601",
    envvar="DIGEST_NOW",
    help="Pretend it is this time (for rehearsals and tests).",
)
@click.pass_context
def main(ctx: click.Context, directory: str | None, now: str | None) -> None:
    """Curate and mail a newsroom's weekly newsletter.

    Nothing is mailed unless you ask: a new workspace sends to outbox/.
    """
    try:
        clock.set_now(clock.parse_instant(now) if now else None, running=True)
    except DigestError as exc:
        raise click.BadParameter(str(exc), param_hint="--now") from None
    ctx.obj = State(directory)


# Each command's module is imported only when that command runs, so a cron job's
# `digest send --due` or a quick `digest issue list` does not load the web
# server, the database layer and premailer first.
COMMANDS = {
    "init": "workspace:init",
    "demo": "workspace:demo",
    "issue": "issues:issue",
    "move": "issues:move",
    "remove": "issues:remove",
    "add": "curate:add",
    "feed": "curate:feed",
    "candidates": "curate:candidates",
    "pick": "curate:pick",
    "render": "render:render_cmd",
    "check": "render:check_cmd",
    "templates": "render:templates_cmd",
    "preview": "preview:preview",
    "subscribers": "subscribers:subscribers",
    "consent": "subscribers:consent",
    "db": "db:db",
    "send": "send:send_cmd",
    "deliveries": "send:deliveries_cmd",
    "retry": "send:retry_cmd",
    "bounces": "bounces:bounces",
    "doctor": "doctor:doctor",
    "schedule": "schedule:schedule",
    "scheduler": "schedule:scheduler",
    "serve": "web:serve",
    "secret": "web:secret",
    "stats": "stats:stats_cmd",
    "translations": "translations:translations",
}


def _load(name: str) -> click.Command:
    module, attribute = COMMANDS[name].split(":")
    command = getattr(importlib.import_module(f"digest.cli.{module}"), attribute)
    assert isinstance(command, click.Command)
    return command


__all__ = [
    "main",
    "pass_state",
    "workspace_of",
    "echo_json",
    "echo_json_rows",
    "plural",
    "HelpGroup",
    "State",
    "first_sentence",
]
