"""Render an issue: Jinja once, premailer once, then cheap per-recipient fills.

The templates are rendered with *placeholders* in place of every
per-recipient value (name, email, unsubscribe and manage URLs), the CSS is
inlined by premailer once, and the result is cut at the placeholders into a
:class:`Skeleton`. Filling a skeleton for one recipient is a string join of
pre-split pieces with values escaped exactly as the HTML serializer would
have written them in that spot (text, attribute, or URL attribute).

premailer is the only slow step (tens of milliseconds, far more on a cold
process), so a prepare runs it once: readers without a name are served from
the same inlined skeleton (the name filled in empty) whenever the template's
output for them is that same document without the name, which is the case
unless it branches on ``recipient.name``; only then, and only when such a
reader is met, is a second skeleton inlined. The archive copy is inlined on
first use. Safety costs no premailer run: Jinja alone renders a made-up
reader and must give the placeholder output with that reader's values put
in, which refuses a template that transforms a recipient value (``| upper``);
and every placeholder must come out of premailer intact, in a text node or an
ordinary attribute value. ``premailer_runs()`` counts the runs, for tests and
benchmarks.

Templates: a workspace's ``templates/NAME`` replaces the built-in ``NAME``;
``default:NAME`` always names the built-in, so an override can extend it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from email.utils import parseaddr
from html import unescape
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup, escape

from digest.addresses import clean_name
from digest.errors import SubscriberError, TemplateError
from digest.issue import Article, Issue
from digest.languages import language
from digest.people.record import find_by_email
from digest.plaintext import markdown_to_text, wrap_line
from digest.store import open_store
from digest.tokens import Tokens

if TYPE_CHECKING:
    from digest.config import Config
    from digest.workspace import Workspace

BUILTIN_DIR = Path(__file__).parent / "templates"
HTML_TEMPLATE = "email.html"
TEXT_TEMPLATE = "email.txt"
WRAP = 78
MAX_LINE = 998
RULE_WIDTH = 72
# The email's text column (600 px sheet less 32 px either side) and the tallest
# an article image is shown: a portrait picture is narrowed and centred instead.
COLUMN_WIDTH = 536
MAX_IMAGE_HEIGHT = 360

FIELDS = ("name", "email", "unsubscribe_url", "manage_url")
_PH = "zq9dg{}9qz"
PLACEHOLDERS = {f: _PH.format(f) for f in FIELDS}
_PH_RE = re.compile("zq9dg(" + "|".join(FIELDS) + ")9qz")
# Attributes libxml2 writes out as URIs (percent-escaping controls, space, non-ASCII).
_URI_ATTRS = ("href", "src", "action")
_URI_ESCAPE = re.compile(r"[\x00-\x20\x7f-\U0010ffff]")
_ATTR_RE = re.compile(r"""([^\s=/>]+)=("[^"]*"|'[^']*')""")


# -- recipients ---------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    """Who one message is for. The name is cleaned of control characters."""

    subscriber_id: str
    email: str
    name: str = ""

    def __post_init__(self) -> None:
        name = self.name
        if not name.isprintable() or name != name.strip() or "  " in name:
            object.__setattr__(self, "name", clean_name(name))  # the one rule of digest
        if self.email != self.email.strip():
            object.__setattr__(self, "email", self.email.strip())


def sample_recipient() -> Recipient:
    """The made-up reader of previews and `digest render`."""
    return Recipient(subscriber_id="sample", email="reader@example.com", name="Sample Reader")


