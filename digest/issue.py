"""Issues and their articles: one human-editable YAML file per Friday.

``issues/2026-12-04.yaml`` is edited by hand and by the CLI alike. The file is
read with ruamel.yaml's round-trip loader and the loaded document is kept on
the :class:`Issue`, so that saving after a CLI edit writes back the editor's
comments, key order and quoting, changing only what the edit changed. Saving
writes a temporary file and renames it: never a half-file.

Articles are kept in the order the email shows them: grouped by section, in
the order of ``[newsletter] sections``, and in the editor's order within a
section. An article's number (as ``digest issue show`` prints it) is its
1-based place in that list.
"""

from __future__ import annotations

import calendar
import io
import re
import shlex
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.scalarstring import LiteralScalarString

from digest import clock, slots
from digest.atomic import write_text
from digest.errors import IssueError
from digest.languages import is_tag

if TYPE_CHECKING:
    from digest.workspace import Workspace

STATUSES = ("draft", "ready", "sending", "sent", "skipped")
UNSENT = ("draft", "ready")
ISSUE_KEYS = ("date", "subject", "preheader", "intro", "language", "status", "articles")


_SIZE = re.compile(r"(\d{1,5})\s*[x×]\s*(\d{1,5})")


@dataclass
class Article:
    url: str
    title: str = ""
    section: str = ""
    summary: str = ""
    author: str = ""
    image: str = ""
    # None: not written, so the email uses the headline; "": a decorative image, no alt text
    image_alt: str | None = None
    image_size: str = ""  # "WIDTHxHEIGHT" in pixels, when known
    blurb: str = ""

    @property
    def image_dimensions(self) -> tuple[int, int] | None:
        """``(width, height)`` from ``image_size``, or None when unknown or malformed."""
        match = _SIZE.fullmatch(self.image_size.strip())
        if not match:
            return None
        width, height = int(match.group(1)), int(match.group(2))
        return (width, height) if width > 0 and height > 0 else None

    def to_dict(self) -> dict[str, str | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


ARTICLE_KEYS = tuple(f.name for f in fields(Article))


@dataclass
class Issue:
    date: date
    subject: str = ""
    preheader: str = ""
    intro: str = ""
    language: str = ""  # a BCP 47 tag; empty: the newsletter's language
    status: str = "draft"
    articles: list[Article] = field(default_factory=list)
    path: Path | None = field(default=None, compare=False, repr=False)
    _doc: CommentedMap | None = field(default=None, compare=False, repr=False)

    @property
    def slug(self) -> str:
        return self.date.isoformat()

    def to_dict(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "subject": self.subject,
            "preheader": self.preheader,
            "intro": self.intro,
            "language": self.language,
            "status": self.status,
            "articles": [a.to_dict() for a in self.articles],
        }

    def by_section(self, sections: Sequence[str]) -> list[tuple[str, list[Article]]]:
        """Articles grouped by section in the configured order; empty sections left out."""
        groups: dict[str, list[Article]] = {}
        for article in self.articles:
            groups.setdefault(canonical_section(article.section, sections), []).append(article)
        ordered = [s for s in sections if s in groups]
        ordered += [s for s in groups if s not in sections]
        return [(s, groups[s]) for s in ordered]

    def find(self, ref: str | int) -> int:
        """The 0-based index of the article numbered ``ref`` (1-based), with URL ``ref``,
        or named by the reference ``ref`` (see :func:`article_refs`)."""
        text = str(ref).strip()
        if text.isdigit():
            number = int(text)
            if not 1 <= number <= len(self.articles):
                raise IssueError(
                    f"{self.label}: no article {number} (the issue has {len(self.articles)}; "
                    f"see `digest issue show {self.slug}`)"
                )
            return number - 1
        for index, article in enumerate(self.articles):
            if article.url == text or article.url.rstrip("/") == text.rstrip("/"):
                return index
        if "://" in text:
            raise IssueError(f"{self.label}: no article with URL {text}")
        return self._by_reference(text)

    def _by_reference(self, text: str) -> int:
        """The one article whose reference, title or URL's last part ``text`` begins."""
        given = "-".join(slug_words(text))
        refs = article_refs(self)
        found = []
        for index, article in enumerate(self.articles):
            names = (refs[index], *_full_slugs(article))
            if given and any(name == given for name in names):
                return index
            if given and any(name.startswith(given) for name in names if name):
                found.append(index)
        if len(found) == 1:
            return found[0]
        if not found:
            raise IssueError(
                f"{self.label}: no article matches {text!r} (name one by its number, reference "
                f"or URL, as `digest issue show {self.slug}` lists them)"
            )
        listed = ", ".join(
            f"{i + 1}. {self.articles[i].title or self.articles[i].url} ({refs[i]})" for i in found
        )
        raise IssueError(
            f"{self.label}: {text!r} matches {len(found)} articles: {listed}; "
            "say more of it, or use its number"
        )

    @property
    def label(self) -> str:
        return str(self.path) if self.path else f"issue {self.slug}"


# -- references: names of articles that do not shift ---------------------------

REF_WORDS = 4
_APOSTROPHES = str.maketrans("", "", "'\u2019\u02bc")


def slug_words(text: str) -> list[str]:
    """The words of ``text``, lower case, in any script (apostrophes dropped: russias)."""
    folded = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).casefold()
    return re.findall(r"[^\W_]+", folded)


