"""`digest bounces [DATE]`, `digest bounces fetch`, `digest bounces ingest`."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import click

from digest.bounces import report
from digest.cli.common import echo_json, workspace_of
from digest.cli.issues import DATE
from digest.errors import StoreError
from digest.store import open_store

_DAY = re.compile(r"\d{4}-\d\d-\d\d")


class _BouncesGroup(click.Group):
    """``digest bounces 2026-12-04`` reads as the report for that date, not a subcommand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in super().list_commands(ctx) if name != "show"]

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and _DAY.fullmatch(args[0]):
            return "show", self.commands["show"], args
        return super().resolve_command(ctx, args)


def _print_report(data: dict[str, Any]) -> None:
    if data.get("issue") is None:
        click.echo("no issue has been sent yet: nothing to report")
        return
    click.echo(
        f"{data['issue']}: audience {data['audience']}: {data['hard']} hard "
        f"({data['hard_rate']:.2%}), {data['soft']} soft, {data['complaints']} complaints "
        f"({data['complaint_rate']:.2%}), {data['mailbox_unsubscribes']} mailbox unsubscribes, "
        f"{data['other']} other"
    )
    if data["by_reason"]:
        click.echo("  by reason:")
        for row in data["by_reason"]:
            status = f" {row['status']}" if row["status"] else ""
            click.echo(f"  {row['count']:>6} {row['kind']:<11}{status} {row['reason']}")
    if data["by_domain"]:
        click.echo("  by recipient domain:")
        for row in data["by_domain"]:
            click.echo(f"  {row['count']:>6} {row['kind']:<11} {row['domain'] or '(unknown)'}")
    for outcome, count in sorted(data["not_counted"].items()):
        click.echo(f"  {count} report(s) {outcome}: ignored")
    elsewhere = data.get("unattributed") or {}
    if elsewhere:
        shown = ", ".join(f"{n} {outcome}" for outcome, n in sorted(elsewhere.items()))
        click.echo(f"  reports naming no issue of ours (any date): {shown}")


@click.group("bounces", cls=_BouncesGroup, invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def bounces(ctx: click.Context, as_json: bool) -> None:
    """Bounces, complaints and mailbox unsubscribes of an issue (default: the last sent).

    `digest bounces [DATE] [--json]` shows hard and soft bounces, complaints and
    mailbox unsubscribes by reason and by recipient domain, addresses masked.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(show, day=None, as_json=as_json)


@bounces.command("show", hidden=True)
@click.argument("day", type=DATE, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def show(ctx: click.Context, day: date | None, as_json: bool) -> None:
    """The report for the issue of DATE (what `digest bounces DATE` runs)."""
    as_json = as_json or bool(ctx.parent and ctx.parent.params.get("as_json"))
    with open_store(workspace_of(ctx)) as store:
        data = report(store, day.isoformat() if day else None)
    if as_json:
        echo_json(data)
    else:
        _print_report(data)


def _print_intake(done: Any, as_json: bool) -> None:
    if as_json:
        echo_json(done.to_dict())
        return
    outcomes = ", ".join(f"{n} {o}" for o, n in sorted(done.outcomes.items())) or "nothing"
    click.echo(f"{done.messages} message(s) read: {outcomes}")
    for refusal in done.refusals:
        click.echo(f"refused: {refusal}", err=True)
    for problem in done.problems:
        click.echo(f"problem: {problem}", err=True)
    if done.problems:
        raise click.exceptions.Exit(1)


@bounces.command("fetch")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def fetch(ctx: click.Context, as_json: bool) -> None:
    """Read bounce and complaint reports from the IMAP mailbox in [bounces.imap].

    Each message is processed once, then moved (or deleted); run it from cron.
    """
    # deferred: the intake loads the message builder (and premailer) only when used
    from digest.send.intake.mailbox import fetch as fetch_reports

    with _tempfail():
        with open_store(workspace_of(ctx)) as store:
            done = fetch_reports(store)
    _print_intake(done, as_json)


@contextlib.contextmanager
def _tempfail() -> Iterator[None]:
    """A busy, locked or unreachable database exits 75 (EX_TEMPFAIL): an MTA pipe keeps
    the message and tries again; cron simply runs again."""
    try:
        yield
    except StoreError as exc:
        click.echo(f"Error: {exc} (exit 75: try again later)", err=True)
        raise click.exceptions.Exit(75) from None


@bounces.command("ingest")
@click.argument("source", metavar="FILE|DIR|-")
@click.option(
    "--to",
    "delivered_to",
    metavar="ADDRESS",
    default="",
    help="The address the message was delivered to (an MTA pipe's recipient).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def ingest(ctx: click.Context, source: str, delivered_to: str, as_json: bool) -> None:
    """Read reports from a message file, a Maildir, an mbox, or standard input (-).

    For an MTA that pipes each message to a command (Postfix pipe(8), .forward).
    """
    from digest.send.intake.files import ingest as ingest_reports  # deferred, as above

    with _tempfail():
        with open_store(workspace_of(ctx)) as store:
            done = ingest_reports(store, source, delivered_to=delivered_to)
    _print_intake(done, as_json)
