"""The words digest writes around the editor's own, in the reader's language.

Every word a reader sees that the editor did not write (the email's links
and footer, the confirmation email, the public pages, the default consent
statement) is a gettext message of the ``digest`` domain. :func:`catalog`
gives the :class:`Catalog` for a language tag: its ``gettext``/``ngettext``
(and ``pgettext``/``npgettext``) for Python code and Jinja's ``i18n``
extension (:func:`install`), and dates and numbers written by Babel in that
language.

Where the words come from, first match wins:

1. the workspace's own catalog, ``locale/<tag>/LC_MESSAGES/digest.po``, read
   as it is (no compile step): each translated, non-fuzzy entry whose
   placeholders match the English ones replaces digest's wording;
2. the catalog digest ships for the language (``digest/locale/<locale>/
   LC_MESSAGES/digest.mo``, compiled from the ``.po`` beside it): an exact
   tag, else the same language in another region (``de-AT`` reads ``de``);
3. the English text in the code.

Loading a shipped catalog is the standard library's ``gettext`` on one small
file, so commands that only need the consent statement stay light; Babel is
imported on the first date or number written, and to read a workspace's
``.po`` file.
"""

from __future__ import annotations

import gettext as gettext_module
import io
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any

DOMAIN = "digest"
SOURCE_LANGUAGE = "en"
PACKAGE_LOCALE = Path(__file__).parent / "locale"
TEMPLATE = PACKAGE_LOCALE / f"{DOMAIN}.pot"
# Babel's locale for writing dates and numbers, where it is not the tag itself:
# plain "en" keeps the day-month order digest has always written (Friday,
# 4 December 2026); "en-US" gives Friday, December 4, 2026.
DATE_LOCALES = {"en": "en_GB"}


def N_(message: str) -> str:
    """Marks ``message`` for the catalog where it is defined; it is translated where shown."""
    return message


# "every Friday", to put in a sentence: one message per day, since many languages
# inflect the day after "every" (каждую пятницу, каждый понедельник; w każdą środę).
EVERY_WEEKDAY = (
    N_("every Monday"),
    N_("every Tuesday"),
    N_("every Wednesday"),
    N_("every Thursday"),
    N_("every Friday"),
    N_("every Saturday"),
    N_("every Sunday"),
)


# -- language tags and catalog folders --------------------------------------------


def locale_name(tag: str) -> str:
    """A BCP 47 tag as a gettext/Babel locale folder name: ``pt-BR`` -> ``pt_BR``."""
    parts = tag.replace("_", "-").split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha():
            out.append(part.title())
        elif len(part) in (2, 3):
            out.append(part.upper())
        else:
            out.append(part)
    return "_".join(out)


def tag_of(name: str) -> str:
    """A locale folder name as a BCP 47 tag: ``pt_BR`` -> ``pt-BR``."""
    return name.replace("_", "-")


def shipped_languages() -> list[str]:
    """The tags of the catalogs digest ships, English first."""
    found = sorted(
        tag_of(p.name)
        for p in PACKAGE_LOCALE.iterdir()
        if (p / "LC_MESSAGES" / f"{DOMAIN}.mo").is_file()
    )
    return [SOURCE_LANGUAGE, *(t for t in found if t != SOURCE_LANGUAGE)]


def best_match(tag: str, available: Iterable[str]) -> str | None:
    """The tag in ``available`` for ``tag``: the same tag, else its language (and script).

    ``pt-BR`` matches ``pt-BR``; ``de-AT`` matches ``de``; ``sr-Latn-RS``
    matches ``sr-Latn``, then ``sr``; ``pt`` matches a lone ``pt-*`` only when
    nothing plainer exists.
    """
    by_name = {locale_name(t).lower(): t for t in available}
    parts = locale_name(tag).lower().split("_")
    for end in range(len(parts), 0, -1):
        found = by_name.get("_".join(parts[:end]))
        if found is not None:
            return found
    same_language = sorted(t for n, t in by_name.items() if n.split("_")[0] == parts[0])
    return same_language[0] if len(same_language) == 1 else None


