"""`digest serve` (the public pages) and `digest secret` (a fresh signing key)."""

from __future__ import annotations

import secrets

import click

from digest.cli.common import workspace_of


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port."
)
@click.option(
    "--get",
    "path",
    metavar="PATH",
    help="Make one GET request for PATH in-process, print the status and body, and exit.",
)
@click.option(
    "--retire-sent-key",
    is_flag=True,
    help="Start even though no key verifies the last issue's links (after retiring a leaked key).",
)
@click.pass_context
def serve(
    ctx: click.Context, host: str, port: int, path: str | None, retire_sent_key: bool
) -> None:
    """Serve the public pages: subscribe, confirm, unsubscribe, archive, /healthz.

    Meant to run behind a reverse proxy (nginx, Caddy) that terminates HTTPS.
    Needs the signing key in the environment (DIGEST_SECRET_KEY, or the
    variable [web] secret_key_env names); `digest secret` makes one. Old keys
    in DIGEST_PREVIOUS_SECRET_KEYS still verify links already mailed.
    """
    # deferred: the web stack, for this command only
    from digest.web.public_server import create_public_app, request_once, run

    ws = workspace_of(ctx)
    app = create_public_app(ws, check_keys=not retire_sent_key)
    if path is not None:
        response = request_once(app, path, ws.config.newsletter.base_url)
        click.echo(f"{response.status_code} {response.reason_phrase}")
        click.echo(response.text)
        ctx.exit(0 if response.status_code < 400 else 1)
    run(ws, app, host, port)


@click.command("secret")
def secret() -> None:
    """Print a fresh random signing key for DIGEST_SECRET_KEY.

    Set the same value wherever digest makes or checks links (the sender and
    `digest serve`); to change it, keep the old one in DIGEST_PREVIOUS_SECRET_KEYS
    so that the links in emails already sent keep working.
    """
    click.echo(secrets.token_urlsafe(32))
