"""Commands about subscribers and consent: subscribers …, consent verify/head."""

from __future__ import annotations

import getpass
from pathlib import Path

import click

from digest import consent as consent_mod
from digest import portability, roster
from digest.addresses import mask
from digest.cli.common import HelpGroup, echo_json, echo_json_rows, plural, workspace_of
from digest.errors import DigestError
from digest.people import audience, changes, record, rights
from digest.people.imports import tools
from digest.portability import FORMATS
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
    """Add, import, reconfirm, list, show, unsubscribe, suppress, export and erase
    subscribers."""


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
@click.argument("path", metavar="PATH", type=click.Path(path_type=Path))
@click.option(
    "--from",
    "tool",
    type=click.Choice(tools.CHOICES),
    help="The tool that exported PATH (default: recognised from the header).",
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="'THEIRS=OURS'",
    help="Rename a column of your own CSV, e.g. --map 'Email Address=email' (repeatable).",
)
@click.option("--list", "list_name", metavar="NAME", help="The list's name at the old tool.")
@click.option(
    "--statement-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The exact wording the old sign-up form showed, recorded as their consent statement.",
)
@click.option(
    "--policy-version",
    metavar="V",
    help="The privacy policy they agreed to (`digest consent policy add` registers an old one).",
)
@click.option("--dry-run", is_flag=True, help="Print what would happen; write nothing.")
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Exit 0 even if some rows were refused (they are named either way).",
)
@click.pass_context
def import_(
    ctx: click.Context,
    path: Path,
    tool: str | None,
    mapping: tuple[str, ...],
    list_name: str | None,
    statement_file: Path | None,
    policy_version: str | None,
    dry_run: bool,
    skip_invalid: bool,
) -> None:
    """Import a list as Mailchimp, Substack, listmonk, Ghost, Buttondown or Kit exports it,
    or a CSV of your own columns (email, consented_at, ...; --map renames yours).

    PATH is the export as the tool hands it over (a CSV, or Mailchimp's zip). Opt-outs
    (unsubscribed, cleaned, blocklisted, ...) are suppressed, never imported as readers;
    rows without evidence of consent become pending. Bad rows are named with their line
    and left out, the rest goes in, and the exit status is 1 (0 with --skip-invalid):
    importing the fixed file again merges what is already in. --dry-run prints the same
    table and exits as the import would.
    """
    with _store(ctx) as store:
        report = tools.import_file(
            store,
            path,
            tool=tool,
            mapping=mapping,
            list_name=list_name,
            statement_file=statement_file,
            policy_version=policy_version,
            dry_run=dry_run,
        )
    for line in report.in_file_order():
        click.echo(f"{path}: {line}", err=True)
    if report.detected and report.tool != "csv":
        click.echo(f"read as a {report.title} export (recognised by its header)")
    for line in report.table():
        click.echo(line)
    verb = "imported" if report.written else "would import"
    click.echo(
        f"{verb} {report.imported} ({report.active} active, {report.pending} pending), "
        f"suppressed {report.suppressed}, merged {report.merged}, invalid {report.invalid} "
        f"({report.rows} {plural(report.rows, 'row')}, {report.delimiter}-separated)"
    )
    if report.pending:
        click.echo(
            f"{report.pending} {plural(report.pending, 'reader')} without evidence of consent "
            f"{'imported' if report.written else 'would be imported'} as pending: not mailed "
            "until they confirm (`digest subscribers reconfirm` asks them)"
        )
    if report.written and (report.imported or report.suppressed):
        click.echo(f"the imported readers' consent statement: v{report.statement}")
    if report.invalid and not skip_invalid:
        bad = f"{report.invalid} bad {plural(report.invalid, 'row')}"
        if dry_run:
            raise click.ClickException(
                f"{path}: {bad} would be left out (named above), the rest imported; fix them "
                "first, or pass --skip-invalid to accept that"
            )
        raise click.ClickException(
            f"{path}: {bad} left out (named above), the rest imported; fix those lines and "
            "import the file again (what is in already merges, nothing doubles)"
        )


