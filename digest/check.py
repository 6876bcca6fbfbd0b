"""Lint an issue before it goes: what would clip, break, or break the law.

:func:`check_issue` returns a :class:`CheckResult`, a list of findings (level,
code, message) that `digest check`, the preview and `digest send` all read.
The checks are the small functions of :data:`RULES`, each registered with
``@rule(code, level)`` and run in the order they are defined; a rule yields
one message per problem it finds. Adding a check is adding such a function.
Errors stop a send; warnings are worth a look. ``links=True`` also fetches
every link of the email, concurrently, HEAD first and GET when a server
refuses HEAD, and reports the ones that fail.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import lxml.html

from digest.addresses import organizational_domain
from digest.config import Privacy
from digest.errors import TemplateError
from digest.issue import Issue, canonical_section
from digest.issue_status import went_out_before
from digest.render import MAX_LINE, PreparedIssue, Recipient, prepare, sample_recipient

if TYPE_CHECKING:
    import httpx

    from digest.config import Newsletter
    from digest.workspace import Workspace

GMAIL_CLIP_BYTES = 102 * 1024
NEAR_CLIP_BYTES = 90 * 1024
STYLE_LIMIT_BYTES = 16 * 1024
SUBJECT_MAX = 80
LINK_SCHEMES_OK = ("http", "https")
HREF_SCHEMES_ALSO_OK = ("mailto", "tel")
REAL_SENDERS = ("smtp", "http")
DEFAULT_POLICY_URL = Privacy().policy_url


@dataclass(frozen=True)
class Finding:
    level: str  # "error", "warning" or "info"
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
    def infos(self) -> list[Finding]:
        """What digest did for you and you may want to know (an alt text filled in)."""
        return [f for f in self.findings if f.level == "info"]

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
    """Run every rule of :data:`RULES`, in order, on ``prepared`` as a sample reader gets it."""
    result = result if result is not None else CheckResult()
    reader = sample_recipient()
    try:
        email = Email(prepared, reader, prepared.html(reader), prepared.text(reader))
    except TemplateError as exc:
        result.error("template", str(exc))
        return result
    for each in RULES:
        for message in each.check(email):
            result.findings.append(Finding(each.level_for(email), each.code, message))
    return result


# -- the rules ---------------------------------------------------------------------


@dataclass
class Email:
    """What every rule reads: the issue and its email as a sample reader gets it."""

    prepared: PreparedIssue
    reader: Recipient
    html: str
    text: str

    @property
    def issue(self) -> Issue:
        return self.prepared.issue

    @property
    def newsletter(self) -> Newsletter:
        return self.prepared.config.newsletter

    @functools.cached_property
    def doc(self) -> lxml.html.HtmlElement:
        return lxml.html.document_fromstring(self.html)

    @functools.cached_property
    def hrefs(self) -> list[str]:
        return [a.get("href", "") for a in self.doc.iter("a")]

    @functools.cached_property
    def unsubscribe_url(self) -> str:
        return str(self.prepared.values(self.reader)["unsubscribe_url"])


# A rule's level: "error" stops a send, "warning" is worth a look, "info" says what
# digest did in your place (it never needs fixing); or a function
# of the email that picks one of them (a placeholder is an error only where mail
# really leaves).
Level = str | Callable[["Email"], str]


@dataclass(frozen=True)
class Rule:
    """One check: each message ``check`` yields becomes a finding with this code and level."""

    code: str
    level: Level
    check: Callable[[Email], Iterable[str]]

    def level_for(self, email: Email) -> str:
        return self.level(email) if callable(self.level) else self.level


RULES: list[Rule] = []


def rule(code: str, level: Level) -> Callable[[RuleFn], RuleFn]:
    """Register the decorated function as a rule; rules run in the order they are defined."""
    if not callable(level) and level not in ("error", "warning", "info"):  # pragma: no cover
        raise ValueError(f"rule {code}: level {level!r} is not error, warning or info")

    def register(fn: RuleFn) -> RuleFn:
        RULES.append(Rule(code, level, fn))
        return fn

    return register


RuleFn = Callable[[Email], Iterable[str]]


@rule("subject-empty", "error")
def subject_empty(email: Email) -> Iterator[str]:
    if not email.issue.subject.strip():
        yield "the subject is empty; set `subject:` in the issue file"


@rule("subject-long", "warning")
def subject_long(email: Email) -> Iterator[str]:
    subject = email.issue.subject.strip()
    if len(subject) > SUBJECT_MAX:
        yield f"the subject is {len(subject)} characters; mail apps cut it near {SUBJECT_MAX}"


@rule("preheader-missing", "warning")
def preheader_missing(email: Email) -> Iterator[str]:
    if not email.issue.preheader.strip():
        yield "no preheader; mail apps will show the first words of the email after the subject"


@rule("no-articles", "error")
def no_articles(email: Email) -> Iterator[str]:
    if not email.issue.articles:
        yield "the issue has no articles; add some with `digest add URL`"


@rule("article-no-title", "error")
def article_no_title(email: Email) -> Iterator[str]:
    for number, article in enumerate(email.issue.articles, 1):
        if not article.title.strip():
            yield f"article {number} ({article.url}) has no title"


@rule("section-unknown", "error")
def section_unknown(email: Email) -> Iterator[str]:
    sections = email.newsletter.sections
    for number, article in enumerate(email.issue.articles, 1):
        if canonical_section(article.section, sections) not in sections:
            yield (
                f"article {number} ({article.url}) is in section {article.section or '(none)'!r}, "
                f"which is not one of {', '.join(sections)}; move it with `digest move`"
            )


@rule("html-too-large", "error")
def html_too_large(email: Email) -> Iterator[str]:
    size = len(email.html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        yield (
            f"the HTML is {size / 1024:.0f} KB; Gmail clips messages over 102 KB "
            "(hiding the footer and unsubscribe link): cut articles or text"
        )


@rule("html-near-limit", "warning")
def html_near_limit(email: Email) -> Iterator[str]:
    size = len(email.html.encode("utf-8"))
    if NEAR_CLIP_BYTES < size <= GMAIL_CLIP_BYTES:
        yield f"the HTML is {size / 1024:.0f} KB, close to Gmail's 102 KB clip"


@rule("style-too-large", "warning")
def style_too_large(email: Email) -> Iterator[str]:
    style = sum(len((s.text or "").encode("utf-8")) for s in email.doc.iter("style"))
    if style > STYLE_LIMIT_BYTES:
        yield (
            f"<style> holds {style / 1024:.1f} KB; Gmail drops style blocks over 16 KB "
            "(media queries and dark mode are lost)"
        )


@rule("image-no-alt", "error")
def image_no_alt(email: Email) -> Iterator[str]:
    """An image without alt text; an article's image written ``image_alt: ""`` on purpose
    (a decorative picture) keeps its empty alt."""
    decorative = {a.image for a in email.issue.articles if a.image and a.image_alt == ""}
    for img in email.doc.iter("img"):
        src = img.get("src", "")
        alt = img.get("alt")
        if alt is None or (not alt.strip() and src not in decorative):
            yield f"image {src or '(no src)'} has no alt text"


@rule("image-alt-from-title", "info")
def image_alt_from_title(email: Email) -> Iterator[str]:
    for number, article in enumerate(email.issue.articles, 1):
        if article.image and article.image_alt is None:
            yield (
                f"article {number}'s image has no alt text, so the email uses its headline "
                f"({article.title!r}); describe the picture with `image_alt:` in the issue "
                'file, or write `image_alt: ""` for a decorative one'
            )


def _addresses(email: Email) -> Iterator[tuple[str, str, bool]]:
    """``(url, what, mail allowed)`` for every image source, then every link."""
    for img in email.doc.iter("img"):
        yield img.get("src", "").strip(), "image", False
    for href in email.hrefs:
        yield href.strip(), "link", True


@rule("link-relative", "error")
def link_relative(email: Email) -> Iterator[str]:
    for url, what, _ in _addresses(email):
        parts = urlsplit(url)
        if not url:
            yield f"a {what} has an empty address"
        elif parts.scheme.lower() in LINK_SCHEMES_OK and not parts.netloc:
            yield f"{what} {url} has no host"
        elif not parts.scheme:
            yield (
                f"{what} {url} is relative; mail apps have no page to resolve it against: "
                "write the full https:// address"
            )


@rule("link-scheme", "error")
def link_scheme(email: Email) -> Iterator[str]:
    for url, what, allow_mail in _addresses(email):
        scheme = urlsplit(url).scheme.lower()
        if not scheme or scheme in LINK_SCHEMES_OK:
            continue
        if not (allow_mail and scheme in HREF_SCHEMES_ALSO_OK):
            yield f"{what} {url} is not an http(s) address"


@rule("unsubscribe-missing", "error")
def unsubscribe_missing(email: Email) -> Iterator[str]:
    if email.unsubscribe_url not in email.hrefs:
        yield "the HTML has no visible unsubscribe link"
    if email.unsubscribe_url not in email.text:
        yield "the text part has no unsubscribe URL"


@rule("postal-address-missing", "error")
def postal_address_missing(email: Email) -> Iterator[str]:
    address = " ".join(email.newsletter.postal_address.split())
    if not address:
        yield (
            "no postal address; set [newsletter] postal_address in digest.toml (the law "
            "in many countries wants it in every bulk email)"
        )
        return
    if address not in " ".join(email.doc.text_content().split()):
        yield "the HTML does not show the postal address"
    if address not in " ".join(email.text.split()):
        yield "the text part does not show the postal address"


@rule("section-empty", "error")
def section_empty(email: Email) -> Iterator[str]:
    """A section an override left empty: none of its articles is linked in the HTML."""
    linked = set(email.hrefs)
    for section, articles in email.issue.by_section(email.newsletter.sections):
        if not any(a.url in linked for a in articles):
            yield f"section {section!r} shows none of its {len(articles)} article(s) in the HTML"


@rule("article-missing", "warning")
def article_missing(email: Email) -> Iterator[str]:
    """Some, not all, of a section's articles are missing from the HTML."""
    linked = set(email.hrefs)
    for _, articles in email.issue.by_section(email.newsletter.sections):
        if any(a.url in linked for a in articles):
            for a in articles:
                if a.url not in linked:
                    yield f"{a.url} is not linked in the HTML"


