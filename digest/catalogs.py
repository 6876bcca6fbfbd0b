"""A workspace's own catalogs: the files behind `digest translations`.

A workspace may hold ``locale/<tag>/LC_MESSAGES/digest.po`` for any
language: each translated entry replaces digest's wording in that language
(:mod:`digest.translations` reads the file as it is, no compile step), and
an entry left empty keeps digest's own. :func:`start` writes such a file
with every message of this digest version, empty, and digest's own
translation beside each as a comment; :func:`update` brings the files in
step with a newer digest (new and changed messages added empty, removed
ones dropped); :func:`status` says what each language has.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digest.atomic import write_bytes
from digest.errors import WorkspaceError
from digest.languages import is_tag
from digest.translations import (
    DOMAIN,
    SOURCE_LANGUAGE,
    TEMPLATE,
    best_match,
    catalog,
    locale_name,
    shipped_languages,
    tag_of,
)

WIDTH = 100  # as the shipped catalogs are written (pyproject.toml, [tool.babel])
SHIPPED_NOTE = "digest: "  # the comment that shows digest's own translation of an entry


@dataclass(frozen=True)
class Language:
    """One language digest ships or the workspace has a catalog for."""

    tag: str
    shipped: bool
    own: Path | None  # the workspace's .po, if any
    messages: int  # messages in this digest version
    own_translated: int  # entries the workspace's .po translates (0 without one)


def _template() -> Any:
    from babel.messages.pofile import read_po  # deferred: Babel's catalog tools

    with TEMPLATE.open("rb") as handle:
        return read_po(handle)


def _read(path: Path, locale: str | None = None) -> Any:
    from babel.messages.pofile import PoFileError, read_po  # deferred, as above

    try:
        with path.open("rb") as handle:
            return read_po(handle, locale=locale, abort_invalid=True)
    except (OSError, PoFileError, UnicodeDecodeError, ValueError) as exc:
        raise WorkspaceError(f"{path}: cannot be read ({exc}); fix it or remove it") from None


def _write(path: Path, po: Any) -> None:
    from babel.messages.pofile import write_po  # deferred, as above

    buffer = io.BytesIO()
    write_po(buffer, po, width=WIDTH, no_location=True, omit_header=False)
    write_bytes(path, buffer.getvalue())


def _key(message: Any) -> str:
    return str(message.id if isinstance(message.id, str) else message.id[0])


def own_catalogs(locale_dir: Path) -> dict[str, Path]:
    """The workspace's catalogs by language tag."""
    if not locale_dir.is_dir():
        return {}
    return {
        tag_of(p.name): p / "LC_MESSAGES" / f"{DOMAIN}.po"
        for p in sorted(locale_dir.iterdir())
        if (p / "LC_MESSAGES" / f"{DOMAIN}.po").is_file()
    }


def status(locale_dir: Path) -> list[Language]:
    """Every language digest ships, and every one the workspace has a catalog for."""
    wanted = {_key(m) for m in _template() if m.id}
    own = own_catalogs(locale_dir)
    shipped = shipped_languages()
    rows = []
    for tag in [*shipped, *sorted(t for t in own if t not in shipped)]:
        path = own.get(tag)
        translated = 0
        if path is not None:
            po = _read(path)
            translated = len(
                [m for m in po if m.id and _key(m) in wanted and _filled(m) and not m.fuzzy]
            )
        rows.append(Language(tag, tag in shipped, path, len(wanted), translated))
    return rows


def _filled(message: Any) -> bool:
    forms = message.string if isinstance(message.string, tuple | list) else (message.string,)
    return all(forms)


def start(locale_dir: Path, tag: str) -> Path:
    """Write ``locale/<tag>/LC_MESSAGES/digest.po``: every message, empty, to fill in.

    For a language digest ships, each entry carries digest's own translation
    as a comment: fill in only what should read differently. Never overwrites.
    """
    if not is_tag(tag):
        raise WorkspaceError(f"{tag!r} is not a language tag; write one like de, pt-BR or ar")
    for have, path in own_catalogs(locale_dir).items():
        if locale_name(have).lower() == locale_name(tag).lower():
            raise WorkspaceError(
                f"{path} already exists; edit it, or run `digest translations update`"
            )
    from babel import Locale, UnknownLocaleError  # deferred: Babel's plural rules

    try:
        locale = Locale.parse(locale_name(tag))
    except (UnknownLocaleError, ValueError):
        locale = None
    po = _template()
    po.locale = locale
    po.fuzzy = False
    _note_shipped(po, tag)
    path = locale_dir / locale_name(tag) / "LC_MESSAGES" / f"{DOMAIN}.po"
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, po)
    return path


def _note_shipped(po: Any, tag: str) -> None:
    """Put digest's own translation of each entry beside it, as a comment to read."""
    shipped = best_match(tag, shipped_languages())
    words = catalog(shipped) if shipped not in (None, SOURCE_LANGUAGE) else None
    for message in po:
        if not message.id:
            continue
        message.auto_comments = [c for c in message.auto_comments if not c.startswith(SHIPPED_NOTE)]
        if words is None:
            continue
        if isinstance(message.id, str):
            forms = [words.gettext(message.id)]
        else:
            forms = [words.ngettext(message.id[0], message.id[1], n) for n in (1, 2, 5)]
        for form in dict.fromkeys(forms):
            message.auto_comments.append(SHIPPED_NOTE + form)


@dataclass(frozen=True)
class Updated:
    path: Path
    added: int  # empty: digest's own wording until filled in
    dropped: int  # no longer in digest (their English changed, or they went)


def update(locale_dir: Path) -> list[Updated]:
    """Bring every workspace catalog in step with this digest version's messages.

    No guessing: a message whose English changed comes in empty, like a new
    one (digest's own wording shows until it is filled in), and the old entry goes.
    """
    template = _template()
    done = []
    for tag, path in own_catalogs(locale_dir).items():
        po = _read(path)
        before = {_key(m) for m in po if m.id}
        po.update(template, no_fuzzy_matching=True, update_header_comment=False)
        after = {_key(m) for m in po if m.id}
        dropped = len(po.obsolete)
        po.obsolete.clear()
        _note_shipped(po, tag)
        _write(path, po)
        done.append(Updated(path, len(after - before), dropped))
    return done


__all__ = [
    "Language",
    "Updated",
    "own_catalogs",
    "start",
    "status",
    "update",
]