def reader_for(ws: Workspace, to: str | None) -> Recipient:
    """Who `digest render` renders for.

    ``to`` naming a subscriber ("Ann <ann@example.com>" or the bare address):
    that subscriber, so the message is exactly theirs (their name, unsubscribe
    link and Message-ID). Anyone else, or nobody: a sample reader with an id
    of its own, so each rendered message has a Message-ID never used before
    (a mailbox drops a second message with a Message-ID it has seen).
    """
    sample = sample_recipient()
    email, name = sample.email, sample.name
    if to:
        name, email = parseaddr(to)
        email = email or to.strip()
        with open_store(ws) as store:
            try:
                subscriber = find_by_email(store, email)
            except SubscriberError:  # not a valid address: nobody's
                subscriber = None
        if subscriber is not None and subscriber.status != "erased":
            return Recipient(subscriber.id, subscriber.email or email, subscriber.name or "")
    return Recipient(f"sample-{secrets.token_hex(8)}", email, name)


# -- escaping exactly as lxml's HTML serializer writes a value -----------------


def escape_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _percent(match: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in match.group().encode("utf-8"))


def quote_attr(value: str, uri: bool = False) -> str:
    """An attribute value, quotes included, as libxml2 serializes it.

    URI attributes lose leading blanks and get controls, spaces and non-ASCII
    percent-escaped; then ``& < >`` become entities, and the value is quoted
    with ``"``, or with ``'`` when it holds a ``"`` but no ``'``.
    """
    if uri:
        value = _URI_ESCAPE.sub(_percent, value.lstrip(" \t\r\n"))
    value = escape_text(value)
    if '"' in value:
        if "'" in value:
            return '"' + value.replace('"', "&quot;") + '"'
        return "'" + value + "'"
    return '"' + value + '"'


ESCAPES: dict[str, Callable[[str], str]] = {
    "html_text": escape_text,
    "text": lambda value: value,
}

# A slot key is (field, context) for a value in text, or
# ("@attr", is_uri, segments) for a whole attribute value holding placeholders:
# segments alternate literal text and field names.
SlotKey = tuple[Any, ...]


@dataclass(frozen=True)
class Skeleton:
    """A rendered document cut at its per-recipient values.

    ``pieces`` has one more item than ``slots``; slot ``i`` (a field and the
    context it sits in) goes between ``pieces[i]`` and ``pieces[i + 1]``.
    """

    pieces: tuple[str, ...]
    slots: tuple[SlotKey, ...]

    @property
    def keys(self) -> frozenset[SlotKey]:
        return frozenset(self.slots)

    def fill(self, escaped: dict[SlotKey, str]) -> str:
        pieces = self.pieces
        out = [pieces[0]]
        for index, slot in enumerate(self.slots, 1):
            out.append(escaped[slot])
            out.append(pieces[index])
        return "".join(out)


def escaped_values(values: dict[str, str], keys: Iterable[SlotKey]) -> dict[SlotKey, str]:
    """Each slot's text for one recipient, escaped for where it sits."""
    out: dict[SlotKey, str] = {}
    for key in keys:
        if key[0] == "@attr":
            segments = key[2]
            raw = "".join(values[s] if i % 2 else s for i, s in enumerate(segments))
            out[key] = quote_attr(raw, key[1])
        else:
            out[key] = ESCAPES[key[1]](values[key[0]])
    return out


def cut_html(html: str) -> Skeleton:
    """Split inlined HTML at the placeholders, noting each one's context.

    A placeholder inside a tag takes its whole attribute value (quotes
    included) as the slot: libxml2 picks the quote character from the
    complete value, so the value is re-serialized whole for each recipient.
    """
    spans: list[tuple[int, int, SlotKey]] = []
    covered = 0
    for match in _PH_RE.finditer(html):
        at = match.start()
        if at < covered:
            continue
        _refuse_raw_context(html, at)
        tag_open = html.rfind("<", 0, at)
        if tag_open > html.rfind(">", 0, at):
            tag_end = html.find(">", at)
            for attr in _ATTR_RE.finditer(html, tag_open, tag_end):
                if attr.start(2) <= at < attr.end(2):
                    if attr.group(1).lower() == "style":
                        raise TemplateError(
                            "a recipient value sits in a style attribute, which premailer "
                            "rewrites; put it in text or another attribute"
                        )
                    raw = unescape(attr.group(2)[1:-1])
                    uri = attr.group(1).lower() in _URI_ATTRS
                    spans.append(
                        (attr.start(2), attr.end(2), ("@attr", uri, tuple(_PH_RE.split(raw))))
                    )
                    covered = attr.end(2)
                    break
            else:
                raise TemplateError(
                    f"a recipient value sits in a tag outside a quoted attribute: "
                    f"{html[tag_open : tag_end + 1][:80]}; put it in an attribute value"
                )
        else:
            spans.append((at, match.end(), (match.group(1), "html_text")))
            covered = match.end()
    pieces: list[str] = []
    start = 0
    for begin, end, _key in spans:
        pieces.append(html[start:begin])
        start = end
    pieces.append(html[start:])
    return Skeleton(tuple(pieces), tuple(key for _b, _e, key in spans))


