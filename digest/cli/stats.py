"""``digest stats``: the list's growth and what each issue did, from digest's own ledgers."""

from __future__ import annotations

from pathlib import Path

import click

from digest.cli.common import echo_json, plural, workspace_of
from digest.store import open_store
from digest.store.stats import Stats, collect

SPARKS = "▁▂▃▄▅▆▇█"
# What the editor reads for each answer to "why are you leaving?" (the reader's words
# are in the public page's template).
REASON_LABELS = {
    "too_often": "too many emails",
    "not_relevant": "not for them",
    "read_elsewhere": "reads the news elsewhere",
    "never_signed_up": "never signed up",
    "other": "another reason",
    "": "no reason picked",
}


@click.command("stats")
@click.option(
    "--weeks",
    type=click.IntRange(1, 520),
    default=12,
    show_default=True,
    help="How many weeks back, this one included (weeks start on Monday, in [schedule] timezone).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--html",
    "html",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write the Stats page with its charts to FILE: one self-contained HTML file.",
)
@click.pass_context
def stats_cmd(ctx: click.Context, weeks: int, as_json: bool, html: Path | None) -> None:
    """Show the list's growth and what each sent issue did; no opens or clicks, ever.

    Active readers week by week with confirmations, unsubscribes, bounces and
    complaints, and for each issue sent in those weeks: audience, sent, failed,
    unknown, bounces, complaints, the unsubscribes its links caused and how long
    the send took.
    """
    ws = workspace_of(ctx)
    if html is not None:
        from digest.web.stats import write_page  # deferred: the charts library, only here

        written = write_page(ws, html, weeks)
        click.echo(f"Wrote {written} ({written.stat().st_size // 1024 + 1} KB).")
        return
    with open_store(ws) as store, store.read() as conn:
        found = collect(conn, ws, weeks)
    if as_json:
        echo_json(found.to_dict())
        return
    for line in lines(found, ws.config.newsletter.name):
        click.echo(line)


def sparkline(values: list[int]) -> str:
    """One character per value, ▁ for the lowest and █ for the highest."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return SPARKS[3] * len(values)
    return "".join(SPARKS[round((v - low) * (len(SPARKS) - 1) / (high - low))] for v in values)


def _n(value: int) -> str:
    return f"{value:,}"


def _took(seconds: int | None) -> str:
    if seconds is None:
        return "sending"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def lines(found: Stats, name: str) -> list[str]:
    """The terminal view of :class:`digest.store.stats.Stats`."""
    weeks = found.weeks
    first = weeks[0]
    change = found.active - found.active_before
    out = [
        f"{name}: {_n(found.active)} active {plural(found.active, 'reader')} "
        f"({change:+,} in {len(weeks)} {plural(len(weeks), 'week')}, "
        f"from {first.start:%a %d %b %Y}; weeks start on Monday, {found.time_zone})",
        f"  trend {sparkline([w.active for w in weeks])}",
        "",
        "  week of        active  confirmed  added  unsubscribed  bounced  complained",
    ]
    for w in weeks:
        out.append(
            f"  {w.start:%d %b %Y}  {_n(w.active):>8}  {_n(w.confirmed):>9}  {_n(w.added):>5}"
            f"  {_n(w.unsubscribed):>12}  {_n(w.bounced):>7}  {_n(w.complained):>10}"
        )
    u = found.unsubscribes
    out += [
        "",
        f"  unsubscribes by link or mailbox: {_n(u['attributed'])} attributed to the issues "
        f"below, {_n(u['earlier_issues'])} to earlier issues, {_n(u['not_attributed'])} "
        "not attributed (a link mailed before links named their issue, or a mailbox report "
        "naming none)",
        "",
    ]
    if not found.issues:
        out.append(f"No issue was sent in these {len(weeks)} weeks.")
    else:
        count = len(found.issues)
        out.append(f"{count} {plural(count, 'issue')} sent in these weeks:")
        out.append(
            "  issue        audience      sent  failed  unknown   hard  soft  complaints"
            "  unsubscribed  took"
        )
        for i in found.issues:
            out.append(
                f"  {i.issue}  {_n(i.audience):>8}  {_n(i.sent):>8}  {_n(i.failed):>6}"
                f"  {_n(i.unknown):>7}  {_n(i.hard_bounces):>5}  {_n(i.soft_bounces):>4}"
                f"  {_n(i.complaints):>10}  {_n(i.unsubscribes):>12}  {_took(i.seconds)}"
            )
            extra = [
                f"{_n(n)} {what}"
                for n, what in ((i.waiting, "still waiting"), (i.skipped, "skipped"))
                if n
            ]
            if i.subject or extra:
                out.append(f"              {'; '.join([i.subject, *extra]).strip('; ')}"[:100])
    if found.answers:
        out.append("")
        reasons = ", ".join(
            f"{REASON_LABELS.get(key, key)} {_n(n)}"
            for key, n in sorted(found.reasons.items(), key=lambda kv: -kv[1])
        )
        out.append(
            f'"Why are you leaving?": {_n(found.answers)} '
            f"{plural(found.answers, 'answer')} ({reasons})"
        )
        for answer in found.texts:
            said = " ".join(answer.text.split())
            where = answer.issue or "no issue"
            out.append(f"  {where:<10}  {REASON_LABELS.get(answer.reason, '')}: {said}")
    return out


COMMANDS: list[click.Command] = [stats_cmd]