@rule("text-line-long", "error")
def text_line_long(email: Email) -> Iterator[str]:
    long_lines = [i for i, line in enumerate(email.text.split("\n"), 1) if len(line) > MAX_LINE]
    if long_lines:
        yield f"text part line {long_lines[0]} is over {MAX_LINE} characters"


@rule("article-repeated", "warning")
def article_repeated(email: Email) -> Iterator[str]:
    """An article that an earlier issue already carried out to readers."""
    issue = email.issue
    if issue.path is None:
        return
    earlier = went_out_before(issue.path.parent, issue.date)
    for number, article in enumerate(issue.articles, 1):
        when = earlier.get(article.url.rstrip("/"))
        if when is not None:
            yield (
                f"article {number} ({article.url}) went out in the issue of {when} already; "
                f"take it out with `digest remove {number} --issue {issue.slug}`, or keep it "
                "to run it again"
            )


@rule("article-no-summary", "warning")
def article_no_summary(email: Email) -> Iterator[str]:
    for number, article in enumerate(email.issue.articles, 1):
        if not article.summary.strip() and not article.blurb.strip():
            yield (
                f"article {number} ({article.url}) has neither a summary nor a blurb: the email "
                "shows only its title; write a `blurb:` for it in the issue file"
            )


def _trial_on_this_machine(email: Email) -> bool:
    """Nothing leaves (the outbox or null sender) and base_url is on this machine."""
    config = email.prepared.config
    host = urlsplit(config.newsletter.base_url).hostname or ""
    return config.sender.kind not in REAL_SENDERS and loopback_host(host)


