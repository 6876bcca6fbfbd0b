"""Reading an article page's metadata, and adding the article to an issue.

:func:`fetch_article` fetches a page with httpx (redirects followed, a
timeout, a size cap) and reads what the publisher says about the article,
trusting the most deliberate source first:

1. Open Graph (``og:title`` …) and ``article:section`` / ``article:author``,
2. Twitter cards (``twitter:title`` …),
3. JSON-LD ``NewsArticle`` and kin (also inside ``@graph``),
4. ``<title>`` (minus a trailing " | Site Name") and ``<meta name=description|author>``.

:func:`add_url` is ``digest add``: fetch, apply the editor's overrides, pick a
section, refuse a duplicate, save the issue. A page that cannot be fetched is
a :class:`CurateError` that tells the editor how to add it by hand.
"""

from __future__ import annotations

import codecs
import html
import json
import re
import shlex
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import httpx
import lxml.html
from lxml import etree

from digest import __version__
from digest.errors import CurateError, IssueError
from digest.images import HEAD_BYTES, dimensions
from digest.issue import (
    Article,
    Issue,
    add_article,
    canonical_section,
    check_section,
    create_issue,
    next_open_date,
    passed_note,
    same_url,
    save_issue,
    workspace_issue,
)
from digest.issue_status import went_out_before

if TYPE_CHECKING:
    from digest.workspace import Workspace

TIMEOUT = 10.0
MAX_BYTES = 5_000_000
USER_AGENT = f"digest/{__version__} (newsletter curation)"
HTML_TYPES = ("text/html", "application/xhtml+xml")
OVERRIDE_KEYS = ("title", "summary", "author", "image", "image_alt")
ARTICLE_TYPES = {
    "Article",
    "NewsArticle",
    "ReportageNewsArticle",
    "OpinionNewsArticle",
    "AnalysisNewsArticle",
    "BackgroundNewsArticle",
    "ReviewNewsArticle",
    "AskPublicNewsArticle",
    "SatiricalArticle",
    "BlogPosting",
    "LiveBlogPosting",
    "Report",
    "TechArticle",
    "ScholarlyArticle",
}
# Labels browsers treat as windows-1252 whatever they say (WHATWG Encoding).
_AS_1252 = {"ascii", "us-ascii", "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1"}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_TITLE_SEPARATORS = (" | ", " - ", " – ", " — ", " · ", " :: ", " : ")


@dataclass
class PageMeta:
    """What a page says about itself; ``url`` is the canonical URL."""

    url: str
    title: str = ""
    summary: str = ""
    author: str = ""
    section: str = ""
    image: str = ""
    image_alt: str = ""
    image_size: str = ""  # "WIDTHxHEIGHT" when the page states it (og:image:width/height)
    site_name: str = ""
    final_url: str = ""
    not_article: str = ""  # why the page does not look like an article; empty when it does


@dataclass
class Fetched:
    url: str  # the final URL, after redirects
    content_type: str
    data: bytes
    charset: str | None = None


# -- fetching ----------------------------------------------------------------