def _full_slugs(article: Article) -> tuple[str, str]:
    """The whole title as a slug, and the URL's last part (without an extension)."""
    last = urlsplit(article.url).path.rstrip("/").rsplit("/", 1)[-1]
    stem = last.rsplit(".", 1)[0] if "." in last else last
    return "-".join(slug_words(article.title)), "-".join(slug_words(stem))


def article_refs(issue: Issue) -> list[str]:
    """Each article's reference, in the issue's order: the first four words of its title
    as a slug (``gazprom-and-cnpc-sign``), more words where two titles begin alike, the
    URL's last part for a title without words. It depends on the article, not on its
    place, so it never shifts when others are added, moved or removed."""
    titles = [_full_slugs(a)[0].split("-") if a.title.strip() else [] for a in issue.articles]
    refs = []
    for index, words in enumerate(titles):
        words = [w for w in words if w]
        if not words:
            refs.append(_full_slugs(issue.articles[index])[1] or str(index + 1))
            continue
        count = REF_WORDS
        while count < len(words) and any(
            other[:count] == words[:count] for j, other in enumerate(titles) if j != index
        ):
            count += 1
        refs.append("-".join(words[:count]))
    return refs


def numbered(issue: Issue, sections: Sequence[str]) -> list[Article]:
    """The articles in the order `digest issue show` numbers them (by section)."""
    return [article for _, articles in issue.by_section(sections) for article in articles]


def canonical_section(name: str, sections: Sequence[str]) -> str:
    """``name`` spelt as in the config when it names a configured section."""
    for section in sections:
        if section.lower() == name.strip().lower():
            return section
    return name.strip()


def sort_articles(issue: Issue, sections: Sequence[str]) -> None:
    """Group articles by section in the configured order, keeping order within each."""
    rank = {s: i for i, s in enumerate(sections)}
    for article in issue.articles:
        article.section = canonical_section(article.section, sections)
    issue.articles.sort(key=lambda a: rank.get(a.section, len(rank)))


def add_article(issue: Issue, article: Article, sections: Sequence[str]) -> int:
    """Append ``article`` to the end of its section; return its 0-based index."""
    _refuse_unsent(issue, "add to")
    for existing in issue.articles:
        if same_url(existing.url, article.url):
            raise IssueError(
                f"{issue.label}: {article.url} is already in this issue, under "
                f"{existing.section or 'no section'}; move it with `digest move`"
            )
    issue.articles.append(article)
    sort_articles(issue, sections)
    return issue.articles.index(article)


def move_article(
    issue: Issue,
    ref: str | int,
    sections: Sequence[str],
    *,
    position: int | None = None,
    section: str | None = None,
) -> Article:
    """Move an article to another section and/or to ``position`` (1-based) within its section."""
    _refuse_unsent(issue, "edit")
    article = issue.articles.pop(issue.find(ref))
    if section is not None:
        article.section = check_section(section, sections, issue.label)
    sort_articles(issue, sections)
    members = [i for i, a in enumerate(issue.articles) if a.section == article.section]
    if position is None or not members:
        at = (members[-1] + 1) if members else len(issue.articles)
    else:
        if position < 1:
            raise IssueError(f"position must be 1 or more, not {position}")
        at = (
            members[min(position, len(members) + 1) - 1]
            if position <= len(members)
            else (members[-1] + 1)
        )
    issue.articles.insert(at, article)
    sort_articles(issue, sections)
    return article


def remove_article(issue: Issue, ref: str | int) -> Article:
    _refuse_unsent(issue, "edit")
    return issue.articles.pop(issue.find(ref))


