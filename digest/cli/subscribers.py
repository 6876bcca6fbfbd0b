"""Commands about subscribers and consent: subscribers …, consent verify/head."""

from __future__ import annotations

import getpass
from pathlib import Path

import click

from digest import consent as consent_mod
from digest import roster
from digest.addresses import mask
from digest.bounces import history as bounce_history
from digest.cli.common import HelpGroup, echo_json, echo_json_rows, plural, workspace_of
from digest.errors import DigestError
from digest.people import audience, changes, record, rights
from digest.people.imports import generic
from digest.store import Store, open_store


def _store(ctx: click.Context) -> Store:
    return open_store(workspace_of(ctx))


def _operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name (a container without passwd entry)
        return "cli"


@click.group(cls=HelpGroup)
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
        sub = changes.admin_add(
            store,
            email,
            name,
            source=source,
            confirmed=confirmed,
            evidence={"operator": _operator()},
        )
    click.echo(f"added {mask(sub.email)} as {sub.status} (id {sub.id})")


@subscribers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check and report; write nothing.")
@click.option("--skip-invalid", is_flag=True, help="Import the good rows even if some are bad.")
@click.option(
    "--policy-version",
    metavar="V",
    help="The privacy-policy version for a file without a policy_version column.",
)
@click.pass_context
def import_(
    ctx: click.Context,
    file: Path,
    dry_run: bool,
    skip_invalid: bool,
    policy_version: str | None,
) -> None:
    """Import a CSV: email, name, consented_at, source, policy_version, ip (+ attributes).

    The delimiter (comma, semicolon or tab) is found from the header. All or
    nothing: bad rows are listed with their line numbers and nothing is
    written unless --skip-invalid. Duplicates are merged (first consent kept);
    suppressed addresses are never re-added. --dry-run reports and exits as
    the import would.
    """
    with _store(ctx) as store:
        report = generic.import_csv(
            store,
            file,
            dry_run=dry_run,
            skip_invalid=skip_invalid,
            policy_version=policy_version,
        )
    for line in report.in_file_order():
        click.echo(f"{file}: {line}", err=True)
    verb = "imported" if report.written else "would import"
    click.echo(
        f"{verb} {report.imported}, merged {report.merged}, suppressed {report.suppressed}, "
        f"invalid {report.invalid} ({report.rows} {plural(report.rows, 'row')}, "
        f"{report.delimiter}-separated)"
    )
    if report.invalid and not skip_invalid:
        bad = f"{report.invalid} bad {plural(report.invalid, 'row')}"
        if dry_run:
            raise click.ClickException(
                f"{file}: {bad}: the import would write nothing; fix them or use --skip-invalid"
            )
        raise click.ClickException(
            f"{file}: {bad}, nothing imported; fix them or use --skip-invalid"
        )