def _refuse_raw_context(html: str, at: int) -> None:
    """Refuse a value where the serializer writes text unescaped: a comment, style, script."""
    opened = html.rfind("<!--", 0, at)
    if opened != -1 and html.find("-->", opened, at) == -1:
        where = "an HTML comment"
    else:
        for tag in ("style", "script"):
            opened = html.rfind(f"<{tag}", 0, at)
            if opened != -1 and html.find(f"</{tag}", opened, at) == -1:
                where = f"a <{tag}> element"
                break
        else:
            return
    raise TemplateError(
        f"a recipient value sits in {where}; put recipient values in text or attributes"
    )


def cut_text(text: str) -> Skeleton:
    parts = _PH_RE.split(text)
    return Skeleton(tuple(parts[0::2]), tuple((f, "text") for f in parts[1::2]))


# -- text helpers ---------------------------------------------------------------


def wrap(text: str, width: int = WRAP) -> str:
    """Wrap each line at ``width``; a word longer than that (a URL) gets its own line.

    Line breaks already in the text are kept (lists stay lists). Nothing is
    ever longer than 998 characters, the limit of a line in an email.
    """
    out: list[str] = []
    for line in str(text).replace("\r\n", "\n").strip("\n").split("\n"):
        out.extend(wrap_line(line, width))
    return "\n".join(out)


def date_label(day: date) -> str:
    return f"{day:%A}, {day.day} {day:%B %Y}"


def _markdown() -> Any:
    from markdown_it import MarkdownIt  # deferred: loaded on the first Markdown text

    return MarkdownIt("commonmark", {"html": False})


_MD: Any = None


def markdown(text: str) -> Markup:
    """Markdown to HTML with raw HTML disabled (it is shown as text)."""
    global _MD
    if _MD is None:
        _MD = _markdown()
    return Markup(_MD.render(text).strip()) if text.strip() else Markup("")


# -- the Jinja environment ---------------------------------------------------------


def environment(templates_dir: Path | None) -> jinja2.Environment:
    """Workspace templates first, then the built-ins; ``default:NAME`` is the built-in."""
    builtin = jinja2.FileSystemLoader(str(BUILTIN_DIR))
    loaders: list[jinja2.BaseLoader] = [jinja2.PrefixLoader({"default": builtin}, delimiter=":")]
    if templates_dir is not None and templates_dir.is_dir():
        loaders.append(jinja2.FileSystemLoader(str(templates_dir)))
    loaders.append(builtin)
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(("html", "htm", "xml"), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wrap"] = wrap
    env.filters["markdown"] = markdown
    env.globals["rule"] = lambda ch="-": ch * RULE_WIDTH
    return env


def builtin_templates() -> list[str]:
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if p.is_file() and p.suffix != ".py")