def restore_commands(issue: Issue, ref: str | int, sections: Sequence[str]) -> list[str]:
    """The `digest` lines that would put article ``ref`` back as it is now: an ``add``
    with every field, and a ``move`` when it is not last in its section."""
    index = issue.find(ref)
    article = issue.articles[index]
    words = ["digest", "add", article.url, "--no-fetch", "--issue", issue.slug]
    for key in ("section", "title", "summary", "author", "image", "image_alt", "blurb"):
        value = getattr(article, key)
        if value or (key == "image_alt" and value == "" and article.image):
            words += [f"--{key.replace('_', '-')}", value]
    lines = [" ".join(shlex.quote(w) for w in words)]
    members = [a for a in issue.articles if a.section == article.section]
    place = members.index(article) + 1
    if place < len(members):
        lines.append(f"digest move {shlex.quote(article.url)} --to {place} --issue {issue.slug}")
    return lines


def check_section(name: str, sections: Sequence[str], where: str = "digest.toml") -> str:
    section = canonical_section(name, sections)
    if section not in sections:
        raise IssueError(
            f"no section {name!r}; the sections are {', '.join(sections)} "
            "([newsletter] sections in digest.toml)"
        )
    return section


def same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _refuse_unsent(issue: Issue, verb: str) -> None:
    if issue.status not in UNSENT:
        raise IssueError(
            f"{issue.label}: cannot {verb} an issue that is {issue.status}; "
            "only draft and ready issues change"
        )


# -- files -------------------------------------------------------------------

_DATE_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.yaml$")


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 100
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def issue_path(issues_dir: Path, day: date) -> Path:
    return issues_dir / f"{day.isoformat()}.yaml"