def check_url(url: str) -> str:
    url = url.strip()
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number, or out of range
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise CurateError(
            f"{url!r} is not a valid URL ({exc}); give the article's full address"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CurateError(f"{url!r} is not an http(s) URL; give the article's full address")
    return url


def _by_hand(url: str) -> str:
    return f'add it by hand with `digest add {url} --title "..." --no-fetch`'


@contextmanager
def client_or_new(client: httpx.Client | None, timeout: float = TIMEOUT) -> Iterator[httpx.Client]:
    """``client`` as it is, else a new one closed on the way out."""
    if client is not None:
        yield client
        return
    with new_client(timeout) as made:
        yield made


def new_client(timeout: float = TIMEOUT) -> httpx.Client:
    """An httpx client as digest fetches with: redirects followed, our User-Agent."""
    return httpx.Client(
        follow_redirects=True,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
    )


def fetch(
    url: str,
    *,
    timeout: float = TIMEOUT,
    max_bytes: int = MAX_BYTES,
    client: httpx.Client | None = None,
    what: str = "page",
) -> Fetched:
    """GET ``url``: redirects followed, at most ``max_bytes``, ``timeout`` seconds in all."""
    url = check_url(url)
    way_out = _feed_way_out(url) if what == "feed" else _by_hand(url)
    deadline = time.monotonic() + timeout
    try:
        with (
            client_or_new(client, timeout) as http,
            http.stream("GET", url, follow_redirects=True, timeout=timeout) as response,
        ):
            if response.status_code >= 400:
                reason = response.reason_phrase or "error"
                if what == "feed":
                    raise CurateError(
                        f"{url}: the server answered HTTP {response.status_code} {reason}: "
                        f"the feed URL is wrong or the feed has moved; {way_out}"
                    )
                raise CurateError(
                    f"{url}: the server answered HTTP {response.status_code} {reason}; "
                    f"check the URL, or {way_out}"
                )
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise _too_big(url, max_bytes, what, way_out)
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise _too_big(url, max_bytes, what, way_out)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("total time exceeded")
                chunks.append(chunk)
            content_type = response.headers.get("Content-Type", "")
            return Fetched(
                url=str(response.url),
                content_type=content_type.split(";")[0].strip().lower(),
                data=b"".join(chunks),
                charset=response.charset_encoding,
            )
    except httpx.TimeoutException:
        raise CurateError(
            f"{url}: no answer within {timeout:g} s; try again later, or {way_out}"
        ) from None
    except httpx.TooManyRedirects:
        raise CurateError(f"{url}: too many redirects; {way_out}") from None
    except httpx.ConnectError as exc:
        host = urlsplit(url).netloc
        raise CurateError(
            f"{url}: cannot connect to {host} ({_reason(exc)}); "
            f"check the URL and your network, or {way_out}"
        ) from None
    except httpx.HTTPError as exc:
        raise CurateError(f"{url}: {_reason(exc)}; {way_out}") from None


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    for prefix in ("[Errno ", "[errno "):
        if text.startswith(prefix) and "] " in text:
            text = text.split("] ", 1)[1]
    return text or type(exc).__name__


def _too_big(url: str, max_bytes: int, what: str, way_out: str) -> CurateError:
    kind = "a feed" if what == "feed" else "an article page"
    return CurateError(
        f"{url}: the {what} is larger than the {max_bytes:,}-byte cap; "
        f"it is probably not {kind}; {way_out}"
    )


def _feed_way_out(url: str) -> str:
    return (
        "find the site's feed address and replace this one "
        f"(`digest feed remove {url}`, then `digest feed add URL`)"
    )


def decode_html(data: bytes, header_charset: str | None = None) -> str:
    """The page as text: charset from the header, else ``<meta>``, else a BOM, else UTF-8."""
    for label in (header_charset, _sniff_meta_charset(data[:4096])):
        codec = _codec(label)
        if codec:
            return data.decode(codec, errors="replace")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8-sig", errors="replace")


def _sniff_meta_charset(head: bytes) -> str | None:
    match = _META_CHARSET.search(head)
    return match.group(1).decode("ascii") if match else None


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    if label in _AS_1252:
        return "cp1252"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


# -- reading metadata ----------------------------------------------------------


def clean(value: Any) -> str:
    """Text with entities decoded and whitespace collapsed."""
    if value is None:
        return ""
    return " ".join(html.unescape(str(value)).split())


def parse_page(text: str, url: str) -> PageMeta:
    """Read an article's metadata from HTML ``text`` fetched from ``url``."""
    try:
        root = lxml.html.document_fromstring(text.encode("utf-8"), parser=_PARSER)
    except (etree.ParserError, ValueError):
        raise CurateError(f"{url}: the page is empty or not HTML; {_by_hand(url)}") from None
    metas: dict[str, str] = {}
    for meta in root.iter("meta"):
        key = (meta.get("property") or meta.get("name") or "").strip().lower()
        content = meta.get("content")
        if key and content is not None and clean(content) and key not in metas:
            metas[key] = clean(content)
    ld = _json_ld_article(root)
    og_image = (
        metas.get("og:image") or metas.get("og:image:url") or metas.get("og:image:secure_url")
    )
    tw_image = metas.get("twitter:image") or metas.get("twitter:image:src")
    ld_image, ld_image_alt = _ld_image(ld.get("image"))

    author = metas.get("article:author", "")
    if _looks_like_url(author):
        author = ""
    site_name = metas.get("og:site_name") or _ld_name(ld.get("publisher"))
    title_tag = root.find(".//title")
    page_title = _strip_site_name(
        clean(title_tag.text_content()) if title_tag is not None else "", site_name
    )

    image_size = ""
    if og_image:
        image, image_alt = og_image, metas.get("og:image:alt", "")
        image_size = _size(metas.get("og:image:width"), metas.get("og:image:height"))
    elif tw_image:
        image, image_alt = tw_image, metas.get("twitter:image:alt", "")
    else:
        image, image_alt = ld_image, ld_image_alt
        image_size = _ld_image_size(ld.get("image"))

    canonical = ""
    for link in root.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        if "canonical" in rel and link.get("href"):
            canonical = clean(link.get("href"))
            break
    canonical = canonical or metas.get("og:url", "") or _ld_url(ld)
    resolved = _absolute(canonical, url) if canonical else ""

    deliberate_title = _first(
        metas.get("og:title"), metas.get("twitter:title"), clean(ld.get("headline"))
    )
    any_summary = _first(
        metas.get("og:description"),
        metas.get("twitter:description"),
        clean(ld.get("description")),
        metas.get("description"),
    )
    heading = root.find(".//h1")
    heading_text = clean(heading.text_content()) if heading is not None else ""
    not_article = ""
    if page_title.startswith("Index of ") or heading_text.startswith("Index of "):
        not_article = "it is a directory listing"
    elif not deliberate_title and not ld and not any_summary:
        not_article = "it has no title beyond <title> and no description"

    return PageMeta(
        not_article=not_article,
        url=resolved or url,
        title=_first(
            metas.get("og:title"),
            metas.get("twitter:title"),
            clean(ld.get("headline") or ld.get("name")),
            page_title,
        ),
        summary=_first(
            metas.get("og:description"),
            metas.get("twitter:description"),
            clean(ld.get("description")),
            metas.get("description"),
        ),
        author=_first(author, _ld_authors(ld.get("author")), metas.get("author")),
        section=_first(metas.get("article:section"), _ld_section(ld.get("articleSection"))),
        image=_absolute(image, url) if image else "",
        image_alt=image_alt,
        image_size=image_size if image else "",
        site_name=site_name,
        final_url=url,
    )


_PARSER = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True)


