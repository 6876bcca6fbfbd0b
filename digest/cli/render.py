"""Commands that show what subscribers will get: render, check, templates."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from digest.atomic import write_bytes
from digest.check import check_issue
from digest.cli.common import echo_json, echo_notices, plural, workspace_of
from digest.cli.issues import DATE
from digest.errors import DigestError, SubscriberError
from digest.issue import workspace_issue
from digest.message import MessageBuilder
from digest.render import Recipient, prepare, reader_address, reader_for, template_listing
from digest.workspace import Workspace


@click.command("render")
@click.argument("day", type=DATE, required=False, metavar="[DATE]")
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), help="Write the HTML part here."
)
@click.option(
    "--text", "text_path", type=click.Path(dir_okay=False), help="Write the text part here."
)
@click.option("--eml", "eml_path", type=click.Path(dir_okay=False), help="Write a whole .eml here.")
@click.option(
    "--to",
    "to",
    metavar="ADDR",
    help='Render as this reader gets it, e.g. "Ann <ann@example.com>" (a subscriber: '
    "exactly their message).",
)
@click.pass_context
def render_cmd(
    ctx: click.Context,
    day: date | None,
    html_path: str | None,
    text_path: str | None,
    eml_path: str | None,
    to: str | None,
) -> None:
    """Render an issue for one sample reader (default: the upcoming issue).

    Without --html, --text or --eml the HTML goes to standard output.
    """
    ws = workspace_of(ctx)
    prepared = prepare(ws, workspace_issue(ws, day))
    reader = reader_for(to, _subscriber(ws, to) if to else None)
    outputs = {
        html_path: lambda: prepared.html(reader).encode("utf-8"),
        text_path: lambda: prepared.text(reader).encode("utf-8"),
        eml_path: lambda: MessageBuilder.for_workspace(ws, prepared).build(reader),
    }
    if not (html_path or text_path or eml_path):
        click.echo(prepared.html(reader), nl=False)
        return
    for path, make in outputs.items():
        if path:
            write_bytes(Path(path), make())
            click.echo(f"wrote {path}", err=True)


def _subscriber(ws: Workspace, to: str) -> Recipient | None:
    """The subscriber ``--to`` names (not an erased one), as plain values for render."""
    from digest.people.record import find_by_email  # deferred: the store, only with --to
    from digest.store import open_store

    with open_store(ws) as store:
        try:
            found = find_by_email(store, reader_address(to)[1])
        except SubscriberError:  # not a valid address: nobody's
            return None
    if found is None or found.status == "erased":
        return None
    return Recipient(found.id, found.email or reader_address(to)[1], found.name or "")


@click.command("check")
@click.argument("day", type=DATE, required=False, metavar="[DATE]")
@click.option("--links", is_flag=True, help="Also fetch every link and report broken ones.")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds per link (--links).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def check_cmd(
    ctx: click.Context, day: date | None, links: bool, timeout: float, as_json: bool
) -> None:
    """Check an issue before it goes; exit status 1 when there are errors."""
    ws = workspace_of(ctx, notices=False)
    try:
        issue = workspace_issue(ws, day)
    except DigestError:  # no findings to list the notices among
        echo_notices(ws)
        raise
    result = check_issue(ws, issue, links=links, timeout=timeout)
    if as_json:
        echo_json(result.to_dict())
    else:
        for finding in result.findings:
            click.echo(str(finding))
        notes = len(result.infos)
        click.echo(
            f"{issue.slug}: {len(result.errors)} {plural(len(result.errors), 'error')}, "
            f"{len(result.warnings)} {plural(len(result.warnings), 'warning')}"
            + (f" ({notes} {plural(notes, 'note')})" if notes else "")
        )
    if not result.ok:
        ctx.exit(1)


@click.command("templates")
@click.pass_context
def templates_cmd(ctx: click.Context) -> None:
    """List the built-in templates and which ones this workspace overrides."""
    for name, state in template_listing(workspace_of(ctx).templates_dir):
        click.echo(f"{name:<20} {state}")
