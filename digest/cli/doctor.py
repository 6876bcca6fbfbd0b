"""`digest doctor`: check the sending domain's DNS and the public unsubscribe endpoint."""

from __future__ import annotations

import click

from digest.cli.common import echo_json, workspace_of


@click.command("doctor")
@click.option(
    "--nameserver",
    metavar="HOST[:PORT]",
    help="Ask this DNS server instead of the system's resolver.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@click.pass_context
def doctor(ctx: click.Context, nameserver: str | None, as_json: bool) -> None:
    """Check SPF, DKIM, DMARC, the bounce domain's MX, the one-click unsubscribe and alignment.

    One line per finding (ok / warn / error) with the fix; exits 1 when any is an error.
    """
    # deferred: dnspython, httpx and the message builder load only for this command
    from digest.send.doctor import resolver_for, run_doctor

    findings = run_doctor(workspace_of(ctx), resolver=resolver_for(nameserver))
    if as_json:
        echo_json([f.__dict__ for f in findings])
    else:
        for finding in findings:
            click.echo(finding.line())
    if any(f.level == "error" for f in findings):
        raise click.exceptions.Exit(1)
