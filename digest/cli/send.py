"""Commands that mail an issue: send (and send --test, send --due), deliveries, retry."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import date
from typing import Any

import click

from digest import clock
from digest.cli.common import echo_json, plural, workspace_of
from digest.cli.issues import DATE
from digest.cli.stopping import stop_on_signals
from digest.slots import ahead_of_slot


def _stop_on_signals() -> AbstractContextManager[threading.Event]:
    """Ctrl-C and SIGTERM set the event: stop claiming, let in-flight messages finish."""
    return stop_on_signals(
        lambda signum: click.echo("\nstopping: letting messages in flight finish...", err=True)
    )


class _Meter:
    """A progress bar with rate and ETA on a terminal, a plain line every few seconds otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.bar: Any = None
        self.shown = 0
        self.last_line = 0.0

    def __call__(self, p: Any) -> None:
        if self.tty:
            if self.bar is None:
                self.bar = click.progressbar(
                    length=max(1, p.total),
                    label=f"sending {p.issue}",
                    show_eta=True,
                    show_percent=True,
                    item_show_func=lambda _: None,
                )
                self.bar.__enter__()
                self.bar.update(p.done - p.sent - p.failed - p.skipped)
                self.shown = p.done - p.sent - p.failed - p.skipped
            self.bar.label = f"sending {p.issue} {p.rate:,.0f}/s"
            self.bar.update(p.done - self.shown)
            self.shown = p.done
        elif p.elapsed - self.last_line >= 2.0 or p.done >= p.total:
            self.last_line = p.elapsed
            click.echo(
                f"{p.done}/{p.total} done: {p.sent} sent this run, {p.failed} failed, "
                f"{p.deferred} deferred, {p.unknown} unknown, {p.skipped} skipped, "
                f"{p.rate:,.0f}/s"
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _summary(report: Any) -> None:
    c = report.counts
    click.echo(
        f"{report.issue}: {c['sent']} sent, {c['failed']} failed, {c['skipped']} skipped, "
        f"{c['deferred']} deferred, {c['unknown']} unknown, {c['pending']} pending "
        f"(audience {report.audience}); this run sent {report.this_run.get('sent', 0)} "
        f"in {report.elapsed:.1f}s ({report.rate:,.0f}/s) via {report.sender}"
    )
    if report.recovered_unknown:
        click.echo(
            f"{report.recovered_unknown} "
            f"{plural(report.recovered_unknown, 'message was', 'messages were')} "
            "in flight when an earlier run died: "
            "they are unknown (they may have arrived)."
        )
    if c["unknown"]:
        click.echo(
            f"{c['unknown']} unknown: re-send them only if duplicates are acceptable, with "
            f"`digest retry {report.issue} --include-unknown`"
        )
    if report.unbound_warning:
        click.echo(report.unbound_warning, err=True)
    if report.fatal:
        click.echo(f"error: {report.fatal}", err=True)
    if report.stopped or report.fatal or not report.complete:
        if report.resume:
            click.echo(f"to resume: {report.resume}", err=True)


def _run(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    meter = _Meter()
    with _stop_on_signals() as stop:
        try:
            report = call(*args, on_progress=meter, stop_event=stop, **kwargs)
        finally:
            meter.close()
    _summary(report)
    if report.stopped or report.fatal:
        sys.exit(1)
    return report


@click.command("send")
@click.argument("day", type=DATE, required=False, metavar="[DATE]")
@click.option("--yes", is_flag=True, help="Do not ask before mailing the audience.")
@click.option("--limit", type=click.IntRange(min=1), help="Send at most N messages in this run.")
@click.option("--force", is_flag=True, help="Send an issue that is not marked ready.")
@click.option(
    "--test",
    "tests",
    multiple=True,
    metavar="ADDR",
    help="Send a [TEST] copy to ADDR (repeatable); nothing is recorded.",
)
@click.option("--due", is_flag=True, help="Send whatever the schedule says is due now (for cron).")
@click.option(
    "--retire-sent-key",
    is_flag=True,
    help="Sign with a new key although it cannot verify the last issue's links (a leaked key).",
)
@click.pass_context
def send_cmd(
    ctx: click.Context,
    day: date | None,
    yes: bool,
    limit: int | None,
    force: bool,
    tests: tuple[str, ...],
    due: bool,
    retire_sent_key: bool,
) -> None:
    """Mail an issue to every subscriber, once each; run it again to resume.

    Shows the audience and the sender and asks first, unless --yes. Ctrl-C
    stops cleanly and prints the command that resumes.
    """
    ws = workspace_of(ctx)
    if due:
        # deferred: a cron run with nothing due must not pay for the engine's imports
        from digest.schedule.due import run_due

        with _stop_on_signals() as stop:
            outcome = run_due(ws, stop_event=stop)
        for line in outcome.lines:
            click.echo(line)
        sys.exit(outcome.exit_code)
    from digest.send import engine  # deferred, as above

    issue = engine.resolve_issue(ws, day)
    if tests:
        for result in engine.send_test(ws, issue, list(tests)):
            click.echo(f"[TEST] {result.address}: {result.state} {result.detail}".rstrip())
        return
    engine.refuse_sent(ws, issue)
    prepared = engine.preflight(ws, issue, force=force, retire_sent_key=retire_sent_key)
    size, frozen = engine.audience_size(ws, issue)
    sender = engine.open_sender(ws, issue.slug)
    what = "frozen audience" if frozen else "audience"
    warning = engine.bounce_warning(ws, issue)
    if warning:
        click.echo(warning, err=True)
    click.echo(f"{issue.slug} \u201c{issue.subject}\u201d: {what} {size} via {sender.name}")
    if not yes:
        early = ahead_of_slot(ws.config.schedule, issue.date, clock.now())
        question = f"{early[0].upper()}{early[1:]}; send now anyway?" if early else "Send now?"
        if not click.confirm(question):
            click.echo("Nothing sent.")
            sys.exit(1)
    _run(
        engine.run_send,
        ws,
        issue,
        limit=limit,
        force=force,
        sender=sender,
        retire_sent_key=retire_sent_key,
        prepared=prepared,
    )


@click.command("deliveries")
@click.argument("day", type=DATE, required=False, metavar="[DATE]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def deliveries_cmd(ctx: click.Context, day: date | None, as_json: bool) -> None:
    """Show how an issue's send went: counts per state, rate, failures by reason.

    Without DATE, the issue sent last.
    """
    from digest.send.engine import delivery_stats  # deferred, as in send_cmd

    stats = delivery_stats(workspace_of(ctx), day)
    if as_json:
        echo_json(stats)
        return
    c = stats["counts"]
    click.echo(f"{stats['issue']} ({stats['status']}): audience {stats['audience']}")
    click.echo("  " + ", ".join(f"{state} {n}" for state, n in c.items()))
    if stats["rate_per_second"]:
        click.echo(
            f"  rate {stats['rate_per_second']}/s "
            f"({stats['first_sent_at']} to {stats['last_sent_at']})"
        )
    for problem in stats["problems"]:
        click.echo(f"  {problem['count']:>6} {problem['state']:<8} {problem['reason']}")
    b = stats["bounces"]
    if any(b.values()):
        click.echo(
            f"  bounced: {b['hard']} hard, {b['soft']} soft, {b['complaints']} complaints, "
            f"{b['mailbox_unsubscribes']} mailbox unsubscribes (`digest bounces {stats['issue']}`)"
        )


@click.command("retry")
@click.argument("day", type=DATE, required=False, metavar="[DATE]")
@click.option(
    "--include-unknown",
    is_flag=True,
    help="Also re-send messages whose fate is unknown (they may arrive twice).",
)
@click.pass_context
def retry_cmd(ctx: click.Context, day: date | None, include_unknown: bool) -> None:
    """Send again the deferred and temporarily failed messages of an issue.

    Without DATE, the issue sent last.
    """
    from digest.send.engine import retry  # deferred, as in send_cmd

    ws = workspace_of(ctx)
    report = _run(retry, ws, day, include_unknown)
    reset = ", ".join(f"{n} {state}" for state, n in report.reset.items() if n) or "nothing"
    click.echo(f"put back in line: {reset}")


COMMANDS: list[click.Command] = [send_cmd, deliveries_cmd, retry_cmd]
