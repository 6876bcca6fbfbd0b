"""Feeds and the candidates list they fill.

``feeds.yaml`` lists the RSS and Atom feeds the editor follows; it is edited by
hand or by ``digest feed add/remove`` (round-trip, so comments survive).
``digest feed pull`` merges the feeds' items into ``candidates.json``, where
each candidate gets a number that never changes and is never reused, so
``digest pick 7`` means the same story today and next week. A candidate picked
into an issue remembers the issue's date.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import feedparser
import httpx
import lxml.html
from lxml import etree
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from digest import clock
from digest.atomic import write_text
from digest.curate import Added, PageMeta, add_url, check_url, clean, client_or_new, fetch
from digest.errors import CurateError, DigestError, IssueError
from digest.issue import (
    canonical_section,
    check_section,
    list_issue_paths,
    load_issue,
    numbered,
    same_url,
)

if TYPE_CHECKING:
    from digest.workspace import Workspace

FEEDS_HEADER = """\
# The RSS and Atom feeds `digest feed pull` reads into the candidates list.
# Edit by hand or with `digest feed add URL [--section S]` / `digest feed remove URL`.
# A feed's section is used for items whose own category is not a configured section.
"""
FEED_MAX_BYTES = 10_000_000


@dataclass(frozen=True)
class Feed:
    url: str
    section: str = ""


@dataclass
class Candidate:
    number: int
    title: str
    link: str
    feed: str
    guid: str = ""
    author: str = ""
    section: str = ""
    summary: str = ""
    published: str = ""  # ISO 8601, UTC; empty when the feed gives no date
    found: str = ""  # when a pull first saw it
    picked: str = ""  # the date of the issue it was picked or added into
    article_url: str = ""  # the URL the issue holds for it (the page's canonical one)
    in_issue: str = ""  # the date of an issue holding its link, however it got there

    @property
    def day(self) -> date | None:
        for stamp in (self.published, self.found):
            if stamp:
                return datetime.fromisoformat(stamp).date()
        return None


CANDIDATE_KEYS = tuple(f.name for f in fields(Candidate))


# -- feeds.yaml ----------------------------------------------------------------


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _load_doc(path: Path) -> CommentedMap:
    if not path.exists():
        return _yaml().load(FEEDS_HEADER + "feeds: []\n")
    try:
        doc = _yaml().load(path.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise CurateError(f"{path}{line}: {exc.problem or 'not valid YAML'}; fix it") from None
    except UnicodeDecodeError:
        raise CurateError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise CurateError(f"{path}: must be a mapping with a `feeds:` list")
    if doc.get("feeds") is None:
        doc["feeds"] = CommentedSeq()
    if not isinstance(doc["feeds"], list):
        raise CurateError(f"{path}{_line(doc, 'feeds')}: `feeds` must be a list")
    return doc


def _line(node: Any, key: Any) -> str:
    try:
        return f":{node.lc.key(key)[0] + 1}"
    except (AttributeError, KeyError, TypeError, IndexError):
        return ""


def list_feeds(ws: Workspace) -> list[Feed]:
    path = ws.feeds_path
    doc = _load_doc(path)
    feeds = []
    items = doc["feeds"]
    for index, item in enumerate(items):
        if isinstance(item, str):
            feeds.append(Feed(url=item.strip()))
            continue
        where = f"{path}:{items.lc.item(index)[0] + 1}" if hasattr(items, "lc") else str(path)
        if not isinstance(item, dict) or not str(item.get("url") or "").strip():
            raise CurateError(f"{where}: each feed needs a url (`- url: https://…`)")
        unknown = [k for k in item if k not in ("url", "section")]
        if unknown:
            raise CurateError(f"{where}: unknown key {unknown[0]!r} (allowed: url, section)")
        feeds.append(Feed(url=str(item["url"]).strip(), section=str(item.get("section") or "")))
    return feeds


def _save_doc(path: Path, doc: CommentedMap) -> None:
    buffer = io.StringIO()
    _yaml().dump(doc, buffer)
    write_text(path, buffer.getvalue())


def add_feed(
    ws: Workspace,
    url: str,
    section: str | None = None,
    *,
    check: bool = False,
    client: httpx.Client | None = None,
) -> Feed:
    """Follow the feed at ``url``; with ``check``, only once it answers with RSS or Atom."""
    url = check_url(url)
    if section:
        section = check_section(section, ws.config.newsletter.sections)
    for feed in list_feeds(ws):
        if same_url(feed.url, url):
            raise CurateError(f"{ws.feeds_path}: already follows {url}")
    if check:
        with client_or_new(client) as http:
            try:
                read_feed(Feed(url=url), ws.config.newsletter.sections, http)
            except CurateError as exc:
                raise CurateError(
                    f"{exc}; not following it (pass --no-check to follow it anyway)"
                ) from None
    doc = _load_doc(ws.feeds_path)
    entry = CommentedMap(url=url)
    if section:
        entry["section"] = section
    doc["feeds"].append(entry)
    _save_doc(ws.feeds_path, doc)
    return Feed(url=url, section=section or "")


def remove_feed(ws: Workspace, url: str) -> Feed:
    feeds = list_feeds(ws)
    for index, feed in enumerate(feeds):
        if same_url(feed.url, url.strip()):
            doc = _load_doc(ws.feeds_path)
            del doc["feeds"][index]
            _save_doc(ws.feeds_path, doc)
            return feed
    raise CurateError(f"{ws.feeds_path}: no feed {url.strip()}; see `digest feed list`")


# -- candidates.json -------------------------------------------------------------


@dataclass
class CandidateList:
    next_number: int = 1
    items: list[Candidate] = field(default_factory=list)

    def get(self, number: int) -> Candidate:
        for item in self.items:
            if item.number == number:
                return item
        raise CurateError(f"no candidate number {number}; see `digest candidates --all`")


def load_candidates(ws: Workspace) -> CandidateList:
    path = ws.candidates_path
    if not path.exists():
        return CandidateList()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        items = [
            Candidate(**{k: v for k, v in item.items() if k in CANDIDATE_KEYS})
            for item in data["candidates"]
        ]
        numbers = [c.number for c in items]
        next_number = max([int(data.get("next_number", 1)), *(n + 1 for n in numbers)])
    except json.JSONDecodeError as exc:
        raise CurateError(
            f"{path}:{exc.lineno}: {exc.msg}; fix the file or delete it and pull again"
        ) from None
    except (KeyError, TypeError, ValueError, AttributeError):
        raise CurateError(
            f"{path}: not a candidates list digest wrote; delete it and run `digest feed pull`"
        ) from None
    return CandidateList(next_number=next_number, items=items)


def save_candidates(ws: Workspace, candidates: CandidateList) -> None:
    data = {
        "next_number": candidates.next_number,
        "candidates": [
            {k: v for k, v in asdict(c).items() if k != "in_issue"} for c in candidates.items
        ],
    }
    write_text(ws.candidates_path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def list_candidates(
    ws: Workspace, since: date | None = None, include_old: bool = False
) -> list[Candidate]:
    """Candidates in number order.

    Without ``include_old``, those picked for issues dated before today are left out.
    """
    today = clock.now().astimezone(ws.config.schedule.zone).date().isoformat()
    holding = _issue_urls(ws)
    chosen = []
    for item in load_candidates(ws).items:
        item.in_issue = holding.get(item.link.rstrip("/"), "")
        if not item.in_issue and item.article_url:
            item.in_issue = holding.get(item.article_url.rstrip("/"), "")
        placed = item.in_issue or item.picked
        if not include_old and placed and placed < today:
            continue
        day = item.day
        if since is not None and (day is None or day < since):
            continue
        chosen.append(item)
    return sorted(chosen, key=lambda c: c.number)


def _issue_urls(ws: Workspace) -> dict[str, str]:
    """Every article URL in the issue files (without a trailing slash) -> the latest issue
    date holding it; a file that does not parse is left out (`digest issue list` names it)."""
    found: dict[str, str] = {}
    for path in list_issue_paths(ws.issues_dir):
        try:
            issue = load_issue(path)
        except IssueError:
            continue
        for article in issue.articles:
            found[article.url.rstrip("/")] = issue.slug
    return found


# -- pulling -------------------------------------------------------------------


@dataclass
class PullReport:
    feed: Feed
    new: int = 0
    seen: int = 0
    error: str = ""


def pull(ws: Workspace, *, client: httpx.Client | None = None) -> list[PullReport]:
    """Fetch every feed and merge new items into the candidates list.

    A feed that fails is reported and the others still pull.
    """
    feeds = list_feeds(ws)
    if not feeds:
        raise CurateError(f"{ws.feeds_path}: no feeds yet; add one with `digest feed add URL`")
    candidates = load_candidates(ws)
    sections = ws.config.newsletter.sections
    found = clock.now().replace(microsecond=0).isoformat()
    reports = []
    with client_or_new(client) as http:
        for feed in feeds:
            report = PullReport(feed=feed)
            reports.append(report)
            try:
                entries = read_feed(feed, sections, http)
            except DigestError as exc:
                report.error = str(exc)
                continue
            report.seen = len(entries)
            for entry in entries:
                if _known(candidates, entry):
                    continue
                entry.number = candidates.next_number
                entry.found = found
                candidates.next_number += 1
                candidates.items.append(entry)
                report.new += 1
    save_candidates(ws, candidates)
    return reports


def _known(candidates: CandidateList, entry: Candidate) -> bool:
    for item in candidates.items:
        if same_url(item.link, entry.link):
            return True
        if entry.guid and item.guid == entry.guid and item.feed == entry.feed:
            return True
    return False


def read_feed(feed: Feed, sections: Sequence[str], client: httpx.Client) -> list[Candidate]:
    """The items of one feed as (unnumbered) candidates."""
    page = fetch(feed.url, client=client, max_bytes=FEED_MAX_BYTES, what="feed")
    headers = {
        "content-type": page.content_type + (f"; charset={page.charset}" if page.charset else "")
    }
    parsed = feedparser.parse(page.data, response_headers=headers)
    if not parsed.entries and (parsed.bozo or not parsed.version):
        hint = ""
        if page.content_type in ("text/html", "application/xhtml+xml"):
            hint = "; it is a web page: look in it for the feed's address (often /rss or /feed)"
        raise CurateError(
            f"{feed.url}: not an RSS or Atom feed ({page.content_type or 'no type'}){hint}"
        )
    items = []
    for entry in parsed.entries:
        link = clean(entry.get("link"))
        if not link:
            continue
        link = urljoin(page.url, link)
        items.append(
            Candidate(
                number=0,
                title=clean(entry.get("title")) or link,
                link=link,
                feed=feed.url,
                guid=clean(entry.get("id")),
                author=clean(entry.get("author")),
                section=_section(entry, feed, sections),
                summary=_plain(entry.get("summary")),
                published=_stamp(entry.get("published_parsed") or entry.get("updated_parsed")),
            )
        )
    return items


def _section(entry: Any, feed: Feed, sections: Sequence[str]) -> str:
    for tag in entry.get("tags") or []:
        name = canonical_section(str(tag.get("term") or ""), sections)
        if name in sections:
            return name
    return feed.section


def _plain(value: Any) -> str:
    """Feed summaries are often HTML: keep the text."""
    text = str(value or "")
    if "<" in text:
        try:
            text = lxml.html.fromstring(f"<div>{text}</div>").text_content()
        except (etree.ParserError, ValueError):
            pass
    return clean(text)


def _stamp(parsed: Any) -> str:
    if not parsed:
        return ""
    try:
        year, month, day, hour, minute, second = parsed[:6]
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC).isoformat()
    except (TypeError, ValueError):
        return ""


# -- picking -------------------------------------------------------------------


@dataclass
class Picked:
    candidate: Candidate
    added: Added | None = None
    error: str = ""
    notes: list[str] = field(default_factory=list)


def pick(
    ws: Workspace,
    numbers: Iterable[int],
    *,
    section: str | None = None,
    issue_date: date | None = None,
    client: httpx.Client | None = None,
) -> list[Picked]:
    """Add candidates to the issue as ``digest add`` does, and mark them picked.

    Each page is fetched for its metadata; when that fails the feed's own
    title, summary and author are used, with a warning. One candidate that
    cannot be added (already in the issue) does not stop the others.
    """
    candidates = load_candidates(ws)
    sections = ws.config.newsletter.sections
    chosen = [candidates.get(n) for n in dict.fromkeys(numbers)]
    results = []
    with client_or_new(client) as http:
        for candidate in chosen:
            result = Picked(candidate=candidate)
            results.append(result)
            if candidate.picked:
                result.notes.append(f"note: it was picked before, for {candidate.picked}")
            fallback = PageMeta(
                url=candidate.link,
                title=candidate.title,
                summary=candidate.summary,
                author=candidate.author,
                section=candidate.section,
            )
            try:
                result.added = add_url(
                    ws,
                    candidate.link,
                    section=section or _configured(candidate.section, sections),
                    issue_date=issue_date,
                    fallback=fallback,
                    client=http,
                )
            except DigestError as exc:
                result.error = str(exc)
                continue
            candidate.picked = result.added.issue.slug
            candidate.article_url = result.added.article.url
            save_candidates(ws, candidates)
    _final_numbers(ws, results)
    return results


def _final_numbers(ws: Workspace, results: list[Picked]) -> None:
    """Each added article's number once every pick is in: a later pick into an earlier
    section moves the ones before it, and two must never be reported at one number."""
    added = [r.added for r in results if r.added is not None]
    if not added or added[-1].issue.path is None:
        return
    final = load_issue(added[-1].issue.path)
    order = [a.url for a in numbered(final, ws.config.newsletter.sections)]
    for each in added:
        if each.issue.path == final.path and each.article.url in order:
            each.issue, each.number = final, order.index(each.article.url) + 1


def remember_added(ws: Workspace, url: str, added: Added) -> None:
    """After ``digest add URL``: a candidate with that link (or the page's canonical one)
    remembers the issue and the URL it went in as, so `digest candidates` marks it."""
    if not ws.candidates_path.exists():
        return
    candidates = load_candidates(ws)
    changed = False
    for item in candidates.items:
        if same_url(item.link, url) or same_url(item.link, added.article.url):
            item.picked, item.article_url = added.issue.slug, added.article.url
            changed = True
    if changed:
        save_candidates(ws, candidates)


def _configured(section: str, sections: Sequence[str]) -> str | None:
    """``section`` spelt as configured, or None when it is not a configured section."""
    name = canonical_section(section, sections) if section else ""
    return name if name in sections else None
