"""What an article number means in this terminal: the numbers as last shown there.

Article numbers are places in `digest issue show`, and they shift when an article is
added, moved or removed. So that a second command never silently hits a different
article (`digest remove 5`, then `digest remove 5 --yes`), digest remembers, for each
terminal session and issue, the numbering the editor last saw: `issue show`, `add`,
`pick` and `move` print numbers and so renew it; `remove` prints none, so after it the
numbers the editor typed it with stay the ones that count. A number that now names
another article than it did then is refused, naming both, until `digest issue show`
shows the new ones. References (:func:`digest.issue.article_refs`) and URLs never
shift, and are never refused.

The state lives in the workspace's git-ignored ``subscribers/`` folder, keyed by the
terminal's session id; sessions that have ended are dropped when it is written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from digest.atomic import write_text
from digest.errors import IssueError
from digest.issue import Article, Issue, article_refs, numbered
from digest.workspace import Workspace

STATE_NAME = ".numbers.json"

Listing = list[tuple[str, str]]  # (url, title) in the order the numbers count


def session() -> str:
    """This terminal's session (the shell and every command it runs share it)."""
    try:
        return str(os.getsid(0))
    except OSError:  # pragma: no cover - no session (not on a POSIX system)
        return "0"


def _path(ws: Workspace) -> Path:
    return ws.subscribers_dir / STATE_NAME


def _load(ws: Workspace) -> dict[str, Any]:
    try:
        data = json.loads(_path(ws).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(sid: str) -> bool:
    try:
        os.kill(int(sid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OSError):
        return True
    return True


def _save(ws: Workspace, data: dict[str, Any]) -> None:
    kept = {sid: issues for sid, issues in data.items() if sid == session() or _alive(sid)}
    try:
        write_text(_path(ws), json.dumps(kept, ensure_ascii=False, indent=1))
    except OSError:  # a read-only workspace: numbers are then not guarded, as before
        pass


def _listing(issue: Issue, sections: Sequence[str]) -> Listing:
    return [(a.url, a.title) for a in numbered(issue, sections)]


def _known(ws: Workspace, issue: Issue) -> Listing | None:
    entry = _load(ws).get(session(), {}).get(issue.slug)
    if not isinstance(entry, list):
        return None
    return [(str(url), str(title)) for url, title in entry]


def _remember(ws: Workspace, issue: Issue, listing: Listing) -> None:
    data = _load(ws)
    data.setdefault(session(), {})[issue.slug] = [list(pair) for pair in listing]
    _save(ws, data)


def shown(ws: Workspace, issue: Issue) -> None:
    """The editor was just shown the issue's numbers (`issue show`, `add`, `pick`, `move`)."""
    _remember(ws, issue, _listing(issue, ws.config.newsletter.sections))


def before_removing(ws: Workspace, issue: Issue) -> None:
    """Called before a remove: the numbers as they are now stay the ones the editor knows
    (unless this terminal already knows older ones), since the remove shows no new ones."""
    if _known(ws, issue) is None:
        shown(ws, issue)


def resolve(ws: Workspace, issue: Issue, ref: str, verb: str) -> Article:
    """The article ``ref`` names: a number (as this terminal last saw the numbers), a
    reference or a URL. ``verb`` is the command, for the way out in a refusal."""
    text = ref.strip()
    if not text.isdigit():
        return issue.articles[issue.find(text)]
    sections = ws.config.newsletter.sections
    listing = numbered(issue, sections)
    number = int(text)
    if not 1 <= number <= len(listing):
        issue.find(text)  # the error that names the issue's length
    current = listing[number - 1]
    known = _known(ws, issue)
    if known is None or known == _listing(issue, sections):
        return current
    then = known[number - 1] if number <= len(known) else None
    if then is not None and then[0] == current.url:
        return current
    refs = dict(zip((a.url for a in issue.articles), article_refs(issue), strict=True))
    now = f"{number} is now “{current.title or current.url}”"
    if then is None:
        what = (
            f"{issue.label}: article {number} was not in the issue when this terminal last "
            f"saw the numbers of {issue.slug} ({now})"
        )
        ways = [f"`digest {verb} {refs[current.url]}`"]
    elif then[0] in refs:
        moved_to = 1 + [a.url for a in listing].index(then[0])
        what = (
            f"{issue.label}: article {number} was “{then[1] or then[0]}” when this terminal "
            f"last saw the numbers of {issue.slug}; it is number {moved_to} now ({now})"
        )
        ways = [f"`digest {verb} {refs[then[0]]}`", f"`digest {verb} {refs[current.url]}`"]
    else:
        what = (
            f"{issue.label}: article {number} was “{then[1] or then[0]}” when this terminal "
            f"last saw the numbers of {issue.slug}; it has been removed since ({now})"
        )
        ways = [f"`digest {verb} {refs[current.url]}`"]
    raise IssueError(
        f"{what}. Name the article you mean ({' or '.join(ways)}), or see the new numbers "
        f"with `digest issue show {issue.slug}`"
    )
