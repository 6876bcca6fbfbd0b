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
from digest.cli.common import State, echo_json, pass_state, workspace_of
from digest.errors import DigestError


class DigestGroup(click.Group):
    """Maps library errors to click errors once, for every command; loads commands lazily."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            self.commands[name] = _load(name)
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's command list, from :data:`SHORT_HELP` for commands not yet loaded."""
        rows = [(name, self._listed(ctx, name)) for name in self.list_commands(ctx)]
        shown = [(name, cmd) for name, cmd in rows if cmd is not None and not cmd.hidden]
        if shown:
            limit = formatter.width - 6 - max(len(name) for name, _ in shown)
            with formatter.section("Commands"):
                formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in shown])

    def _listed(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in SHORT_HELP:
            return click.Command(name, help=SHORT_HELP[name])
        return self.get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DigestError as exc:
            raise click.ClickException(str(exc)) from None


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
        clock.set_now(clock.parse_instant(now) if now else None)
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
}


# What `digest --help` lists for each command (the first paragraph of its help), so
# the listing needs none of the commands' modules; tests/test_cli_help.py keeps
# each line equal to the command's own help.
SHORT_HELP = {
    "init": "Make a new workspace in DIRECTORY (default: here). Never overwrites a file.",
    "demo": "Run the whole path on sample material, offline, in a new workspace.",
    "issue": "Create, list, show and mark issues (issues/YYYY-MM-DD.yaml).",
    "move": "Move ARTICLE (its number in `issue show`, or its URL) within or across sections.",
    "remove": "Remove ARTICLE (its number in `issue show`, or its URL) from the issue.",
    "add": (
        "Add the article at URL to the issue, reading its title, summary and image from the page."
    ),
    "feed": "Follow RSS and Atom feeds (feeds.yaml) that fill the candidates list.",
    "candidates": "List the candidates pulled from feeds, numbered for `digest pick`.",
    "pick": "Add candidates (numbers from `digest candidates`) to the issue, as `digest add` does.",
    "render": "Render an issue (default: the upcoming one) for one sample reader.",
    "check": "Check an issue before it goes; exit status 1 when there are errors.",
    "templates": "List the built-in templates and which ones this workspace overrides.",
    "preview": "Preview an issue (default: the upcoming one) in the browser, live as you edit.",
    "subscribers": "Add, import, list, show, unsubscribe, suppress, export and erase subscribers.",
    "consent": "Check the consent ledger.",
    "db": "Migrate and inspect the subscriber database (SQLite or PostgreSQL).",
    "send": "Mail an issue to every subscriber, once each; run it again to resume.",
    "deliveries": (
        "Show how an issue's send went: counts per state, rate, failures by reason "
        "(default: the issue sent last)."
    ),
    "retry": (
        "Send again the deferred and temporarily failed messages of an issue (default: "
        "the issue sent last)."
    ),
    "bounces": "Bounces, complaints and mailbox unsubscribes of an issue (default: the last sent).",
    "doctor": (
        "Check SPF, DKIM, DMARC, the bounce domain's MX, the one-click unsubscribe and alignment."
    ),
    "schedule": "Show the next slot, the issue it sends, its audience and any warnings.",
    "scheduler": (
        "Send each issue when due, in the foreground (containers, systemd); stop with SIGTERM."
    ),
    "serve": "Serve the public pages: subscribe, confirm, unsubscribe, archive, /healthz.",
    "secret": "Print a fresh random signing key for DIGEST_SECRET_KEY.",
}


def _load(name: str) -> click.Command:
    module, attribute = COMMANDS[name].split(":")
    command = getattr(importlib.import_module(f"digest.cli.{module}"), attribute)
    assert isinstance(command, click.Command)
    return command


__all__ = ["main", "pass_state", "workspace_of", "echo_json"]
