"""The ``digest`` command: a thin click layer over the library.

Each command parses its options, calls one library function and prints the
result. A :class:`DigestError` becomes one clean line and exit status 1 here,
in one place; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import click

from digest import __version__, clock
from digest.errors import DigestError
from digest.workspace import Workspace, find_workspace


class DigestGroup(click.Group):
    """Maps library errors to click errors once, for every command; loads commands lazily."""

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
            raise click.ClickException(str(exc)) from None


class State:
    """What every command may need, found lazily: a workspace only when asked for."""

    def __init__(self, directory: str | None) -> None:
        self.directory = directory
        self._workspace: Workspace | None = None

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            self._workspace = find_workspace(explicit=self.directory)
        return self._workspace


pass_state = click.make_pass_decorator(State)


def workspace_of(ctx: click.Context) -> Workspace:
    return ctx.ensure_object(State).workspace


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


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


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


def _load(name: str) -> click.Command:
    module, attribute = COMMANDS[name].split(":")
    command = getattr(importlib.import_module(f"digest.cli.{module}"), attribute)
    assert isinstance(command, click.Command)
    return command


__all__ = ["main", "pass_state", "workspace_of", "echo_json"]
