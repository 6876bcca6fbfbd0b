"""Lint an issue before it goes: what would clip, break, or break the law.

:func:`check_issue` returns a :class:`CheckResult`, a list of findings (level,
code, message) that `digest check`, the preview and `digest send` all read.
Errors stop a send; warnings are worth a look. ``links=True`` also fetches
every link of the email, concurrently, HEAD first and GET when a server
refuses HEAD, and reports the ones that fail.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import lxml.html

from digest.errors import TemplateError
from digest.issue import Issue, canonical_section
from digest.render import MAX_LINE, PreparedIssue, Recipient, prepare, sample_recipient

if TYPE_CHECKING:
    from digest.workspace import Workspace

GMAIL_CLIP_BYTES = 102 * 1024
NEAR_CLIP_BYTES = 90 * 1024
STYLE_LIMIT_BYTES = 16 * 1024
SUBJECT_MAX = 80
LINK_SCHEMES_OK = ("http", "https")
HREF_SCHEMES_ALSO_OK = ("mailto", "tel")


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.level:<7} {self.code:<18} {self.message}"


@dataclass
class CheckResult:
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def error(self, code: str, message: str) -> None:
        self.findings.append(Finding("error", code, message))

    def warning(self, code: str, message: str) -> None:
        self.findings.append(Finding("warning", code, message))

    def to_dict(self) -> list[dict[str, str]]:
        return [{"level": f.level, "code": f.code, "message": f.message} for f in self.findings]


def check_issue(
    ws: Workspace,
    issue: Issue,
    *,
    links: bool = False,
    timeout: float = 10.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> CheckResult:
    """Every finding for ``issue`` as it would be mailed to a sample reader."""
    result = CheckResult()
    try:
        prepared = prepare(ws, issue)
    except TemplateError as exc:
        result.error("template", str(exc))
        return result
    check_prepared(prepared, result)
    if links:
        for url, problem in fetch_links(
            external_links(prepared), timeout=timeout, transport=transport
        ):
            result.error("link-broken", f"{url}: {problem}")
    return result


def check_prepared(prepared: PreparedIssue, result: CheckResult | None = None) -> CheckResult:
    result = result if result is not None else CheckResult()
    issue, config = prepared.issue, prepared.config
    n = config.newsletter
    reader = sample_recipient()
    try:
        html = prepared.html(reader)
        text = prepared.text(reader)
    except TemplateError as exc:
        result.error("template", str(exc))
        return result

    # The issue itself.
    subject = issue.subject.strip()
    if not subject:
        result.error("subject-empty", "the subject is empty; set `subject:` in the issue file")
    elif len(subject) > SUBJECT_MAX:
        result.warning(
            "subject-long",
            f"the subject is {len(subject)} characters; mail apps cut it near {SUBJECT_MAX}",
        )
    if not issue.preheader.strip():
        result.warning(
            "preheader-missing",
            "no preheader; mail apps will show the first words of the email after the subject",
        )
    if not issue.articles:
        result.error("no-articles", "the issue has no articles; add some with `digest add URL`")
    for number, article in enumerate(issue.articles, 1):
        if not article.title.strip():
            result.error("article-no-title", f"article {number} ({article.url}) has no title")
        if canonical_section(article.section, n.sections) not in n.sections:
            result.error(
                "section-unknown",
                f"article {number} ({article.url}) is in section {article.section or '(none)'!r}, "
                f"which is not one of {', '.join(n.sections)}; move it with `digest move`",
            )

    # The HTML as the reader gets it.
    size = len(html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        result.error(
            "html-too-large",
            f"the HTML is {size / 1024:.0f} KB; Gmail clips messages over 102 KB "
            "(hiding the footer and unsubscribe link): cut articles or text",
        )
    elif size > NEAR_CLIP_BYTES:
        result.warning(
            "html-near-limit", f"the HTML is {size / 1024:.0f} KB, close to Gmail's 102 KB clip"
        )
    doc = lxml.html.document_fromstring(html)
    style = sum(len((s.text or "").encode("utf-8")) for s in doc.iter("style"))
    if style > STYLE_LIMIT_BYTES:
        result.warning(
            "style-too-large",
            f"<style> holds {style / 1024:.1f} KB; Gmail drops style blocks over 16 KB "
            "(media queries and dark mode are lost)",
        )
    for img in doc.iter("img"):
        src = img.get("src", "")
        if not (img.get("alt") or "").strip():
            result.error("image-no-alt", f"image {src or '(no src)'} has no alt text")
        _check_url(result, src, "image", allow_mail=False)
    hrefs = [a.get("href", "") for a in doc.iter("a")]
    for href in hrefs:
        _check_url(result, href, "link", allow_mail=True)

    unsubscribe = prepared.values(reader)["unsubscribe_url"]
    if unsubscribe not in hrefs:
        result.error("unsubscribe-missing", "the HTML has no visible unsubscribe link")
    if unsubscribe not in text:
        result.error("unsubscribe-missing", "the text part has no unsubscribe URL")
    address = n.postal_address.strip()
    if not address:
        result.error(
            "postal-address-missing",
            "no postal address; set [newsletter] postal_address in digest.toml (the law "
            "in many countries wants it in every bulk email)",
        )
    else:
        page_text = doc.text_content()
        if " ".join(address.split()) not in " ".join(page_text.split()):
            result.error("postal-address-missing", "the HTML does not show the postal address")
        if " ".join(address.split()) not in " ".join(text.split()):
            result.error("postal-address-missing", "the text part does not show the postal address")

    # Sections an override may have left empty: their articles' links are missing.
    linked = set(hrefs)
    for section, articles in issue.by_section(n.sections):
        shown = [a for a in articles if a.url in linked]
        if not shown:
            result.error(
                "section-empty",
                f"section {section!r} shows none of its {len(articles)} article(s) in the HTML",
            )
        elif len(shown) < len(articles):
            for a in articles:
                if a.url not in linked:
                    result.warning("article-missing", f"{a.url} is not linked in the HTML")

    long_lines = [i for i, line in enumerate(text.split("\n"), 1) if len(line) > MAX_LINE]
    if long_lines:
        result.error(
            "text-line-long",
            f"text part line {long_lines[0]} is over {MAX_LINE} characters",
        )
    return result


def _check_url(result: CheckResult, url: str, what: str, *, allow_mail: bool) -> None:
    url = url.strip()
    if not url:
        result.error("link-relative", f"a {what} has an empty address")
        return
    scheme = urlsplit(url).scheme.lower()
    if scheme in LINK_SCHEMES_OK:
        if not urlsplit(url).netloc:
            result.error("link-relative", f"{what} {url} has no host")
        return
    if allow_mail and scheme in HREF_SCHEMES_ALSO_OK:
        return
    if not scheme:
        result.error(
            "link-relative",
            f"{what} {url} is relative; mail apps have no page to resolve it against: "
            "write the full https:// address",
        )
    else:
        result.error("link-scheme", f"{what} {url} is not an http(s) address")


def external_links(prepared: PreparedIssue, reader: Recipient | None = None) -> list[str]:
    """The unique http(s) links and images of the email, minus this newsletter's own pages."""
    reader = reader or sample_recipient()
    doc = lxml.html.document_fromstring(prepared.html(reader))
    own = prepared.config.newsletter.base_url.rstrip("/") + "/"
    urls: list[str] = []
    for element, attr in [(a, "href") for a in doc.iter("a")] + [
        (i, "src") for i in doc.iter("img")
    ]:
        url = (element.get(attr) or "").strip()
        if urlsplit(url).scheme in LINK_SCHEMES_OK and not url.startswith(own) and url not in urls:
            urls.append(url)
    return urls


