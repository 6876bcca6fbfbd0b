"""Render an issue: Jinja once, premailer once, then cheap per-recipient fills.

The templates are rendered with *placeholders* in place of every
per-recipient value (name, email, unsubscribe and manage URLs), the CSS is
inlined by premailer once, and the result is cut at the placeholders into a
:class:`Skeleton`. Filling a skeleton for one recipient is a string join of
pre-split pieces with values escaped exactly as the HTML serializer would
have written them in that spot (text, attribute, or URL attribute). A check
at prepare time renders a sample recipient both ways and refuses a template
whose output would differ (one that transforms a recipient value instead of
printing it), so the fast path is always the same as a full render.

Templates: a workspace's ``templates/NAME`` replaces the built-in ``NAME``;
``default:NAME`` always names the built-in, so an override can extend it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import textwrap
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from html import unescape
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from digest.errors import TemplateError
from digest.issue import Issue
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
            object.__setattr__(self, "name", clean_name(name))
        if self.email != self.email.strip():
            object.__setattr__(self, "email", self.email.strip())


def clean_name(name: str) -> str:
    """One line of printable text: whitespace runs become one space, controls go."""
    out = []
    for ch in name:
        category = unicodedata.category(ch)
        if ch.isspace() or category in ("Zl", "Zp", "Zs"):
            out.append(" ")
        elif category[0] != "C":
            out.append(ch)
    return " ".join("".join(out).split())[:200]


def sample_recipient() -> Recipient:
    """The made-up reader of previews and `digest render`."""
    return Recipient(subscriber_id="sample", email="reader@example.com", name="Sample Reader")


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
        tag_open = html.rfind("<", 0, at)
        if tag_open > html.rfind(">", 0, at):
            tag_end = html.find(">", at)
            for attr in _ATTR_RE.finditer(html, tag_open, tag_end):
                if attr.start(2) <= at < attr.end(2):
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


def cut_text(text: str) -> Skeleton:
    parts = _PH_RE.split(text)
    return Skeleton(tuple(parts[0::2]), tuple((f, "text") for f in parts[1::2]))


# -- text helpers ---------------------------------------------------------------


def wrap(text: str, width: int = WRAP) -> str:
    """Wrap each line at ``width``; a word longer than that (a URL) gets its own line.

    Line breaks the editor wrote are kept (Markdown lists stay lists). Nothing
    is ever longer than 998 characters, the limit of a line in an email.
    """
    out: list[str] = []
    for line in str(text).replace("\r\n", "\n").strip("\n").split("\n"):
        line = line.rstrip()
        if len(line) <= width:
            out.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        wrapped = textwrap.wrap(
            line,
            width=width,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
        for piece in wrapped:
            while len(piece) > MAX_LINE:
                out.append(piece[:MAX_LINE])
                piece = piece[MAX_LINE:]
            out.append(piece)
    return "\n".join(out)


def date_label(day: date) -> str:
    return f"{day:%A}, {day.day} {day:%B %Y}"


def _markdown() -> Any:
    from markdown_it import MarkdownIt

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


def _render(env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
    try:
        return env.get_template(name).render(context)
    except (jinja2.TemplateError, TypeError, ValueError, AttributeError) as exc:
        raise _template_error(exc, env) from None


def inline_css(html: str) -> str:
    """premailer with the network off, ``!important`` and media queries kept."""
    import premailer

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


def context(
    config: Config, issue: Issue, recipient: Any, *, public: bool = False
) -> dict[str, Any]:
    n = config.newsletter
    sections = []
    for name, articles in issue.by_section(n.sections):
        items = []
        for a in articles:
            if a.blurb.strip():
                text_html, text = markdown(a.blurb), a.blurb.strip()
            elif a.summary.strip():
                text_html, text = Markup("<p>{}</p>").format(a.summary.strip()), a.summary.strip()
            else:
                text_html, text = Markup(""), ""
            items.append(
                SimpleNamespace(
                    url=a.url,
                    title=a.title,
                    author=a.author,
                    section=a.section,
                    image=a.image,
                    image_alt=a.image_alt or a.title,
                    summary=a.summary,
                    blurb=a.blurb,
                    text=text,
                    text_html=text_html,
                )
            )
        sections.append(SimpleNamespace(name=name, articles=items, configured=name in n.sections))
    return {
        "newsletter": SimpleNamespace(
            name=n.name,
            language=n.language,
            base_url=n.base_url.rstrip("/"),
            postal_address=n.postal_address,
            why=n.why.replace("{name}", n.name),
            manage_url=n.manage_url,
            privacy_url=config.privacy.policy_url,
            sections=n.sections,
        ),
        "issue": SimpleNamespace(
            date=issue.date,
            date_label=date_label(issue.date),
            subject=issue.subject,
            preheader=issue.preheader,
            intro=issue.intro.strip(),
            intro_html=markdown(issue.intro),
            archive_url=archive_url(config, issue.date),
        ),
        "sections": sections,
        "recipient": recipient,
        "public": public,
        "preheader_padding": Markup("&#847;&zwnj;&nbsp;" * 24),
    }


# -- prepared issues ---------------------------------------------------------------


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
    _public: str | None = field(default=None, repr=False)

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

    def skeleton(self, kind: str, has_name: bool) -> Skeleton:
        """The cut HTML (``kind="html"``) or text for recipients with/without a name."""
        key = (kind, has_name)
        if key not in self._skeletons:
            self._skeletons[key] = self._build(kind, has_name)
        return self._skeletons[key]

    def _build(self, kind: str, has_name: bool) -> Skeleton:
        fields = dict(PLACEHOLDERS)
        if not has_name:
            fields["name"] = ""
        placeholder = SimpleNamespace(**fields)
        if kind == "html":
            skeleton = cut_html(self._render_html(placeholder))
        else:
            skeleton = cut_text(self._render_text(placeholder))
        self._verify(kind, skeleton, has_name)
        return skeleton

    def _verify(self, kind: str, skeleton: Skeleton, has_name: bool) -> None:
        """Refuse templates whose fast fill would differ from a full render."""
        probe = Recipient(
            "probe", "o'brien+news@example.com", 'Zoë & "Q" <Ünï> 😀' if has_name else ""
        )
        values = self.values(probe)
        fast = skeleton.fill(escaped_values(values, skeleton.keys))
        slow = self.render_full(probe, values)[0 if kind == "html" else 1]
        if fast != slow:
            raise TemplateError(
                f"{self.html_name if kind == 'html' else self.text_name}: a recipient value "
                "(recipient.name, .email, .unsubscribe_url, .manage_url) is changed by a filter "
                "or test; print recipient values as they are"
            )

    def _render_html(self, recipient: Any, public: bool = False) -> str:
        ctx = context(self.config, self.issue, recipient, public=public)
        return inline_css(_render(self.env, self.html_name, ctx))

    def _render_text(self, recipient: Any, public: bool = False) -> str:
        ctx = context(self.config, self.issue, recipient, public=public)
        text = _render(self.env, self.text_name, ctx)
        return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"

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
        """The issue for the archive and "view in browser": no personal data in it."""
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
    secret = ws.secret(ws.config.web.secret_key_env)
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
    # Render both parts now, so a template error shows up here, not mid-send.
    prepared.skeleton("html", False)
    prepared.skeleton("text", False)
    _CACHE[key] = prepared
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return prepared