def _first(*values: str | None) -> str:
    for value in values:
        if value:
            return value
    return ""


def _looks_like_url(text: str) -> bool:
    return bool(re.match(r"^(https?:)?//", text))


def _absolute(link: str, base: str) -> str:
    """``link`` resolved against ``base``; empty for anything but http(s)."""
    resolved = urljoin(base, link.strip())
    return resolved if urlsplit(resolved).scheme in ("http", "https") else ""


def _strip_site_name(title: str, site_name: str) -> str:
    if not site_name:
        return title
    for separator in _TITLE_SEPARATORS:
        suffix = separator + site_name
        if title.lower().endswith(suffix.lower()) and len(title) > len(suffix):
            return title[: -len(suffix)].strip()
        prefix = site_name + separator
        if title.lower().startswith(prefix.lower()) and len(title) > len(prefix):
            return title[len(prefix) :].strip()
    return title


def _json_ld_article(root: Any) -> dict[str, Any]:
    """The first Article-like object in the page's JSON-LD, or {}."""
    for script in root.iter("script"):
        if (script.get("type") or "").strip().lower() != "application/ld+json":
            continue
        try:
            data = json.loads(script.text or "", strict=False)
        except ValueError:
            continue  # a broken block on a real site: the other sources remain
        for node in _ld_nodes(data):
            types = node.get("@type")
            names = types if isinstance(types, list) else [types]
            if any(isinstance(t, str) and t.split("/")[-1] in ARTICLE_TYPES for t in names):
                return node
    return {}


def _ld_nodes(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, list):
        for item in data:
            yield from _ld_nodes(item)
    elif isinstance(data, dict):
        yield data
        if "@graph" in data:
            yield from _ld_nodes(data["@graph"])


def _ld_name(value: Any) -> str:
    if isinstance(value, str):
        return "" if _looks_like_url(value) else clean(value)
    if isinstance(value, dict):
        return clean(value.get("name"))
    if isinstance(value, list) and value:
        return _ld_name(value[0])
    return ""


def _ld_authors(value: Any) -> str:
    """One author, or "A and B", or "A, B and C"."""
    items = value if isinstance(value, list) else [value]
    names: list[str] = []
    for item in items:
        name = _ld_name(item)
        if name and name not in names:
            names.append(name)
    if len(names) <= 1:
        return names[0] if names else ""
    return ", ".join(names[:-1]) + " and " + names[-1]


def _ld_section(value: Any) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    return clean(value) if isinstance(value, str) else ""