@subscribers.command("list")
@click.option("--status", type=click.Choice([*record.STATUSES, "suppressed"]), help="Only these.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@click.option("--jsonl", is_flag=True, help="Print one JSON object a line (for big lists).")
@click.pass_context
def list_(ctx: click.Context, status: str | None, as_json: bool, jsonl: bool) -> None:
    """List subscribers: id, masked address, name, status, consent date, source.

    Addresses are masked; `digest subscribers show ID` gives one full record,
    `digest subscribers export --all -o FILE` the whole list.
    """
    if as_json and jsonl:
        raise click.UsageError("pick one of --json and --jsonl")
    with _store(ctx) as store:
        if as_json or jsonl:
            echo_json_rows((r.masked().as_dict() for r in roster.rows(store, status)), lines=jsonl)
            return
        lines = roster.table(roster.rows(store, status))
        click.echo(next(lines))  # the header
        count = 0
        for line in lines:
            count += 1
            click.echo(line)
    click.echo(f"{count} {plural(count, 'subscriber')}" + (f" ({status})" if status else ""))


@subscribers.command("show")
@click.argument("email_or_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def show(ctx: click.Context, email_or_id: str, as_json: bool) -> None:
    """Show one subscriber (by address or id) and their full consent history."""
    with _store(ctx) as store:
        data = rights.show(store, email_or_id)
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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Counts by status, suppressions, the mailable audience and the ledger's length."""
    with _store(ctx) as store:
        counts = audience.stats(store)
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
        sub = record.lookup(store, email_or_id)
        after = changes.unsubscribe(
            store, sub.id, method="admin", source=_operator(), evidence={}, reason=reason
        )
    click.echo(f"{mask(after.email)} is {after.status}")


@subscribers.command("suppress")
@click.argument("email_or_id")
@click.option("--reason", required=True, help="Why (kept as evidence).")
@click.option(
    "--kind",
    type=click.Choice(record.SUPPRESSION_REASONS),
    default="admin",
    show_default=True,
    help="Record a bounce or complaint, or an operator's decision.",
)
@click.pass_context
def suppress(ctx: click.Context, email_or_id: str, reason: str, kind: str) -> None:
    """Never mail this address again (works for addresses not on the list too)."""
    with _store(ctx) as store:
        added = changes.suppress(store, email_or_id, reason=reason, kind=kind, source=_operator())
    shown = mask(email_or_id) if "@" in email_or_id else email_or_id
    click.echo(f"{shown} {'suppressed' if added else 'was already suppressed'}")


@subscribers.command("export")
@click.argument("email_or_id", required=False)
@click.option("--all", "everyone", is_flag=True, help="Export the whole list (needs -o).")
@click.option(
    "--status",
    type=click.Choice([*record.STATUSES, "suppressed"]),
    help="With --all: only subscribers with this status.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (.json; with --all also .csv) instead of printing.",
)
@click.pass_context
def export(
    ctx: click.Context,
    email_or_id: str | None,
    everyone: bool,
    status: str | None,
    output: Path | None,
) -> None:
    """Everything held about one subscriber, as JSON (GDPR Art. 15/20); or, with --all,
    the whole list with full addresses to a CSV or JSON file.

    Each export is recorded in the consent ledger as an export by the operator.
    """
    if everyone:
        if email_or_id:
            raise click.UsageError("give an address or id, or --all, not both")
        if output is None:
            raise click.UsageError("--all writes a file: add -o FILE.csv or -o FILE.json")
        with _store(ctx) as store:
            count = roster.export_all(store, output, status=status, operator=_operator())
        click.echo(f"wrote {count} {plural(count, 'subscriber')} to {output}")
        return
    if status:
        raise click.UsageError("--status goes with --all")
    if not email_or_id:
        raise click.UsageError("name a subscriber (address or id), or pass --all -o FILE")
    with _store(ctx) as store:
        if output is not None:
            rights.export_to_file(store, email_or_id, output, source=_operator())
            click.echo(f"wrote {output}")
            return
        data = rights.export(store, email_or_id, source=_operator())
    echo_json(data)


@subscribers.command("erase")
@click.argument("email_or_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def erase(ctx: click.Context, email_or_id: str, yes: bool) -> None:
    """Erase a subscriber for good (GDPR Art. 17) and print a receipt."""
    with _store(ctx) as store:
        found = record.lookup(store, email_or_id)  # an unknown address fails before the prompt
        if not yes:
            click.confirm(
                f"Erase {mask(found.email)} ({found.id})? This cannot be undone", abort=True
            )
        receipt = rights.erase(store, email_or_id, source=_operator())
    echo_json(receipt)


@click.group(cls=HelpGroup)
def consent() -> None:
    """Check the consent ledger."""


def _published_head(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list:
    try:
        return [consent_mod.parse_head(value) for value in values]
    except DigestError as exc:
        raise click.BadParameter(str(exc)) from None


@consent.command("verify")
@click.option(
    "--expect-head",
    "heads",
    multiple=True,
    metavar="SEQ:HASH",
    callback=_published_head,
    help="A head published earlier (`digest consent head`); it must still be in the ledger.",
)
@click.option(
    "--heads",
    "heads_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file of published heads, one SEQ:HASH a line (# comments allowed).",
)
@click.pass_context
def verify(ctx: click.Context, heads: list[tuple[int, str]], heads_file: Path | None) -> None:
    """Recompute the hash chain, replay it against every subscriber and the suppression
    list, and check published heads; name each problem; print the head."""
    expect = [*heads, *(consent_mod.read_heads(heads_file) if heads_file else [])]
    with _store(ctx) as store:
        result = consent_mod.verify(store, expect=expect)
    for line in result.mismatches:
        click.echo(f"mismatch: {line}", err=True)
    if result.broken_seq is not None:
        raise click.ClickException(
            f"consent ledger broken at event {result.broken_seq}: {result.problem}"
        )
    if result.problem:
        raise click.ClickException(f"consent ledger: {result.problem}")
    if result.mismatches:
        raise click.ClickException(
            f"the chain is whole but {len(result.mismatches)} record(s) disagree with it "
            "(listed above): the tables were edited outside digest"
        )
    click.echo(f"ok: {result.events} events, head #{result.head_seq} {result.head_hash}")


@consent.command("head")
@click.pass_context
def head(ctx: click.Context) -> None:
    """Print the ledger's head as SEQ:HASH, to publish (a later `verify --expect-head`
    proves nothing before it was cut off or rewritten)."""
    with _store(ctx) as store:
        click.echo(consent_mod.head(store))