_YMD = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def parse_date(text: str) -> date:
    """``YYYY-MM-DD`` as a date; an IssueError that says what is wrong with it."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise IssueError(date_problem(text.strip())) from None


def date_problem(text: str) -> str:
    """Why ``text`` is not a date: not written YYYY-MM-DD, or a day its month does not have."""
    match = _YMD.fullmatch(text)
    if not match:
        return f"not a date: {text!r} (write YYYY-MM-DD, e.g. 2026-12-04)"
    year, month, day = (int(part) for part in match.groups())
    if year < 1:
        why = "years start at 0001"
    elif not 1 <= month <= 12:
        why = f"there is no month {month}"
    elif day < 1:
        why = "days start at 1"
    else:
        first = date(year, month, 1)
        length = calendar.monthrange(year, month)[1]
        why = f"{first:%B} {year} has {length} days"
    return f"{text} does not exist: {why}"


def list_issue_paths(issues_dir: Path) -> list[Path]:
    if not issues_dir.is_dir():
        return []
    return sorted(p for p in issues_dir.iterdir() if _DATE_FILE.match(p.name))


def load_issue(path: Path) -> Issue:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IssueError(f"{path}: no such issue; create it with `digest issue new`") from None
    except UnicodeDecodeError:
        raise IssueError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    try:
        doc = _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = exc.problem or exc.context or "not valid YAML"
        raise IssueError(f"{path}{line}: {problem}; fix the YAML and try again") from None
    return _from_doc(doc, path)


def _line(node: Any, key: Any) -> str:
    try:
        return f":{node.lc.key(key)[0] + 1}"
    except (AttributeError, KeyError, TypeError, IndexError):
        return ""


def _item_line(seq: Any, index: int) -> str:
    try:
        return f":{seq.lc.item(index)[0] + 1}"
    except (AttributeError, KeyError, TypeError, IndexError):
        return ""


def _text(value: Any, where: str, key: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | dict | list):
        raise IssueError(f"{where}: {key} must be text, not {type(value).__name__}")
    return str(value)


def _from_doc(doc: Any, path: Path) -> Issue:
    if not isinstance(doc, CommentedMap):
        raise IssueError(f"{path}: an issue file must be a mapping with date, subject, articles …")
    for key in doc:
        if key not in ISSUE_KEYS:
            raise IssueError(
                f"{path}{_line(doc, key)}: unknown key {key!r} (allowed: {', '.join(ISSUE_KEYS)})"
            )
    match = _DATE_FILE.match(path.name)
    raw_date = doc.get("date", match.group(1) if match else None)
    if raw_date is None:
        raise IssueError(f"{path}: no date; add `date: YYYY-MM-DD`")
    if isinstance(raw_date, date):
        day = raw_date
    else:
        try:
            day = date.fromisoformat(str(raw_date))
        except ValueError:
            raise IssueError(f"{path}{_line(doc, 'date')}: {date_problem(str(raw_date))}") from None
    if match and match.group(1) != day.isoformat():
        raise IssueError(
            f"{path}{_line(doc, 'date')}: date {day} does not match the file name; "
            "rename the file or fix the date"
        )
    status = _text(doc.get("status", "draft"), f"{path}{_line(doc, 'status')}", "status")
    if status not in STATUSES:
        raise IssueError(
            f"{path}{_line(doc, 'status')}: status {status!r} is not one of {', '.join(STATUSES)}"
        )
    language = _text(doc.get("language"), f"{path}{_line(doc, 'language')}", "language").strip()
    if language and not is_tag(language):
        raise IssueError(
            f"{path}{_line(doc, 'language')}: language {language!r} is not a language tag "
            "like en, de, pt-BR or ar"
        )
    raw_articles = doc.get("articles") or []
    if not isinstance(raw_articles, list):
        raise IssueError(f"{path}{_line(doc, 'articles')}: articles must be a list")
    articles = []
    for index, item in enumerate(raw_articles):
        where = f"{path}{_item_line(raw_articles, index)}"
        if not isinstance(item, dict):
            raise IssueError(f"{where}: each article must be a mapping with url, title …")
        for key in item:
            if key not in ARTICLE_KEYS:
                raise IssueError(
                    f"{path}{_line(item, key)}: unknown article key {key!r} "
                    f"(allowed: {', '.join(ARTICLE_KEYS)})"
                )
        url = _text(item.get("url"), where, "url").strip()
        if not url:
            raise IssueError(f"{where}: article {index + 1} has no url")
        values: dict[str, Any] = {
            k: _text(item.get(k), f"{path}{_line(item, k)}", k) for k in ARTICLE_KEYS
        }
        if "image_alt" not in item:
            values["image_alt"] = None  # the headline stands in; `image_alt: ""` is decorative
        articles.append(Article(**values))
    return Issue(
        date=day,
        subject=_text(doc.get("subject"), f"{path}{_line(doc, 'subject')}", "subject"),
        preheader=_text(doc.get("preheader"), f"{path}{_line(doc, 'preheader')}", "preheader"),
        intro=_text(doc.get("intro"), f"{path}{_line(doc, 'intro')}", "intro"),
        language=language,
        status=status,
        articles=articles,
        path=path,
        _doc=doc,
    )


def _scalar(value: str) -> Any:
    """Multi-line text as a ``|`` block, which reads best and round-trips."""
    if "\n" in value and value == value.strip("\n") + "\n" * (value.endswith("\n")):
        if all(line == line.rstrip() for line in value.split("\n")) and not value.startswith(" "):
            return LiteralScalarString(value)
    return value


def _set(node: CommentedMap, key: str, value: Any, keep_empty: bool = True) -> None:
    """Set ``node[key]`` only when the value really changed, so formatting survives."""
    current = node.get(key)
    if key in node and (current if current is not None else "") == value:
        return
    if isinstance(current, date) and isinstance(value, date) and current == value:
        return
    if not keep_empty and value == "":
        if key in node:
            del node[key]
        return
    node[key] = _scalar(value) if isinstance(value, str) else value


def _to_doc(issue: Issue) -> CommentedMap:
    doc = issue._doc if issue._doc is not None else CommentedMap()
    _set(doc, "date", issue.date)
    for key in ("subject", "preheader", "intro", "status"):
        _set(doc, key, getattr(issue, key))
    if issue.language and "language" not in doc:
        keys = list(doc)
        at = keys.index("status") if "status" in keys else len(keys)
        doc.insert(at, "language", issue.language)
    _set(doc, "language", issue.language, keep_empty=False)
    old = doc.get("articles")
    old_items: list[Any] = list(old) if isinstance(old, list) else []
    by_url: dict[str, CommentedMap] = {}
    for item in old_items:
        if isinstance(item, CommentedMap) and item.get("url"):
            by_url.setdefault(str(item["url"]).strip(), item)
    seq = old if isinstance(old, CommentedSeq) else CommentedSeq()
    comments = {id(item): seq.ca.items.get(i) for i, item in enumerate(old_items)}
    seq.ca.items.clear()
    seq.clear()
    for index, article in enumerate(issue.articles):
        node = by_url.pop(article.url, None)
        if node is None:
            node = CommentedMap()
        for key in ARTICLE_KEYS:
            value = getattr(article, key)
            if value is None:  # image_alt not written: leave it out
                if key in node:
                    del node[key]
                continue
            keep = key in ("url", "title", "section", "image_alt")
            _set(node, key, value, keep_empty=keep)
        seq.append(node)
        if comments.get(id(node)):
            seq.ca.items[index] = comments[id(node)]
    doc["articles"] = seq
    return doc


def dump_issue(issue: Issue) -> str:
    doc = _to_doc(issue)
    issue._doc = doc
    buffer = io.StringIO()
    _yaml().dump(doc, buffer)
    return buffer.getvalue()


def save_issue(issue: Issue, path: Path | None = None) -> Path:
    """Write the issue back, keeping whatever the editor wrote by hand."""
    target = path or issue.path
    if target is None:
        raise IssueError(f"issue {issue.slug} has no file to save to")
    write_text(target, dump_issue(issue))
    issue.path = target
    return target


def new_issue_text(day: date, newsletter: str) -> str:
    """The starting file of a new issue: every key, with hints as comments."""
    return f"""\