def _ld_image(value: Any) -> tuple[str, str]:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, str):
        return clean(value), ""
    if isinstance(value, dict):
        return clean(value.get("url") or value.get("contentUrl")), clean(value.get("caption"))
    return "", ""


def _size(width: Any, height: Any) -> str:
    """``"WxH"`` from two stated numbers of pixels, or "" when either is missing or odd."""
    try:
        w, h = int(str(width).strip()), int(str(height).strip())
    except (TypeError, ValueError):
        return ""
    return f"{w}x{h}" if 0 < w < 100_000 and 0 < h < 100_000 else ""


def _ld_image_size(value: Any) -> str:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        return _size(value.get("width"), value.get("height"))
    return ""


def measure_image(url: str, *, client: httpx.Client | None = None, timeout: float = TIMEOUT) -> str:
    """``"WxH"`` read from the first bytes of the image at ``url``; "" when that fails.

    Asks for a byte range; a server that ignores it is read only as far as
    :data:`digest.images.HEAD_BYTES`. A missing size never stops ``digest add``.
    """
    try:
        with (
            client_or_new(client, timeout) as http,
            http.stream(
                "GET",
                url,
                headers={"Range": f"bytes=0-{HEAD_BYTES - 1}"},
                follow_redirects=True,
                timeout=timeout,
            ) as response,
        ):
            if response.status_code >= 400:
                return ""
            head = b""
            for chunk in response.iter_bytes():
                head += chunk
                if len(head) >= HEAD_BYTES:
                    break
    except httpx.HTTPError:
        return ""
    size = dimensions(head[:HEAD_BYTES])
    return f"{size[0]}x{size[1]}" if size else ""


def _ld_url(ld: Mapping[str, Any]) -> str:
    for key in ("url", "mainEntityOfPage"):
        value = ld.get(key)
        if isinstance(value, dict):
            value = value.get("@id") or value.get("url")
        if isinstance(value, str) and value.strip():
            return clean(value)
    return ""


def fetch_article(
    url: str,
    *,
    timeout: float = TIMEOUT,
    max_bytes: int = MAX_BYTES,
    client: httpx.Client | None = None,
) -> PageMeta:
    """Fetch an article page and read its metadata."""
    page = fetch(url, timeout=timeout, max_bytes=max_bytes, client=client)
    if page.content_type and page.content_type not in HTML_TYPES:
        raise CurateError(f"{url}: is {page.content_type}, not an HTML page; {_by_hand(url)}")
    return parse_page(decode_html(page.data, page.charset), page.url)


# -- adding to an issue ----------------------------------------------------------


@dataclass
class Added:
    """What ``digest add`` did: the issue, the article, its number and any notes."""

    issue: Issue
    article: Article
    number: int
    notes: list[str] = field(default_factory=list)


def add_url(
    ws: Workspace,
    url: str,
    *,
    section: str | None = None,
    blurb: str | None = None,
    issue_date: date | None = None,
    overrides: Mapping[str, str | None] | None = None,
    fetch: bool = True,
    fallback: PageMeta | None = None,
    client: httpx.Client | None = None,
    timeout: float = TIMEOUT,
) -> Added:
    """``digest add``: put the article at ``url`` into the issue (the upcoming one by default).

    ``overrides`` (title, summary, author, image, image_alt) win over the page.
    Without ``fetch`` a title is required. ``fallback`` is used, with a note,
    when the page cannot be fetched (a feed item's own title and summary).
    """
    url = check_url(url)
    given = _overrides(overrides)
    sections = ws.config.newsletter.sections
    if section is not None:
        section = check_section(section, sections)
    notes: list[str] = []

    issue = _existing_issue(ws, issue_date)
    if issue is not None:
        _refuse_duplicate(issue, url)
    meta = _page(url, given, fetch, fallback, client, timeout, notes)
    values = _article_values(url, meta, given)
    image_size = _image_size(meta, values, fetch, client, timeout)
    if section is None:
        section = _section_of(meta, sections, notes)

    if issue is None:
        day, passed = next_open_date(ws)
        issue = create_issue(ws.issues_dir, day, ws.config.newsletter.name)
        note = passed_note(passed)
        notes.append(
            f"started the issue of {issue.slug}" + (f" ({note}: the week moved on)" if note else "")
        )
    if not same_url(meta.url, url):
        _refuse_duplicate(issue, meta.url)
    article = Article(
        url=meta.url,
        section=section,
        blurb=(blurb or "").strip(),
        image_size=image_size,
        **values,
    )
    index = add_article(issue, article, sections)
    save_issue(issue)
    _note_earlier_run(ws, issue, url, article.url, notes)
    return Added(issue=issue, article=article, number=index + 1, notes=notes)