def template_listing(templates_dir: Path) -> list[tuple[str, str]]:
    """``(name, state)``: each built-in, "built-in" or "overridden", then the workspace's own."""
    own = set()
    if templates_dir.is_dir():
        own = {p.name for p in templates_dir.iterdir() if p.is_file() and p.suffix != ".md"}
    rows = [(n, "overridden" if n in own else "built-in") for n in builtin_templates()]
    rows += [(n, "workspace only") for n in sorted(own - set(builtin_templates()))]
    return rows


def _template_error(exc: Exception, env: jinja2.Environment) -> TemplateError:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = f"{exc.filename or exc.name}:{exc.lineno}"
        return TemplateError(f"{where}: {exc.message}; fix the template")
    if isinstance(exc, jinja2.TemplateNotFound):
        return TemplateError(
            f"template {exc.name!r} not found in the workspace's templates/ or the built-ins "
            "(`digest templates` lists them)"
        )
    where = "template"
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith((".html", ".txt", ".css", ".htm")):
            where = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    message = exc.message if isinstance(exc, jinja2.TemplateError) and exc.message else str(exc)
    return TemplateError(f"{where}: {message}; fix the template")


def render_template(templates_dir: Path | None, name: str, context: dict[str, Any]) -> str:
    """Template ``name`` (the workspace's, else the built-in) with ``context``.

    For the messages that are not an issue (the confirmation email); a
    problem raises TemplateError naming the template and line.
    """
    return _render(environment(templates_dir), name, context)


