"""What the command modules share: the lazily found workspace and JSON output."""

from __future__ import annotations

import json
from typing import Any

import click

from digest.workspace import Workspace, find_workspace


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


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