def _https_level(email: Email) -> str:
    """ "warning" for an http base_url on loopback while nothing leaves (a local trial)."""
    return "warning" if _trial_on_this_machine(email) else "error"


@rule("unsubscribe-not-https", _https_level)
def unsubscribe_not_https(email: Email) -> Iterator[str]:
    """One-Click unsubscribe (RFC 8058), which every message announces, needs an https URL."""
    url = email.unsubscribe_url
    if urlsplit(url).scheme.lower() != "https":
        shown = f"{url.split('/unsubscribe/')[0]}/unsubscribe/…"
        if _trial_on_this_machine(email):
            yield (
                f"the unsubscribe URL {shown} is not https: fine for a trial on this machine "
                "with the outbox, but mailbox providers honour One-Click unsubscribe only "
                "over https; set [newsletter] base_url to https:// before mail really leaves"
            )
            return
        yield (
            f"the unsubscribe URL {shown} is not https, "
            "but each message announces One-Click unsubscribe (List-Unsubscribe-Post), which "
            "mailbox providers honour only over https; set [newsletter] base_url to https://"
        )


def loopback_host(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1: an address that only this machine reaches."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _real_sender(email: Email) -> str:
    """ "error" where mail really leaves (smtp, http); "warning" for the outbox and null."""
    return "error" if email.prepared.config.sender.kind in REAL_SENDERS else "warning"


@rule("from-placeholder", _real_sender)
def from_placeholder(email: Email) -> Iterator[str]:
    address = email.newsletter.from_address
    if placeholder_domain(address.rpartition("@")[2]):
        yield (
            f"From is {address}, on a domain reserved for examples: no mailbox provider "
            "accepts it; set [newsletter] from to your own address"
        )


@rule("policy-placeholder", _real_sender)
def policy_placeholder(email: Email) -> Iterator[str]:
    url = email.prepared.config.privacy.policy_url
    if url == DEFAULT_POLICY_URL or placeholder_domain(urlsplit(url).hostname or ""):
        yield (
            f"the privacy policy link is the placeholder {url}; set [privacy] policy_url to "
            "your policy's address"
        )


@rule("settings", "warning")
def setting_unused(email: Email) -> Iterator[str]:
    """Renamed settings, and settings with no effect for the configured sender."""
    yield from email.prepared.config.notices


@rule("dkim-misaligned", "warning")
def dkim_misaligned(email: Email) -> Iterator[str]:
    config = email.prepared.config
    if not config.dkim.enabled:
        return
    sender = email.newsletter.domain.lower()
    signer = (config.dkim.domain or sender).lower().rstrip(".")
    if organizational_domain(signer) != organizational_domain(sender):
        yield (
            f"DKIM signs for {signer} but From is on {sender}: DMARC needs the two to share "
            "a domain; set [dkim] domain to From's domain (or From to the signing one)"
        )


@rule("language-not-shipped", "warning")
def language_not_shipped(email: Email) -> Iterator[str]:
    """digest has no words in the email's language, nor in the newsletter's (the pages')."""
    config = email.prepared.config
    seen = set()
    for words, where in (
        (email.prepared.words, "the email shows"),
        (config.words, "the confirmation email and the public pages show"),
    ):
        if words.covered or words.language in seen:
            continue
        seen.add(words.language)
        yield (
            f"digest ships no {words.language!r} catalog, so {where} digest's own words "
            f"in English; `digest translations init {words.language}` starts one in "
            "locale/ (docs/languages.md)"
        )


@rule("translation-broken", "warning")
def translation_broken(email: Email) -> Iterator[str]:
    """Entries of the workspace's own catalog left out (their placeholders differ)."""
    config = email.prepared.config
    seen: set[str] = set()
    for words in (email.prepared.words, config.words):
        for problem in words.problems:
            if problem not in seen:
                seen.add(problem)
                yield f"{problem}; until it is fixed, readers get digest's own wording"


def placeholder_domain(domain: str) -> bool:
    """A domain reserved for documentation and tests (RFC 2606, RFC 6761)."""
    domain = domain.lower().rstrip(".")
    labels = domain.split(".")
    if domain in ("localhost", "") or labels[-1] in ("example", "test", "invalid", "localhost"):
        return True
    return ".".join(labels[-2:]) in ("example.com", "example.net", "example.org")


# -- links, fetched ----------------------------------------------------------------


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
    import httpx  # deferred: only --links fetches, and every send imports this module

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
    import httpx  # deferred, as in _fetch_all

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
