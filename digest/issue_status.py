"""Each issue file's status, cheaply: re-read only when the file changed."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from digest.errors import IssueError
from digest.issue import list_issue_paths, load_issue

WENT_OUT = ("sending", "sent")

# path -> ((mtime, size), status, the URLs of its articles)
_status_cache: dict[Path, tuple[tuple[int, int], str, tuple[str, ...]]] = {}


def _read(path: Path) -> tuple[str, tuple[str, ...]] | None:
    """The file's status and article URLs, re-read only when it changed; None when gone."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    key = (info.st_mtime_ns, info.st_size)
    cached = _status_cache.get(path)
    if cached is None or cached[0] != key:
        try:
            issue = load_issue(path)
            cached = (key, issue.status, tuple(a.url for a in issue.articles))
        except IssueError as exc:
            cached = (key, f"broken: {exc}", ())
        _status_cache[path] = cached
    return cached[1], cached[2]


def issue_statuses(issues_dir: Path) -> dict[date, str]:
    """Each issue file's status, re-read only when the file changed.

    ``digest send --due`` runs every few minutes; a run that finds nothing due
    should cost a directory listing and a stat per file, not a YAML parse.
    A file that does not load has the status ``"broken: <message>"``.
    """
    found: dict[date, str] = {}
    for path in list_issue_paths(issues_dir):
        read = _read(path)
        if read is not None:
            found[date.fromisoformat(path.stem)] = read[0]
    return found


def went_out_before(issues_dir: Path, day: date) -> dict[str, date]:
    """Each article URL (without a trailing slash) of the issues dated before ``day`` that
    went out (sent, or being sent), with the date of the latest one that carried it."""
    found: dict[str, date] = {}
    for path in list_issue_paths(issues_dir):
        if path.stem >= day.isoformat():
            break
        read = _read(path)
        if read is not None and read[0] in WENT_OUT:
            for url in read[1]:
                found[url.rstrip("/")] = date.fromisoformat(path.stem)
    return found


def is_due(status: str | None) -> bool:
    """Whether an issue in ``status`` (None: no file yet) still waits for its slot."""
    return status not in ("sent", "skipped")