def _render(env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
    try:
        return env.get_template(name).render(context)
    except (jinja2.TemplateError, TypeError, ValueError, AttributeError) as exc:
        raise _template_error(exc, env) from None


_RUNS_LOCK = threading.Lock()
_RUNS = 0


def premailer_runs() -> int:
    """How many times this process has run premailer (tests and benchmarks read it)."""
    return _RUNS


def inline_css(html: str) -> str:
    """premailer with the network off, ``!important`` and media queries kept."""
    global _RUNS
    import premailer  # deferred: the heaviest import of digest, only when inlining

    with _RUNS_LOCK:
        _RUNS += 1
    try:
        return str(
            premailer.Premailer(
                html,
                allow_network=False,
                allow_loading_external_files=False,
                strip_important=False,
                keep_style_tags=True,
                disable_link_rewrites=True,
                cssutils_logging_level=logging.CRITICAL,
                disable_validation=True,
                # The templates write width/height attributes themselves; copied
                # from CSS they would be invalid (height="auto", <body width>).
                disable_basic_attributes=["width", "height"],
            ).transform()
        )
    except Exception as exc:  # premailer raises a zoo of parser errors
        raise TemplateError(
            f"inlining the CSS failed: {exc}; check the template's <style>"
        ) from None


# -- the context -------------------------------------------------------------------


def archive_url(config: Config, day: date) -> str:
    return f"{config.newsletter.base_url.rstrip('/')}/archive/{day.isoformat()}"


def unsubscribe_url(config: Config, token: str) -> str:
    return f"{config.newsletter.base_url.rstrip('/')}/unsubscribe/{token}"


def confirm_url(config: Config, token: str) -> str:
    return f"{config.newsletter.base_url.rstrip('/')}/confirm/{token}"


def image_box(article: Article) -> SimpleNamespace:
    """The width and height an article's image is shown at, in CSS pixels.

    Scaled down to the column; a portrait or very tall image is capped at
    ``MAX_IMAGE_HEIGHT`` (narrower, centred) so it never fills a phone's
    screen. Unknown dimensions give the column's width and no height: the
    image keeps its own proportions (``height: auto``).
    """
    size = article.image_dimensions
    if size is None:
        return SimpleNamespace(width=COLUMN_WIDTH, height=0)
    width, height = size
    shown = min(COLUMN_WIDTH, width)
    tall = round(height * shown / width)
    if tall > MAX_IMAGE_HEIGHT:
        tall = MAX_IMAGE_HEIGHT
        shown = max(1, round(width * MAX_IMAGE_HEIGHT / height))
    return SimpleNamespace(width=shown, height=max(1, tall))


def article_text(article: Article) -> tuple[Markup, str]:
    """The article's blurb (Markdown) or else its summary, as HTML and as plain text."""
    if article.blurb.strip():
        return markdown(article.blurb), markdown_to_text(article.blurb)
    if article.summary.strip():
        summary = article.summary.strip()
        return Markup("<p>{}</p>").format(summary), summary
    return Markup(""), ""


def context(
    config: Config, issue: Issue, recipient: Any, *, public: bool = False
) -> dict[str, Any]:
    n = config.newsletter
    sections = []
    for name, articles in issue.by_section(n.sections):
        items = []
        for a in articles:
            text_html, text = article_text(a)
            items.append(
                SimpleNamespace(
                    url=a.url,
                    title=a.title,
                    author=a.author,
                    section=a.section,
                    image=a.image,
                    image_alt=a.image_alt or a.title,
                    image_box=image_box(a),
                    summary=a.summary,
                    blurb=a.blurb,
                    text=text,
                    text_html=text_html,
                )
            )
        sections.append(SimpleNamespace(name=name, articles=items, configured=name in n.sections))
    return {
        "newsletter": newsletter_context(config),
        "language": language(issue.language or n.language),
        "issue": SimpleNamespace(
            date=issue.date,
            date_label=date_label(issue.date),
            subject=issue.subject,
            preheader=issue.preheader,
            intro=markdown_to_text(issue.intro),
            intro_html=markdown(issue.intro),
            archive_url=archive_url(config, issue.date),
        ),
        "sections": sections,
        "recipient": recipient,
        "public": public,
        "preheader_padding": Markup("&#847;&zwnj;&nbsp;" * 24),
    }


def newsletter_context(config: Config) -> SimpleNamespace:
    """What every email template knows of the newsletter (the issue and the confirmation)."""
    n = config.newsletter
    base = n.base_url.rstrip("/")
    return SimpleNamespace(
        name=n.name,
        language=n.language,
        base_url=base,
        postal_address=n.postal_address,
        why=n.why.replace("{name}", n.name),
        manage_url=n.manage_url,
        privacy_url=config.privacy.policy_url,
        subscribe_url=f"{base}/subscribe",
        archive_index_url=f"{base}/archive",
        sections=n.sections,
    )


# -- prepared issues ---------------------------------------------------------------

_PROBE_NAME = 'Zoë & "Q" <Ünï> 😀'
_PROBE_EMAIL = "o'brien+news@example.com"


def _putter(values: dict[str, str]) -> Callable[[re.Match[str]], str]:
    return lambda match: values[match.group(1)]


def _tidy_text(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"


def _blank_runs(source: str, placeholder: str) -> bool:
    """Whether removing ``placeholder`` leaves some text run blank (empty or whitespace).

    A blank run may be dropped or parsed differently from a run with text in
    it, so only where every run keeps some text is the document without the
    value the same document with the value filled in empty.
    """
    start = 0
    while (at := source.find(placeholder, start)) != -1:
        start = at + len(placeholder)
        before, after = source.rfind(">", 0, at), source.find("<", at)
        if source.rfind("<", 0, at) > before:
            continue  # in a tag: an attribute value, re-serialized whole
        run = source[before + 1 : after if after != -1 else len(source)]
        if not run.replace(placeholder, "").strip():
            return True
    return False


@dataclass
class PreparedIssue:
    """One issue, rendered and inlined once, ready to be filled per recipient."""

    config: Config
    issue: Issue
    tokens: Tokens
    env: jinja2.Environment
    html_name: str = HTML_TEMPLATE
    text_name: str = TEXT_TEMPLATE
    _skeletons: dict[tuple[str, bool], Skeleton] = field(default_factory=dict, repr=False)
    _sources: dict[tuple[str, bool], str] = field(default_factory=dict, repr=False)
    _public: str | None = field(default=None, repr=False)
    _base: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._unsubscribe_prefix = unsubscribe_url(self.config, "")
        self._manage = self.config.newsletter.manage_url
        self._manage_token = "{token}" in self._manage

    @property
    def subject(self) -> str:
        return self.issue.subject

    @property
    def archive_url(self) -> str:
        return archive_url(self.config, self.issue.date)

    # per-recipient values
    def values(self, recipient: Recipient) -> dict[str, str]:
        """The raw per-recipient values; runs once per message, so kept lean."""
        manage = self._manage
        if self._manage_token:
            manage = manage.replace("{token}", self.tokens.manage(recipient.subscriber_id))
        return {
            "name": recipient.name,
            "email": recipient.email,
            "unsubscribe_url": self._unsubscribe_prefix
            + self.tokens.unsubscribe(recipient.subscriber_id),
            "manage_url": manage,
        }

    def _placeholders(self, has_name: bool) -> dict[str, str]:
        """What the templates get for the skeleton: a placeholder per varying value.

        A manage URL without ``{token}`` is the same for everyone, so it is
        rendered as itself (it may be empty, which a placeholder never is).
        """
        fields = dict(PLACEHOLDERS)
        if not has_name:
            fields["name"] = ""
        if not self._manage_token:
            fields["manage_url"] = self._manage
        return fields

    # Jinja: cheap, run for every variant
    def _context(self, recipient: Any, public: bool) -> dict[str, Any]:
        if self._base is None:
            self._base = context(self.config, self.issue, None)
        return {**self._base, "recipient": recipient, "public": public}

    def _jinja(self, kind: str, recipient: Any, public: bool = False) -> str:
        ctx = self._context(recipient, public)
        if kind == "html":
            return _render(self.env, self.html_name, ctx)
        return _tidy_text(_render(self.env, self.text_name, ctx))

    def source(self, kind: str, has_name: bool) -> str:
        """The Jinja output with placeholders, before any CSS inlining."""
        key = (kind, has_name)
        if key not in self._sources:
            fields = self._placeholders(has_name)
            self._sources[key] = self._jinja(kind, SimpleNamespace(**fields))
        return self._sources[key]

    def verify(self) -> None:
        """Refuse templates whose fast fill would differ from a full render (no premailer).

        Jinja renders a made-up reader with awkward values, with and without a
        name; the result must be the placeholder output with that reader's
        values put in as Jinja would escape them. A filter or test applied to a
        recipient value (``| upper``, ``| truncate``) breaks that equality.
        """
        for kind in ("html", "text"):
            name = self.html_name if kind == "html" else self.text_name
            autoescape = self.env.autoescape
            escaped = autoescape(name) if callable(autoescape) else autoescape
            for has_name in (True, False):
                probe = Recipient("probe", _PROBE_EMAIL, _PROBE_NAME if has_name else "")
                values = self.values(probe)
                put = {f: str(escape(v)) if escaped else v for f, v in values.items()}
                expected = _PH_RE.sub(_putter(put), self.source(kind, has_name))
                if self._jinja(kind, SimpleNamespace(**values)) != expected:
                    raise TemplateError(
                        f"{name}: a recipient value (recipient.name, .email, "
                        ".unsubscribe_url, .manage_url) is changed by a filter or test; "
                        "print recipient values as they are"
                    )

    # skeletons
    def skeleton(self, kind: str, has_name: bool) -> Skeleton:
        """The cut HTML (``kind="html"``) or text for recipients with/without a name."""
        key = (kind, has_name)
        skeleton = self._skeletons.get(key)
        if skeleton is None:
            if kind == "text":
                skeleton = cut_text(self.source(kind, has_name))
            elif not has_name and self._nameless_is_named():
                skeleton = self.skeleton("html", True)
            else:
                skeleton = self._inline(self.source(kind, has_name))
            self._skeletons[key] = skeleton
        return skeleton

    def _nameless_is_named(self) -> bool:
        """Whether a nameless reader's HTML is the named skeleton with the name left empty."""
        named, nameless = self.source("html", True), self.source("html", False)
        placeholder = PLACEHOLDERS["name"]
        return named.replace(placeholder, "") == nameless and not _blank_runs(named, placeholder)

    def _inline(self, source: str) -> Skeleton:
        inlined = inline_css(source)
        for name, placeholder in PLACEHOLDERS.items():
            if source.count(placeholder) != inlined.count(placeholder):
                raise TemplateError(
                    f"{self.html_name}: inlining the CSS changed or dropped recipient.{name}; "
                    "put recipient values in text or attribute values"
                )
        return cut_html(inlined)

    # the slow reference path
    def _render_html(self, recipient: Any, public: bool = False) -> str:
        return inline_css(self._jinja("html", recipient, public))

    def _render_text(self, recipient: Any, public: bool = False) -> str:
        return self._jinja("text", recipient, public)

    def render_full(
        self, recipient: Recipient, values: dict[str, str] | None = None
    ) -> tuple[str, str]:
        """Jinja and premailer with the real values: the slow reference path."""
        values = values or self.values(recipient)
        real = SimpleNamespace(**values)
        return self._render_html(real), self._render_text(real)

    # the public face
    def html(self, recipient: Recipient) -> str:
        skeleton = self.skeleton("html", bool(recipient.name))
        return skeleton.fill(escaped_values(self.values(recipient), skeleton.keys))

    def text(self, recipient: Recipient) -> str:
        skeleton = self.skeleton("text", bool(recipient.name))
        return skeleton.fill(escaped_values(self.values(recipient), skeleton.keys))

    def public_values(self) -> SimpleNamespace:
        base = self.config.newsletter.base_url.rstrip("/")
        manage = self.config.newsletter.manage_url
        return SimpleNamespace(
            name="",
            email="",
            unsubscribe_url=f"{base}/unsubscribe",
            manage_url=manage if "{token}" not in manage else f"{base}/unsubscribe",
        )

    def html_public(self) -> str:
        """The issue for the archive and "view in browser": no personal data in it.

        Inlined on first use (a second premailer run, only where the archive is served).
        """
        if self._public is None:
            self._public = self._render_html(self.public_values(), public=True)
        return self._public

    def text_public(self) -> str:
        return self._render_text(self.public_values(), public=True)


_CACHE: OrderedDict[str, PreparedIssue] = OrderedDict()
_CACHE_SIZE = 8


def _fingerprint(ws: Workspace, issue: Issue, secret: bytes) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(issue.to_dict(), sort_keys=True, default=str).encode("utf-8"))
    h.update(repr(ws.config).encode("utf-8"))
    h.update(hashlib.sha256(secret).digest())
    for folder in (ws.templates_dir, BUILTIN_DIR):
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    stat = path.stat()
                    h.update(f"{path}\0{stat.st_mtime_ns}\0{stat.st_size}\n".encode())
    return h.hexdigest()


def prepare(ws: Workspace, issue: Issue, *, tokens: Tokens | None = None) -> PreparedIssue:
    """Render ``issue`` once; the same issue, templates and config give the cached result."""
    secret = ws.signing_key()
    key = _fingerprint(ws, issue, secret)
    cached = _CACHE.get(key)
    if cached is not None:
        _CACHE.move_to_end(key)
        return cached
    prepared = PreparedIssue(
        config=ws.config,
        issue=issue,
        tokens=tokens or Tokens(secret),
        env=environment(ws.templates_dir),
    )
    # Render every variant with Jinja and inline the HTML once now, so a
    # template error shows up here, not mid-send.
    prepared.verify()
    for has_name in (True, False):
        prepared.skeleton("text", has_name)
    prepared.skeleton("html", True)
    _CACHE[key] = prepared
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return prepared