def workspace_catalog_path(locale_dir: Path, tag: str) -> Path | None:
    """The workspace's ``.po`` for ``tag`` (``locale/pt-BR/…`` or ``locale/pt_BR/…``)."""
    if not locale_dir.is_dir():
        return None
    tags = {
        tag_of(p.name): p / "LC_MESSAGES" / f"{DOMAIN}.po"
        for p in sorted(locale_dir.iterdir())
        if (p / "LC_MESSAGES" / f"{DOMAIN}.po").is_file()
    }
    found = best_match(tag, tags)
    return tags[found] if found is not None else None


# -- the catalog ---------------------------------------------------------------------


@dataclass(frozen=True)
class Catalog:
    """The words of digest in one language, and its way of writing dates and numbers."""

    language: str  # the tag asked for, e.g. "pt-BR"
    shipped: str | None  # the shipped catalog used ("pt-BR"), or None: English
    workspace: Path | None  # the workspace's own .po read, if any
    problems: tuple[str, ...]  # workspace entries left out, "FILE:LINE: why"
    translations: gettext_module.NullTranslations = field(repr=False, compare=False)

    @property
    def covered(self) -> bool:
        """Whether readers get digest's words in this language (else in English)."""
        if locale_name(self.language).split("_")[0] == SOURCE_LANGUAGE:
            return True
        return self.shipped is not None or self.workspace is not None

    @property
    def spoken(self) -> str:
        """The tag of the words readers get: ``language``, or English where it falls back."""
        return self.language if self.covered else SOURCE_LANGUAGE

    # gettext, for Python code and Jinja's i18n extension
    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    def pgettext(self, context: str, message: str) -> str:
        return self.translations.pgettext(context, message)

    def npgettext(self, context: str, singular: str, plural: str, n: int) -> str:
        return self.translations.npgettext(context, singular, plural, n)

    def __call__(self, message: str, **values: Any) -> str:
        """``message`` translated, with ``%(name)s`` placeholders filled from ``values``."""
        text = self.gettext(message)
        return text % values if values else text

    def plural(self, singular: str, plural: str, n: int, **values: Any) -> str:
        """The form of ``singular``/``plural`` for ``n``; ``%(num)s`` is ``n`` written out."""
        return self.ngettext(singular, plural, n) % {"num": self.format_number(n), **values}

    def every(self, weekday: int) -> str:
        """ "every Friday" for ``weekday`` 0 (Monday) to 6, as a phrase for a sentence."""
        return self.gettext(EVERY_WEEKDAY[weekday])

    # Babel
    @property
    def date_locale(self) -> str:
        return DATE_LOCALES.get(self.language, locale_name(self.language))

    def format_date(
        self, value: date | datetime, format: str = "full", zone: tzinfo | None = None
    ) -> str:
        """A date (or an instant, in ``zone``) as the language writes it: ``format`` is
        Babel's ``full``, ``long``, ``medium``, ``short`` or a pattern like ``d MMMM``."""
        from babel import dates  # deferred: Babel loads its locale data on first use

        if isinstance(value, datetime):
            if zone is not None and value.tzinfo is not None:
                value = value.astimezone(zone)
            value = value.date()
        return dates.format_date(value, format, locale=_babel_locale(self.date_locale))

    def format_number(self, value: float) -> str:
        from babel import numbers  # deferred: Babel loads its locale data on first use

        return numbers.format_decimal(value, locale=_babel_locale(self.date_locale))


_LOCALES: dict[str, Any] = {}


def _babel_locale(name: str) -> Any:
    """Babel's Locale for ``name``, else for its language, else English."""
    found = _LOCALES.get(name)
    if found is None:
        from babel import Locale, UnknownLocaleError  # deferred, as above

        parts = name.split("_")
        for candidate in ("_".join(parts[:end]) for end in range(len(parts), 0, -1)):
            try:
                found = Locale.parse(candidate)
                break
            except (UnknownLocaleError, ValueError):
                continue
        else:
            found = Locale.parse(DATE_LOCALES[SOURCE_LANGUAGE])
        _LOCALES[name] = found
    return found


_LOCK = threading.Lock()
_CACHE: dict[tuple[str, str], tuple[tuple[Any, ...], Catalog]] = {}
_SHIPPED: dict[str, gettext_module.NullTranslations] = {}


