"""Commands that collect articles: add, feed, candidates, pick."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date

import click

from digest import feeds as feeds_mod
from digest import numbering
from digest.cli.common import HelpGroup, echo_json, workspace_of
from digest.cli.issues import DATE
from digest.curate import Added, add_url
from digest.errors import CurateError


def _say_added(added: Added) -> None:
    article = added.article
    click.echo(
        f"added {added.number}. {article.title} [{article.section}] "
        f"to {added.issue.slug} ({added.issue.path})"
    )
    for note in added.notes:
        click.echo(f"  {note}")


@click.command()
@click.argument("url")
@click.option("--section", help="Section to file it under (default: the page's, else the first).")
@click.option("--blurb", help="The editor's note under the article (Markdown).")
@click.option("--issue", "day", type=DATE, help="The issue (default: the upcoming one).")
@click.option("--title", help="Use this title instead of the page's.")
@click.option("--summary", help="Use this summary instead of the page's.")
@click.option("--author", help="Use this author instead of the page's.")
@click.option("--image", help="Use this image URL instead of the page's.")
@click.option("--image-alt", help="Alt text of the image.")
@click.option("--no-fetch", is_flag=True, help="Do not fetch the page (needs --title).")
@click.pass_context
def add(
    ctx: click.Context,
    url: str,
    section: str | None,
    blurb: str | None,
    day: date | None,
    title: str | None,
    summary: str | None,
    author: str | None,
    image: str | None,
    image_alt: str | None,
    no_fetch: bool,
) -> None:
    """Add the article at URL, reading its title, summary and image from the page.

    The page's Open Graph, Twitter card and JSON-LD metadata fill the entry;
    the options override them. The upcoming issue is created if missing.
    """
    overrides = {
        "title": title,
        "summary": summary,
        "author": author,
        "image": image,
        "image_alt": image_alt,
    }
    added = add_url(
        workspace_of(ctx),
        url,
        section=section,
        blurb=blurb,
        issue_date=day,
        overrides=overrides,
        fetch=not no_fetch,
    )
    feeds_mod.remember_added(workspace_of(ctx), url, added)
    numbering.shown(workspace_of(ctx), added.issue)  # the numbers, as `added N.` says them
    _say_added(added)


@click.group(cls=HelpGroup)
def feed() -> None:
    """Follow RSS and Atom feeds (feeds.yaml) that fill the candidates list."""


@feed.command("add")
@click.argument("url")
@click.option("--section", help="Section for items whose category is not a configured section.")
@click.option("--no-check", is_flag=True, help="Do not fetch it to check that it is a feed.")
@click.pass_context
def feed_add(ctx: click.Context, url: str, section: str | None, no_check: bool) -> None:
    """Follow the feed at URL, once it answers with RSS or Atom."""
    added = feeds_mod.add_feed(workspace_of(ctx), url, section, check=not no_check)
    click.echo(f"following {added.url}" + (f" [{added.section}]" if added.section else ""))


@feed.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@click.pass_context
def feed_list(ctx: click.Context, as_json: bool) -> None:
    """List the feeds followed."""
    followed = feeds_mod.list_feeds(workspace_of(ctx))
    if as_json:
        echo_json([asdict(f) for f in followed])
        return
    if not followed:
        click.echo("No feeds yet; add one with `digest feed add URL`.")
    for item in followed:
        click.echo(item.url + (f"  [{item.section}]" if item.section else ""))


@feed.command("remove")
@click.argument("url")
@click.pass_context
def feed_remove(ctx: click.Context, url: str) -> None:
    """Stop following the feed at URL (its candidates stay)."""
    removed = feeds_mod.remove_feed(workspace_of(ctx), url)
    click.echo(f"no longer following {removed.url}")


@feed.command("pull")
@click.pass_context
def feed_pull(ctx: click.Context) -> None:
    """Fetch every feed and add new items to the candidates list.

    A feed that fails is reported and the others still pull; the exit status
    is 1 when any feed failed.
    """
    reports = feeds_mod.pull(workspace_of(ctx))
    for report in reports:
        if report.error:
            click.echo(f"failed  {report.error}", err=True)
        else:
            click.echo(f"{report.new:>3} new of {report.seen:>3}  {report.feed.url}")
    failed = sum(1 for r in reports if r.error)
    if failed:
        raise CurateError(f"{failed} of {len(reports)} feeds failed; the others were pulled")
    click.echo("See them with `digest candidates`; pick with `digest pick N`.")


@click.command()
@click.option("--since", type=DATE, help="Only those published on or after this date.")
@click.option("--all", "show_all", is_flag=True, help="Also those picked for past issues.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@click.pass_context
def candidates(ctx: click.Context, since: date | None, show_all: bool, as_json: bool) -> None:
    """List the candidates pulled from feeds, numbered for `digest pick`."""
    items = feeds_mod.list_candidates(workspace_of(ctx), since=since, include_old=show_all)
    if as_json:
        echo_json([asdict(c) for c in items])
        return
    if not items:
        click.echo("No candidates; run `digest feed pull`.")
    for item in items:
        if item.in_issue:
            mark = f"in {item.in_issue}"
        elif item.picked:
            mark = f"picked for {item.picked}, not in it now"
        else:
            mark = ""
        day = item.day.isoformat() if item.day else ""
        byline = f" ({item.author})" if item.author else ""
        click.echo(
            f"{item.number:>4}. {day:<10} [{item.section or '-'}] {item.title}{byline}"
            + (f"  <{mark}>" if mark else "")
        )
        click.echo(f"      {item.link}")


@click.command()
@click.argument("numbers", nargs=-1, required=True, type=click.IntRange(min=1))
@click.option("--section", help="Section for all of them (default: each one's own).")
@click.option("--issue", "day", type=DATE, help="The issue (default: the upcoming one).")
@click.pass_context
def pick(
    ctx: click.Context, numbers: tuple[int, ...], section: str | None, day: date | None
) -> None:
    """Add candidates (numbers from `digest candidates`), as `digest add` does."""
    results = feeds_mod.pick(workspace_of(ctx), numbers, section=section, issue_date=day)
    added = [r.added for r in results if r.added is not None]
    if added:
        numbering.shown(workspace_of(ctx), added[-1].issue)  # the numbers printed below
    for result in results:
        for note in result.notes:
            click.echo(f"  {result.candidate.number}: {note}")
        if result.added is not None:
            _say_added(result.added)
        else:
            click.echo(f"not added {result.candidate.number}: {result.error}", err=True)
    failed = [r for r in results if r.added is None]
    if failed:
        numbers_text = ", ".join(str(r.candidate.number) for r in failed)
        raise CurateError(f"could not pick {numbers_text}; see above")
