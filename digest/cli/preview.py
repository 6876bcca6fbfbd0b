"""`digest preview`: the issue in a browser, following your edits."""

from __future__ import annotations

from datetime import date

import click

from digest.cli.common import workspace_of
from digest.cli.issues import DATE


@click.command("preview")
@click.argument("day", type=DATE, required=False, metavar="[DATE]")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="Port to listen on (default: 8025, or a free one when that is taken).",
)
@click.option(
    "--host",
    metavar="HOST",
    help="Listen on HOST instead of 127.0.0.1 (warns: others could read your drafts).",
)
@click.option("--no-browser", is_flag=True, help="Do not open a browser; just print the URL.")
@click.pass_context
def preview(
    ctx: click.Context, day: date | None, port: int | None, host: str | None, no_browser: bool
) -> None:
    """Preview an issue in the browser, live as you edit (default: the upcoming one).

    Shows the HTML email as a subscriber gets it (desktop and mobile widths,
    dark background), the text part, the raw source, the headers and the
    results of `digest check`. Stop it with Ctrl-C.
    """
    from digest.web.preview import serve  # deferred: the web stack, for this command only

    serve(
        workspace_of(ctx),
        day=day,
        host=host,
        port=port,
        open_browser=not no_browser,
        echo=click.echo,
        warn=lambda line: click.echo(line, err=True),
    )
