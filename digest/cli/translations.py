"""`digest translations`: the workspace's own wording of digest's words, per language."""

from __future__ import annotations

import click

from digest import catalogs
from digest.cli.common import HelpGroup, plural, workspace_of


@click.group(cls=HelpGroup)
def translations() -> None:
    """List, init, update: the workspace's own wording of what digest writes, per language."""


@translations.command("list")
@click.pass_context
def list_cmd(ctx: click.Context) -> None:
    """List the languages digest ships and the catalogs in this workspace's locale/."""
    ws = workspace_of(ctx)
    for row in catalogs.status(ws.locale_dir):
        shipped = "shipped" if row.shipped else "not shipped"
        own = (
            f"{row.own.relative_to(ws.root)}: {row.own_translated} of {row.messages} "
            f"{plural(row.messages, 'message')} translated"
            if row.own is not None
            else ""
        )
        mark = "*" if row.tag == ws.config.newsletter.language else " "
        click.echo(f"{mark} {row.tag:<8} {shipped:<12} {own}".rstrip())
    click.echo(
        f"* the newsletter's language ([newsletter] language = {ws.config.newsletter.language})"
    )


@translations.command("init")
@click.argument("language")
@click.pass_context
def init_cmd(ctx: click.Context, language: str) -> None:
    """Start locale/LANGUAGE/LC_MESSAGES/digest.po: every message, empty, to fill in.

    An entry you fill in replaces digest's wording; one left empty keeps it.
    For a language digest ships, its own translation stands beside each entry
    as a "#. digest:" comment. digest reads the file as it is: no compile step.
    """
    path = catalogs.start(workspace_of(ctx).locale_dir, language)
    click.echo(f"created {path}")
    click.echo("Next: fill in the msgstr lines you want; `digest preview` shows them at once.")


@translations.command("update")
@click.pass_context
def update_cmd(ctx: click.Context) -> None:
    """Bring the workspace's catalogs in step with this version of digest's messages."""
    done = catalogs.update(workspace_of(ctx).locale_dir)
    if not done:
        click.echo("no catalogs in locale/ (`digest translations init LANGUAGE` starts one)")
    for row in done:
        click.echo(
            f"{row.path}: {row.added} new (empty: digest's own wording until you fill them "
            f"in), {row.dropped} no longer used (removed)"
        )
