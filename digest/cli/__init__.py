"""The ``digest`` command: a thin click layer over the library.

Each command parses its options, calls one library function and prints the
result. A :class:`DigestError` becomes one clean line and exit status 1 here,
in one place; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any

import click

from digest import __version__, clock
from digest.errors import DigestError
from digest.workspace import Workspace, find_workspace


class DigestGroup(click.Group):
    """A group that maps library errors to click errors once, for every command."""

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
    import json

    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _register() -> None:
    from digest.cli import curate, db, issues, preview, render, subscribers, web, workspace
    from digest.cli import schedule as schedule_cli
    from digest.cli import send as send_cli

    for module in (workspace, issues, curate, subscribers, db, web, schedule_cli, render, preview,
                   send_cli):
        for command in module.COMMANDS:
            main.add_command(command)


_register()

__all__ = ["main", "pass_state", "workspace_of", "echo_json"]