def _note_earlier_run(ws: Workspace, issue: Issue, given: str, url: str, notes: list[str]) -> None:
    """A warning when an earlier issue already took this article out to readers."""
    earlier = went_out_before(ws.issues_dir, issue.date)
    when = earlier.get(url.rstrip("/")) or earlier.get(given.rstrip("/"))
    if when is not None:
        notes.append(
            f"warning: {given} went out in the issue of {when} already; take it out with "
            f"`digest remove {shlex.quote(url)} --issue {issue.slug}` unless you mean to run "
            "it again"
        )


def _overrides(overrides: Mapping[str, str | None] | None) -> dict[str, str]:
    """The overrides given (not None), refusing a key that is not one of OVERRIDE_KEYS."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(given) - set(OVERRIDE_KEYS)
    if unknown:
        raise CurateError(
            f"unknown override {sorted(unknown)[0]!r}; use {', '.join(OVERRIDE_KEYS)}"
        )
    return given


def _page(
    url: str,
    given: dict[str, str],
    fetch: bool,
    fallback: PageMeta | None,
    client: httpx.Client | None,
    timeout: float,
    notes: list[str],
) -> PageMeta:
    """The page's metadata; the fallback (with a note) when it cannot be fetched."""
    if not fetch:
        if not given.get("title", "").strip():
            raise CurateError(f"{url}: --title is required with --no-fetch")
        return PageMeta(url=url)
    try:
        meta = fetch_article(url, client=client, timeout=timeout)
    except CurateError as exc:
        if fallback is None:
            raise
        notes.append(f"warning: {exc} (used the feed's title and summary instead)")
        return fallback
    if meta.not_article:
        notes.append(
            f"warning: {url} does not look like an article ({meta.not_article}); "
            "check its title and summary, or take it out with `digest remove`"
        )
    return meta


def _article_values(url: str, meta: PageMeta, given: dict[str, str]) -> dict[str, Any]:
    """Title, summary, author, image and alt text: the page's, overridden by ``given``.

    Alt text neither the page nor ``--image-alt`` gives stays unset (None), so the
    email uses the headline and `digest check` says so; ``--image-alt ""`` marks a
    decorative image.
    """
    values: dict[str, Any] = {k: getattr(meta, k) for k in OVERRIDE_KEYS}
    values.update({k: " ".join(v.split()) for k, v in given.items()})
    if values.get("image"):
        values["image"] = _absolute(values["image"], meta.url) or values["image"]
    if not values["image_alt"] and "image_alt" not in given:
        values["image_alt"] = None
    if not values["title"]:
        raise CurateError(f'{url}: the page gives no title; add one with --title "..."')
    return values


def _image_size(
    meta: PageMeta,
    values: dict[str, str],
    fetch: bool,
    client: httpx.Client | None,
    timeout: float,
) -> str:
    """The size the page states for its image, else measured from the image's first bytes."""
    image = values.get("image", "")
    if not image:
        return ""
    if image == meta.image and meta.image_size:
        return meta.image_size
    return measure_image(image, client=client, timeout=timeout) if fetch else ""


def _section_of(meta: PageMeta, sections: tuple[str, ...], notes: list[str]) -> str:
    """The page's own section when it is one of ours, else the first (with a note)."""
    found = canonical_section(meta.section, sections) if meta.section else ""
    if found in sections:
        return found
    said = f"the page's section is {meta.section!r}" if meta.section else "no section given"
    notes.append(f"{said}; put under {sections[0]} (change it with `digest move N --section S`)")
    return sections[0]


def _existing_issue(ws: Workspace, issue_date: date | None) -> Issue | None:
    """The target issue if it exists; a dated one must exist, the upcoming one may be made."""
    if issue_date is not None:
        return workspace_issue(ws, issue_date)
    try:
        return workspace_issue(ws)
    except IssueError:
        return None  # none upcoming yet: made once the page is read


def _refuse_duplicate(issue: Issue, url: str) -> None:
    for number, existing in enumerate(issue.articles, start=1):
        if same_url(existing.url, url):
            raise CurateError(
                f"{url} is already in issue {issue.slug} as number {number}, under "
                f"{existing.section or 'no section'}; move it with `digest move {number} "
                "--section S`"
            )