def fetch_links(
    urls: list[str],
    *,
    timeout: float = 10.0,
    concurrency: int = 10,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[tuple[str, str]]:
    """``(url, problem)`` for each link that does not answer with a success."""
    return asyncio.run(_fetch_all(urls, timeout, concurrency, transport))


async def _fetch_all(
    urls: list[str],
    timeout: float,
    concurrency: int,
    transport: httpx.AsyncBaseTransport | None,
) -> list[tuple[str, str]]:
    gate = asyncio.Semaphore(concurrency)
    headers = {"User-Agent": "digest-link-check/1"}
    async with httpx.AsyncClient(
        timeout=timeout, follow_redirects=True, transport=transport, headers=headers
    ) as client:

        async def one(url: str) -> tuple[str, str]:
            async with gate:
                return url, await _probe(client, url)

        results = await asyncio.gather(*(one(u) for u in urls))
    return [(url, problem) for url, problem in results if problem]


async def _probe(client: httpx.AsyncClient, url: str) -> str:
    """An empty string when ``url`` works, else what went wrong."""
    try:
        response = await client.head(url)
        if response.status_code < 400:
            return ""
        async with client.stream("GET", url) as streamed:
            status = streamed.status_code
        if status < 400:
            return ""
        return f"HTTP {status}"
    except httpx.TimeoutException:
        return "timed out"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