def _shipped(tag: str) -> gettext_module.NullTranslations:
    found = _SHIPPED.get(tag)
    if found is None:
        path = PACKAGE_LOCALE / locale_name(tag) / "LC_MESSAGES" / f"{DOMAIN}.mo"
        with path.open("rb") as handle:
            found = _SHIPPED[tag] = gettext_module.GNUTranslations(handle)
    return found


def _stamp(path: Path | None) -> tuple[Any, ...]:
    if path is None:
        return ()
    try:
        st = path.stat()
    except OSError:
        return ()
    return (str(path), st.st_mtime_ns, st.st_size)


def catalog(tag: str, locale_dir: Path | None = None) -> Catalog:
    """The :class:`Catalog` for language ``tag``, with the workspace's ``locale_dir`` over it.

    Cached; a workspace catalog is read again when its file changes.
    """
    own = workspace_catalog_path(locale_dir, tag) if locale_dir is not None else None
    key = (tag, str(locale_dir or ""))
    stamp = _stamp(own)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        made = _load(tag, own)
        _CACHE[key] = (stamp, made)
        return made


def _load(tag: str, own: Path | None) -> Catalog:
    shipped = best_match(tag, shipped_languages())
    if shipped == SOURCE_LANGUAGE:
        base: gettext_module.NullTranslations = gettext_module.NullTranslations()
        shipped_used: str | None = SOURCE_LANGUAGE
    elif shipped is not None:
        base, shipped_used = _shipped(shipped), shipped
    else:
        base, shipped_used = gettext_module.NullTranslations(), None
    if own is None:
        return Catalog(tag, shipped_used, None, (), base)
    translations, problems = read_workspace_catalog(own)
    translations.add_fallback(base)
    return Catalog(tag, shipped_used, own, problems, translations)


def read_workspace_catalog(path: Path) -> tuple[gettext_module.GNUTranslations, tuple[str, ...]]:
    """A workspace ``.po`` as translations: its good entries, and why the others were left out.

    An entry is used when it is translated (every plural form), not fuzzy,
    and its placeholders (``%(name)s``) are those of the English text; a
    file that cannot be read at all gives no entries and one problem.
    """
    from babel.messages.catalog import Catalog as BabelCatalog  # deferred: only for a .po
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import PoFileError, read_po

    problems: list[str] = []
    try:
        with path.open("rb") as handle:
            source = read_po(handle, abort_invalid=True)
    except (OSError, PoFileError, UnicodeDecodeError, ValueError) as exc:
        problems.append(f"{path}: cannot be read ({exc}); fix it or remove it")
        source = BabelCatalog(locale=None)
    bad = {}
    for message, errors in source.check():
        bad[message.id if isinstance(message.id, str) else message.id[0]] = errors
    good = BabelCatalog(locale=None)
    good.mime_headers = source.mime_headers
    for message in source:
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        forms = message.string if isinstance(message.string, tuple | list) else (message.string,)
        where = f"{path}:{message.lineno}" if message.lineno else str(path)
        if key in bad:
            why = "; ".join(str(e) for e in bad[key])
            problems.append(f"{where}: {key!r} left out: {why}")
        elif message.fuzzy:
            continue
        elif all(forms):
            good.add(message.id, message.string, context=message.context)
    buffer = io.BytesIO()
    write_mo(buffer, good)
    buffer.seek(0)
    return gettext_module.GNUTranslations(buffer), tuple(problems)


# -- templates ---------------------------------------------------------------------


def install(env: Any, words: Catalog, zone: tzinfo | None = None) -> None:
    """Give a Jinja environment ``words``: ``{% trans %}``, ``_()``, and the filters
    ``format_date`` (in ``zone``, the schedule's) and ``format_number``."""
    env.add_extension("jinja2.ext.i18n")
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(words, newstyle=True)
    env.globals["every_weekday"] = words.every

    def format_date(value: date | datetime, format: str = "full") -> str:
        return words.format_date(value, format, zone)

    env.filters["format_date"] = format_date
    env.filters["format_number"] = words.format_number