# {newsletter}, issue of {day.isoformat()}.
# Edit by hand or with `digest add`, `digest move`, `digest remove`;
# the CLI keeps your comments. Preview it with `digest preview`.
date: {day.isoformat()}
subject: ""          # the email's subject line (under ~80 characters)
preheader: ""        # the line mail apps show after the subject
status: draft        # draft -> ready (`digest issue ready`) -> sending -> sent; or skipped
intro: ""            # Markdown: the editor's note at the top
articles: []
"""


def create_issue(issues_dir: Path, day: date, newsletter: str) -> Issue:
    path = issue_path(issues_dir, day)
    if path.exists():
        raise IssueError(f"{path} already exists; edit it, or pick another --date")
    write_text(path, new_issue_text(day, newsletter))
    return load_issue(path)


def load_issues(paths: Iterable[Path]) -> list[Issue]:
    return [load_issue(p) for p in paths]


# -- issues of a workspace ---------------------------------------------------


def workspace_issue(ws: Workspace, ref: str | date | None = None, *, create: bool = False) -> Issue:
    """The issue dated ``ref``, or the upcoming unsent one when ``ref`` is None.

    The upcoming issue is the earliest draft or ready issue dated today or
    later; with ``create`` a missing one is made for the next slot.
    """
    if ref is not None:
        day = ref if isinstance(ref, date) else parse_date(ref)
        path = issue_path(ws.issues_dir, day)
        if not path.exists():
            if create:
                return create_issue(ws.issues_dir, day, ws.config.newsletter.name)
            raise IssueError(
                f"{path}: no issue dated {day}; create it with `digest issue new --date {day}`"
            )
        return load_issue(path)
    today = clock.now().astimezone(ws.config.schedule.zone).date()
    for path in list_issue_paths(ws.issues_dir):
        if path.stem >= today.isoformat():
            issue = load_issue(path)
            if issue.status in UNSENT:
                return issue
    if create:
        day, _ = next_open_date(ws)
        return create_issue(ws.issues_dir, day, ws.config.newsletter.name)
    raise IssueError(
        f"no upcoming draft or ready issue in {ws.issues_dir}; "
        "create one with `digest issue new`, or name a date"
    )


def next_open_date(ws: Workspace) -> tuple[date, list[Issue]]:
    """The first slot date from now on without an issue file, and the sent or skipped
    issues passed over on the way (the week moves on once its issue has gone).

    An unsent issue on the way is an :class:`IssueError`: it is the one to edit.
    """
    sched = ws.config.schedule
    day = slots.next_issue_date(sched, clock.now())
    passed: list[Issue] = []
    while True:
        path = issue_path(ws.issues_dir, day)
        if not path.exists():
            return day, passed
        existing = load_issue(path)
        if existing.status in UNSENT:
            raise IssueError(
                f"{path} already exists and is {existing.status}: it is the upcoming issue; "
                "edit it, or pick another --date"
            )
        passed.append(existing)
        day = slots.next_issue_date(sched, slots.slot_on(sched, day) + timedelta(minutes=1))


def new_workspace_issue(
    ws: Workspace, day: date | None = None, *, force: bool = False
) -> tuple[Issue, list[Issue]]:
    """``digest issue new``: the next slot without an issue by default (a slot whose issue
    is sent or skipped is passed over, and returned too); with ``day``, the configured
    weekday only."""
    sched = ws.config.schedule
    passed: list[Issue] = []
    if day is None:
        day, passed = next_open_date(ws)
    elif day.weekday() != sched.weekday_index and not force:
        raise IssueError(
            f"{day} is a {day.strftime('%A')}, but issues go out on {sched.weekday.title()}s; "
            "pick another date or pass --force"
        )
    return create_issue(ws.issues_dir, day, ws.config.newsletter.name), passed


def passed_note(passed: Sequence[Issue]) -> str:
    """``2026-12-04 is sent`` / ``2026-12-04 and 2026-12-11 are sent or skipped``."""
    if not passed:
        return ""
    states = " or ".join(dict.fromkeys(i.status for i in passed))
    names = [i.slug for i in passed]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"{listed} {'is' if len(names) == 1 else 'are'} {states}"