@subscribers.command("reconfirm")
@click.option(
    "--status",
    type=click.Choice(["pending"]),
    default="pending",
    show_default=True,
    help="The readers to ask: those who have not confirmed.",
)
@click.option(
    "--imported-before",
    metavar="DATE",
    help="Only readers imported before DATE (e.g. the day after the migration).",
)
@click.option("--again", is_flag=True, help="Ask readers asked in an earlier round once more.")
@click.option(
    "--include-unknown", is_flag=True, help="Mail again the readers a crash left in doubt."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def reconfirm_cmd(
    ctx: click.Context,
    status: str,
    imported_before: str | None,
    again: bool,
    include_unknown: bool,
    yes: bool,
) -> None:
    """Mail the confirmation email to pending readers, once each: those who confirm become
    active with fresh evidence, the others stay pending and are never mailed an issue.

    Shows who and how many first. A run that stops is resumed by running it again; no
    reader is mailed twice (see docs/migrating.md).
    """
    from digest import reconfirm  # the confirmation email's templates load only here

    with _store(ctx) as store:
        chosen = reconfirm.plan(
            store,
            status=status,
            imported_before=imported_before,
            again=again,
            include_unknown=include_unknown,
        )
        if chosen.unknown:
            click.echo(
                f"{chosen.unknown} {plural(chosen.unknown, 'reader')} of round {chosen.round} "
                "may or may not have got the email (a run stopped while it went out); "
                "--include-unknown mails them again"
            )
        if not chosen.count:
            asked = (
                f"; {chosen.asked_before} asked in an earlier round (--again asks them once more)"
                if chosen.asked_before
                else ""
            )
            click.echo(f"nobody to ask ({chosen.scope}){asked}")
            return
        more = chosen.count - len(chosen.sample)
        who = ", ".join(chosen.sample) + (f" and {more} more" if more > 0 else "")
        doing = "resuming" if chosen.resume else "starting"
        click.echo(
            f"{doing} round {chosen.round} ({chosen.scope}): {chosen.count} "
            f"{plural(chosen.count, 'reader')} to ask: {who}"
        )
        if not yes:
            click.confirm(
                f"Mail the confirmation email to {chosen.count} {plural(chosen.count, 'reader')}?",
                abort=True,
            )
        outcome = reconfirm.run(store, chosen, include_unknown=include_unknown)
    counts = ", ".join(f"{state} {n}" for state, n in sorted(outcome.counts.items()))
    click.echo(f"round {outcome.round}: {counts}")
    if not outcome.finished:
        click.echo("some are left (deferred or stopped); run the command again to resume")


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
        data["bounces"] = rights.bounce_history(store, data["subscriber"]["id"])
    if as_json:
        echo_json(data)
        return
    sub = data["subscriber"]
    click.echo(f"{sub['email'] or '(erased)'}  {sub['name'] or ''}".rstrip())
    click.echo(
        f"id {sub['id']}, {sub['status']}{', suppressed' if data['suppressed'] else ''}, "
        f"since {sub['created_at']}"
    )
    agreed: dict[str, dict[str, str]] = {}
    for event in data["events"]:
        statement = event["statement"]
        language = f" ({statement['language']})" if statement["language"] else ""
        click.echo(
            f"  #{event['seq']} {event['at']} {event['event']} via {event['method']} "
            f"({event['source']}), statement v{statement['version']}{language}, "
            f"policy {event['policy']['version']}"
        )
        agreed.setdefault(statement["version"], statement)
    for version, statement in agreed.items():
        click.echo(f"statement v{version}: {statement['text']}")
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
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="With --all: csv (ours), json, mailchimp (.zip) or listmonk (default: from -o's suffix).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (.json; with --all also .csv, .zip) instead of printing.",
)
@click.pass_context
def export(
    ctx: click.Context,
    email_or_id: str | None,
    everyone: bool,
    status: str | None,
    fmt: str | None,
    output: Path | None,
) -> None:
    """Everything held about one subscriber, as JSON (GDPR Art. 15/20); or, with --all,
    the whole list with full addresses, in a form digest, Mailchimp or listmonk imports.

    Each export is recorded in the consent ledger as an export by the operator.
    """
    if everyone:
        if email_or_id:
            raise click.UsageError("give an address or id, or --all, not both")
        if output is None:
            raise click.UsageError("--all writes a file: add -o FILE.csv or -o FILE.json")
        with _store(ctx) as store:
            count, files = portability.export_list(
                store, output, fmt=fmt, status=status, operator=_operator()
            )
        written = ", ".join(str(f) for f in files)
        click.echo(f"wrote {count} {plural(count, 'subscriber')} to {written}")
        return
    if status or fmt:
        raise click.UsageError(f"{'--status' if status else '--format'} goes with --all")
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
    """Check the consent ledger; register the privacy policies readers agreed to."""


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
@click.option(
    "--texts",
    is_flag=True,
    help="Also print every consent statement on record, in the language readers saw it.",
)
@click.pass_context
def verify(
    ctx: click.Context, heads: list[tuple[int, str]], heads_file: Path | None, texts: bool
) -> None:
    """Recompute the hash chain, replay it against every subscriber and the suppression
    list, and check published heads; name each problem; print the head."""
    expect = [*heads, *(consent_mod.read_heads(heads_file) if heads_file else [])]
    with _store(ctx) as store:
        result = consent_mod.verify(store, expect=expect)
        shown = consent_mod.statements(store) if texts else []
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
    for text, events in shown:
        click.echo(
            f"statement v{text.version} ({text.language or 'language not recorded'}), "
            f"{events} {plural(events, 'event')}, since {text.created_at}:\n  {text.body}"
        )


@consent.command("head")
@click.pass_context
def head(ctx: click.Context) -> None:
    """Print the ledger's head as SEQ:HASH, to publish (a later `verify --expect-head`
    proves nothing before it was cut off or rewritten)."""
    with _store(ctx) as store:
        click.echo(consent_mod.head(store))


@consent.group("policy", cls=HelpGroup)
def policy() -> None:
    """Register and list privacy-policy versions (an import may name an older one)."""


@policy.command("add")
@click.argument("version")
@click.option("--url", required=True, help="Where that version of the policy was published.")
@click.option("--published", required=True, metavar="DATE", help="When it took effect.")
@click.pass_context
def policy_add(ctx: click.Context, version: str, url: str, published: str) -> None:
    """Register an older privacy policy, e.g. the one readers of an imported list agreed to;
    `digest subscribers import --policy-version VERSION` can then name it."""
    with _store(ctx) as store:
        text = consent_mod.add_policy(store, version, url, published)
    click.echo(f"policy {text.version} ({text.url}, published {text.body}) is on record")


@policy.command("list")
@click.pass_context
def policy_list(ctx: click.Context) -> None:
    """List the privacy-policy versions on record: version, URL, when published."""
    with _store(ctx) as store:
        known = consent_mod.policies(store)
    for text in known:
        published = f"published {text.body}" if text.body else "from digest.toml"
        click.echo(f"{text.version:<20}  {published:<22}  {text.url}")
