"""Commands about subscribers and consent: subscribers …, consent verify."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import click

from digest import consent as consent_mod
from digest import subscribers as subs
from digest.atomic import write_text
from digest.bounces import history as bounce_history
from digest.cli.common import echo_json, workspace_of
from digest.store import Store, open_store


def _store(ctx: click.Context) -> Store:
    return open_store(workspace_of(ctx))


def _operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name (a container without passwd entry)
        return "cli"


@click.group()
def subscribers() -> None:
    """Add, import, list, show, unsubscribe, suppress, export and erase subscribers."""


@subscribers.command("add")
@click.argument("email")
@click.option("--name", help="The subscriber's name.")
@click.option("--source", required=True, help="Why and where: e.g. 'phone call 2026-10-02, Jo'.")
@click.option("--confirmed", is_flag=True, help="Consent is held already: active, not pending.")
@click.pass_context
def add(ctx: click.Context, email: str, name: str | None, source: str, confirmed: bool) -> None:
    """Add one subscriber by hand (pending unless --confirmed); recorded as admin_added."""
    with _store(ctx) as store:
        sub = subs.admin_add(
            store,
            email,
            name,
            source=source,
            confirmed=confirmed,
            evidence={"operator": _operator()},
        )
    click.echo(f"added {subs.mask(sub.email)} as {sub.status} (id {sub.id})")


@subscribers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check and report; write nothing.")
@click.option("--skip-invalid", is_flag=True, help="Import the good rows even if some are bad.")
@click.pass_context
def import_(ctx: click.Context, file: Path, dry_run: bool, skip_invalid: bool) -> None:
    """Import a CSV: email, name, consented_at, source, policy_version, ip (+ attributes).

    All or nothing: bad rows are listed with their line numbers and nothing
    is written unless --skip-invalid. Duplicates are merged (first consent
    kept); suppressed addresses are never re-added.
    """
    with _store(ctx) as store:
        report = subs.import_csv(store, file, dry_run=dry_run, skip_invalid=skip_invalid)
    for line in report.problems + report.notes:
        click.echo(f"{file}: {line}", err=True)
    verb = "imported" if report.written else "would import"
    click.echo(
        f"{verb} {report.imported}, merged {report.merged}, suppressed {report.suppressed}, "
        f"invalid {report.invalid} ({report.rows} rows)"
    )
    if report.invalid and not report.written and not dry_run:
        raise click.ClickException(
            f"{file}: {report.invalid} bad row(s), nothing imported; fix them or use --skip-invalid"
        )


@subscribers.command("list")
@click.option("--status", type=click.Choice([*subs.STATUSES, "suppressed"]), help="Only these.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@click.pass_context
def list_(ctx: click.Context, status: str | None, as_json: bool) -> None:
    """List subscribers (addresses masked; `show` one for the full record)."""
    with _store(ctx) as store:
        for sub in subs.list_subscribers(store, status):
            if as_json:
                row = {
                    "id": sub.id,
                    "email": subs.mask(sub.email),
                    "status": sub.status,
                    "created_at": sub.created_at,
                }
                click.echo(json.dumps(row, ensure_ascii=False))
            else:
                click.echo(
                    f"{sub.id}  {sub.status:<12}  {sub.created_at[:10]}  {subs.mask(sub.email)}"
                )


@subscribers.command("show")
@click.argument("email_or_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show(ctx: click.Context, email_or_id: str, as_json: bool) -> None:
    """Show one subscriber (by address or id) and their full consent history."""
    with _store(ctx) as store:
        data = subs.show(store, email_or_id)
        data["bounces"] = bounce_history(store, data["subscriber"]["id"])
    if as_json:
        echo_json(data)
        return
    sub = data["subscriber"]
    click.echo(f"{sub['email'] or '(erased)'}  {sub['name'] or ''}".rstrip())
    click.echo(
        f"id {sub['id']}, {sub['status']}{', suppressed' if data['suppressed'] else ''}, "
        f"since {sub['created_at']}"
    )
    for event in data["events"]:
        click.echo(
            f"  #{event['seq']} {event['at']} {event['event']} via {event['method']} "
            f"({event['source']}), statement v{event['statement']['version']}, "
            f"policy {event['policy']['version']}"
        )
    if data["bounces"]:
        click.echo("bounce history:")
    for seen in data["bounces"]:
        status = f" {seen['status']}" if seen["status"] else ""
        click.echo(
            f"  {seen['at']} {seen['kind']}{status} via {seen['source']} "
            f"(issue {seen['issue'] or '?'}): {seen['outcome']}; {seen['reason']}"
        )


@subscribers.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Counts by status, suppressions, the mailable audience and the ledger's length."""
    with _store(ctx) as store:
        counts = subs.stats(store)
    if as_json:
        echo_json(counts)
    else:
        for name, count in counts.items():
            click.echo(f"{name:<13} {count}")


