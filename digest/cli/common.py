"""What the command modules share: the lazily found workspace, JSON output, plurals and
the help listing of a command group."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Any

import click

from digest.workspace import Workspace, find_workspace


class State:
    """What every command may need, found lazily: a workspace only when asked for."""

    def __init__(self, directory: str | None) -> None:
        self.directory = directory
        self._workspace: Workspace | None = None
        self.echo_notices = True  # off for a command that reports them itself

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            self._workspace = find_workspace(explicit=self.directory)
            if self.echo_notices:
                echo_notices(self._workspace)
        return self._workspace


def echo_notices(ws: Workspace) -> None:
    """The settings' notices (renamed or ineffective settings), one warning line each."""
    for notice in ws.config.notices:
        click.echo(f"warning: {notice}", err=True)


pass_state = click.make_pass_decorator(State)


def workspace_of(ctx: click.Context, *, notices: bool = True) -> Workspace:
    """The workspace; ``notices=False`` for a command that lists the settings' notices
    among its own findings (`digest check`), so they are not shown twice."""
    state = ctx.ensure_object(State)
    state.echo_notices = notices
    return state.workspace


def echo_json(data: Any) -> None:
    """``--json``: one JSON document (an array for a list, an object for one thing)."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def echo_json_rows(rows: Iterable[Any], *, lines: bool = False) -> None:
    """A list streamed: one JSON array (``--json``), or one object a line (``--jsonl``).

    Either way nothing holds the whole list, so a million rows cost no more memory
    than one.
    """
    if lines:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False, default=str))
        return
    first = True
    for row in rows:
        text = json.dumps(row, indent=2, ensure_ascii=False, default=str)
        click.echo(("[\n" if first else ",\n") + "  " + text.replace("\n", "\n  "), nl=False)
        first = False
    click.echo("[]" if first else "\n]")


def plural(count: int, word: str, many: str | None = None) -> str:
    """``article`` or ``articles`` for ``count``."""
    return word if count == 1 else (many or word + "s")


_ABBREVIATIONS = ("Art.", "e.g.", "i.e.", "etc.", "vs.", "No.", "cf.")


def first_sentence(help_text: str) -> str:
    """The first sentence of a command's help, whole: abbreviations such as "GDPR Art.
    15/20" do not end it, and it is not cut to a width (the help formatter wraps it)."""
    words = help_text.partition("\n\n")[0].split()
    for i, word in enumerate(words[:-1]):
        if word.endswith(".") and not word.endswith(_ABBREVIATIONS) and words[i + 1][:1].isupper():
            return " ".join(words[: i + 1])
    return " ".join(words)


class SuggestingGroup(click.Group):
    """A command group that answers a mistyped command with the nearest ones.

    Click suggests only among the commands it has loaded, and the top-level group
    loads its commands lazily, so the guesses come from :meth:`list_commands`.
    """

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = click.utils.make_str(args[0]) if args else ""
        if not name or name.startswith("-") or self.get_command(ctx, name) is not None:
            return super().resolve_command(ctx, args)
        if ctx.token_normalize_func is not None:
            normal = ctx.token_normalize_func(name)
            if self.get_command(ctx, normal) is not None:
                return super().resolve_command(ctx, args)
        listed = [n for n in self.list_commands(ctx) if not _hidden(self, ctx, n)]
        close = difflib.get_close_matches(name, listed, n=3, cutoff=0.6)
        message = f"No such command {name!r}."
        if len(close) == 1:
            message += f" Did you mean {close[0]!r}?"
        elif close:
            message += " Did you mean one of: " + ", ".join(repr(c) for c in close) + "?"
        ctx.fail(message)


def _hidden(group: click.Group, ctx: click.Context, name: str) -> bool:
    command = group.commands.get(name)  # a loaded one only: the lazy group loads none here
    return command is not None and command.hidden


class HelpGroup(SuggestingGroup):
    """A command group whose help lists each command with its whole first sentence."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.short_help or first_sentence(command.help or "")))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
