"""Each issue file's status, cheaply: re-read only when the file changed."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from digest.errors import IssueError
from digest.issue import list_issue_paths, load_issue

_status_cache: dict[Path, tuple[tuple[int, int], str]] = {}


def issue_statuses(issues_dir: Path) -> dict[date, str]:
    """Each issue file's status, re-read only when the file changed.

    ``digest send --due`` runs every few minutes; a run that finds nothing due
    should cost a directory listing and a stat per file, not a YAML parse.
    A file that does not load has the status ``"broken: <message>"``.
    """
    found: dict[date, str] = {}
    for path in list_issue_paths(issues_dir):
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        key = (info.st_mtime_ns, info.st_size)
        cached = _status_cache.get(path)
        if cached is None or cached[0] != key:
            try:
                status = load_issue(path).status
            except IssueError as exc:
                status = f"broken: {exc}"
            cached = (key, status)
            _status_cache[path] = cached
        found[date.fromisoformat(path.stem)] = cached[1]
    return found


def is_due(status: str | None) -> bool:
    """Whether an issue in ``status`` (None: no file yet) still waits for its slot."""
    return status not in ("sent", "skipped")