@subscribers.command("unsubscribe")
@click.argument("email_or_id")
@click.option("--reason", help="Why (kept as evidence).")
@click.pass_context
def unsubscribe(ctx: click.Context, email_or_id: str, reason: str | None) -> None:
    """Unsubscribe someone at once (e.g. they asked by email)."""
    with _store(ctx) as store:
        sub = subs.lookup(store, email_or_id)
        after = subs.unsubscribe(
            store, sub.id, method="admin", source=_operator(), evidence={}, reason=reason
        )
    click.echo(f"{subs.mask(after.email)} is {after.status}")


@subscribers.command("suppress")
@click.argument("email_or_id")
@click.option("--reason", required=True, help="Why (kept as evidence).")
@click.option(
    "--kind",
    type=click.Choice(subs.SUPPRESSION_REASONS),
    default="admin",
    show_default=True,
    help="Record a bounce or complaint, or an operator's decision.",
)
@click.pass_context
def suppress(ctx: click.Context, email_or_id: str, reason: str, kind: str) -> None:
    """Never mail this address again (works for addresses not on the list too)."""
    with _store(ctx) as store:
        added = subs.suppress(store, email_or_id, reason=reason, kind=kind, source=_operator())
    shown = subs.mask(email_or_id) if "@" in email_or_id else email_or_id
    click.echo(f"{shown} {'suppressed' if added else 'was already suppressed'}")


@subscribers.command("export")
@click.argument("email_or_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON to this file instead of printing it.",
)
@click.pass_context
def export(ctx: click.Context, email_or_id: str, output: Path | None) -> None:
    """Everything held about one subscriber, as JSON (GDPR Art. 15/20)."""
    with _store(ctx) as store:
        data = subs.export(store, email_or_id, source=_operator())
    if output is None:
        echo_json(data)
    else:
        write_text(output, json.dumps(data, indent=2, ensure_ascii=False) + "\n", mode=0o600)
        click.echo(f"wrote {output}")


@subscribers.command("erase")
@click.argument("email_or_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def erase(ctx: click.Context, email_or_id: str, yes: bool) -> None:
    """Erase a subscriber for good (GDPR Art. 17) and print a receipt."""
    with _store(ctx) as store:
        found = subs.lookup(store, email_or_id)  # an unknown address fails before the prompt
        if not yes:
            click.confirm(
                f"Erase {subs.mask(found.email)} ({found.id})? This cannot be undone", abort=True
            )
        receipt = subs.erase(store, email_or_id, source=_operator())
    echo_json(receipt)


@click.group()
def consent() -> None:
    """Check the consent ledger."""


@consent.command("verify")
@click.pass_context
def verify(ctx: click.Context) -> None:
    """Recompute the hash chain; name the first broken event; print the head hash."""
    with _store(ctx) as store:
        result = consent_mod.verify(store)
    if not result.ok:
        raise click.ClickException(
            f"consent ledger broken at event {result.broken_seq}: {result.problem}"
        )
    click.echo(f"ok: {result.events} events, head #{result.head_seq} {result.head_hash}")
