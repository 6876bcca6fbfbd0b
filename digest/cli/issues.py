"""Commands about issue files: issue new/list/show/ready/skip, move, remove."""

from __future__ import annotations

import re
import sys
from datetime import date

import click

from digest import numbering
from digest.cli.common import HelpGroup, State, echo_json, echo_json_rows, plural, workspace_of
from digest.errors import DigestError, IssueError
from digest.issue import (
    Article,
    Issue,
    article_refs,
    list_issue_paths,
    load_issue,
    move_article,
    new_workspace_issue,
    numbered,
    parse_date,
    passed_note,
    remove_article,
    restore_commands,
    save_issue,
    workspace_issue,
)


class DateType(click.ParamType):
    name = "DATE"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> date:
        if isinstance(value, date):
            return value
        try:
            return parse_date(str(value))
        except IssueError as exc:
            self.fail(str(exc), param, ctx)


DATE = DateType()


@click.group(cls=HelpGroup)
def issue() -> None:
    """Create, list, show and mark issues (issues/DATE.yaml)."""


class _NewIssueCommand(click.Command):
    """`issue new --help` names the workspace's own weekday, time and zone when it can."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        slot = "the configured weekday, [schedule] in digest.toml"
        state = ctx.find_object(State)
        if state is not None:
            try:
                sched = state.workspace.config.schedule
                slot = f"{sched.weekday.title()} {sched.time} {sched.timezone}, from digest.toml"
            except DigestError:
                pass  # no workspace here: the help stays general
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(
                f"Start a new issue file for the next slot ({slot}), or for --date DATE."
            )
            formatter.write_paragraph()
            formatter.write_text(
                "A slot whose issue is sent or skipped is passed over: the week moves on. "
                "Another weekday than the configured one needs --force."
            )


@issue.command("new", cls=_NewIssueCommand)
@click.option("--date", "day", type=DATE, help="The issue's date (default: the next slot).")
@click.option("--force", is_flag=True, help="Allow a date that is not the configured weekday.")
@click.pass_context
def issue_new(ctx: click.Context, day: date | None, force: bool) -> None:
    """Start a new issue file for the next slot (or --date DATE)."""
    created, passed = new_workspace_issue(workspace_of(ctx), day, force=force)
    note = passed_note(passed)
    click.echo(f"created {created.path}" + (f" (the next slot: {note})" if note else ""))


@issue.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@click.option("--jsonl", is_flag=True, help="Print one JSON object a line.")
@click.pass_context
def issue_list(ctx: click.Context, as_json: bool, jsonl: bool) -> None:
    """List issues: date, status, article count, subject; broken files are named, not fatal."""
    if as_json and jsonl:
        raise click.UsageError("pick one of --json and --jsonl")
    issues, broken = [], []
    for path in list_issue_paths(workspace_of(ctx).issues_dir):
        try:
            issues.append(load_issue(path))
        except IssueError as exc:
            broken.append(str(exc))
    for problem in broken:
        click.echo(f"error: {problem}", err=True)
    if as_json or jsonl:
        echo_json_rows(
            (
                {
                    "date": i.slug,
                    "status": i.status,
                    "articles": len(i.articles),
                    "subject": i.subject,
                }
                for i in issues
            ),
            lines=jsonl,
        )
    else:
        if not issues and not broken:
            click.echo("No issues yet; start one with `digest issue new`.")
        for i in issues:
            count = f"{len(i.articles):>3} {plural(len(i.articles), 'article')}"
            click.echo(f"{i.slug}  {i.status:<8} {count:<12} {i.subject}")
    if broken:
        ctx.exit(1)


@issue.command("show")
@click.argument("words", nargs=-1, metavar="[DATE] [ARTICLE]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def issue_show(ctx: click.Context, words: tuple[str, ...], as_json: bool) -> None:
    """Show an issue (default: the upcoming one), its articles numbered, with references.

    With ARTICLE (a number, a reference such as gazprom-and-cnpc or a URL), show that
    article in full.
    """
    day, article = _date_and_article(words)
    ws = workspace_of(ctx)
    shown = workspace_issue(ws, day)
    sections = ws.config.newsletter.sections
    if article is not None:
        found = numbering.resolve(ws, shown, article, "issue show")
        _show_article(shown, found, sections, as_json)
        return
    numbering.shown(ws, shown)
    if as_json:
        data = shown.to_dict()
        refs = dict(zip((a.url for a in shown.articles), article_refs(shown), strict=True))
        listing = numbered(shown, sections)
        data["articles"] = [
            {"number": n, "ref": refs[a.url], **a.to_dict()} for n, a in enumerate(listing, 1)
        ]
        echo_json(data)
        return
    click.echo(format_issue(shown, sections))


def _date_and_article(words: tuple[str, ...]) -> tuple[date | None, str | None]:
    """``[DATE] [ARTICLE]``: a first word written YYYY-MM-DD is the date."""
    if len(words) > 2:
        raise click.UsageError("give at most a DATE and an ARTICLE")
    if words and re.fullmatch(r"\d{4}-\d\d-\d\d", words[0]):
        try:
            day = parse_date(words[0])
        except IssueError as exc:
            raise click.BadParameter(str(exc), param_hint="DATE") from None
        return day, words[1] if len(words) > 1 else None
    if len(words) > 1:
        raise click.UsageError(f"{words[0]!r} is not a date: write DATE first, as YYYY-MM-DD")
    return None, words[0] if words else None


def _show_article(shown: Issue, article: Article, sections: tuple[str, ...], as_json: bool) -> None:
    number = numbered(shown, sections).index(article) + 1
    ref = article_refs(shown)[shown.articles.index(article)]
    if as_json:
        echo_json({"issue": shown.slug, "number": number, "ref": ref, **article.to_dict()})
        return
    click.echo(f"{number}. {article.title or '(no title)'}  [{article.section}]")
    click.echo(f"ref {ref}")
    for key in ("url", "author", "summary", "blurb", "image", "image_alt", "image_size"):
        value = getattr(article, key)
        if value or (key == "image_alt" and value == "" and article.image):
            click.echo(f"{key + ':':<11} {value if value else '(empty: a decorative image)'}")


def format_issue(shown: Issue, sections: tuple[str, ...]) -> str:
    lines = [
        f"{shown.slug}  [{shown.status}]  {shown.subject or '(no subject)'}",
        f"preheader: {shown.preheader or '(none)'}",
    ]
    refs = dict(zip((a.url for a in shown.articles), article_refs(shown), strict=True))
    number = 0
    for section, articles in shown.by_section(sections):
        lines.append("")
        lines.append(section or "(no section)")
        for article in articles:
            number += 1
            byline = f" ({article.author})" if article.author else ""
            lines.append(f"  {number:>2}. {article.title or '(no title)'}{byline}")
            lines.append(f"      {refs[article.url]}  {article.url}")
    if not shown.articles:
        lines.append("")
        lines.append("No articles yet; add one with `digest add URL`.")
    return "\n".join(lines)


def _set_status(
    ctx: click.Context, day: date | None, status: str, allowed: tuple[str, ...]
) -> None:
    ws = workspace_of(ctx)
    target = workspace_issue(ws, day)
    if target.status not in allowed:
        raise IssueError(
            f"{target.label}: is {target.status}; only a {' or '.join(allowed)} issue "
            f"can become {status}"
        )
    target.status = status
    save_issue(target)
    click.echo(f"{target.slug} is now {status}")


@issue.command("ready")
@click.argument("day", type=DATE, required=False, metavar="[DATE]")
@click.option("--force", is_flag=True, help="Mark it ready even when `digest check` finds errors.")
@click.pass_context
def issue_ready(ctx: click.Context, day: date | None, force: bool) -> None:
    """Mark an issue ready to send (default: the upcoming one), once `digest check` passes."""
    if not force:
        from digest.check import check_issue  # deferred: render and lxml, only with --check

        ws = workspace_of(ctx)
        target = workspace_issue(ws, day)
        result = check_issue(ws, target)
        for finding in result.errors:
            click.echo(f"error: {finding.message}", err=True)
        if result.errors:
            raise IssueError(
                f"{target.label}: not marked ready: `digest check` found "
                f"{len(result.errors)} {plural(len(result.errors), 'error')}; "
                "fix them, or pass --force"
            )
    _set_status(ctx, day, "ready", ("draft", "ready"))


@issue.command("draft")
@click.argument("day", type=DATE, required=False, metavar="[DATE]")
@click.pass_context
def issue_draft(ctx: click.Context, day: date | None) -> None:
    """Take an issue back to draft (default: the upcoming one)."""
    _set_status(ctx, day, "draft", ("draft", "ready", "skipped"))


@issue.command("skip")
@click.argument("day", type=DATE, metavar="DATE")
@click.pass_context
def issue_skip(ctx: click.Context, day: date) -> None:
    """Skip the week of DATE: its slot sends nothing."""
    ws = workspace_of(ctx)
    target = workspace_issue(ws, day, create=True)
    if target.status not in ("draft", "ready", "skipped"):
        raise IssueError(f"{target.label}: is {target.status}; it cannot be skipped")
    target.status = "skipped"
    save_issue(target)
    click.echo(f"{target.slug} is now skipped")


@click.command()
@click.argument("article")
@click.option("--to", "position", type=click.IntRange(min=1), help="Position within its section.")
@click.option("--section", help="Move it to this section.")
@click.option("--issue", "day", type=DATE, help="The issue (default: the upcoming one).")
@click.pass_context
def move(
    ctx: click.Context, article: str, position: int | None, section: str | None, day: date | None
) -> None:
    """Move ARTICLE (a number or reference from `issue show`, or a URL) within or across
    sections."""
    if position is None and section is None:
        raise click.UsageError("say where: --to POSITION and/or --section SECTION")
    ws = workspace_of(ctx)
    target = workspace_issue(ws, day)
    sections = ws.config.newsletter.sections
    found = numbering.resolve(ws, target, article, "move")
    moved = move_article(target, found.url, sections, position=position, section=section)
    save_issue(target)
    numbering.shown(ws, target)
    number = numbered(target, sections).index(moved) + 1
    click.echo(f"moved {moved.title or moved.url} to {moved.section}, number {number}")


@click.command()
@click.argument("article")
@click.option("--issue", "day", type=DATE, help="The issue (default: the upcoming one).")
@click.option("--yes", is_flag=True, help="Do not ask (for scripts).")
@click.pass_context
def remove(ctx: click.Context, article: str, day: date | None, yes: bool) -> None:
    """Remove ARTICLE (a number or reference from `issue show`, or a URL) from the issue.

    Asks first on a terminal; prints the `digest add` line that puts it back. After
    a remove, a number that now names another article is refused (see `digest issue
    show` for the new numbers).
    """
    ws = workspace_of(ctx)
    target = workspace_issue(ws, day)
    sections = ws.config.newsletter.sections
    found = numbering.resolve(ws, target, article, "remove")
    number = numbered(target, sections).index(found) + 1
    restore = restore_commands(target, found.url, sections)
    if not yes and sys.stdin.isatty():
        question = f"Remove {found.title or found.url} [{found.section}] from {target.slug}?"
        if not click.confirm(question):
            click.echo("Nothing removed.")
            ctx.exit(1)
    numbering.before_removing(ws, target)
    removed = remove_article(target, found.url)
    save_issue(target)
    click.echo(
        f"removed {number}. {removed.title or removed.url} [{removed.section}] from {target.slug}"
    )
    click.echo("to put it back:")
    for line in restore:
        click.echo(line)
