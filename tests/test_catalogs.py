"""The shipped catalogs stay complete and in step with the code.

A reader-facing word added to a template or marked in Python (``N_``,
``_()``, ``{% trans %}``) without a translation fails here, in every
language, until ``pybabel extract`` and ``pybabel update`` have run and the
translator has filled it in; ``pybabel compile`` keeps the shipped ``.mo``
files equal to their ``.po`` sources. docs/languages.md says how.
"""

from __future__ import annotations

import gettext
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from babel import Locale
from babel.messages.extract import extract_from_dir
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po

from digest.translations import PACKAGE_LOCALE, TEMPLATE, shipped_languages

ROOT = Path(__file__).parent.parent
SHIPPED = ("en", "ru", "uk", "de", "fr", "es", "pt-BR", "it", "pl", "ar")
CATALOGS = sorted(p.parent.parent.name for p in PACKAGE_LOCALE.glob("*/LC_MESSAGES/digest.po"))
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
TAG = re.compile(r"</?\w+[^>]*>")


def _read(path: Path, locale: str | None = None) -> Any:
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def _key(message: Any) -> Any:
    return message.id


def extracted() -> dict[Any, Any]:
    """The messages in the code now, found as `pybabel extract` finds them (pyproject.toml)."""
    babel = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["babel"]
    methods = [(m["pattern"], m["method"]) for m in babel["mappings"]]
    options = {
        m["pattern"]: {k: v for k, v in m.items() if k not in ("pattern", "method")}
        for m in babel["mappings"]
    }
    found: dict[Any, Any] = {}
    for _file, _line, message, _comments, context in extract_from_dir(
        str(ROOT / "digest"), methods, options, comment_tags=("Translators:",)
    ):
        found[message if isinstance(message, str) else tuple(message)] = context
    return found


def test_ten_languages_ship() -> None:
    assert sorted(shipped_languages()) == sorted(SHIPPED)
    assert len(CATALOGS) == len(SHIPPED) - 1  # English is the code's own text


def test_the_template_holds_exactly_the_messages_of_the_code() -> None:
    """`pybabel extract` was run after the last change to a reader-facing word."""
    in_code = set(extracted())
    in_template = {_key(m) for m in _read(TEMPLATE) if m.id}
    assert in_code - in_template == set(), "run `pybabel extract` (docs/languages.md)"
    assert in_template - in_code == set(), "run `pybabel extract` (docs/languages.md)"


@pytest.mark.parametrize("name", CATALOGS)
def test_every_catalog_is_complete(name: str) -> None:
    """No message missing, untranslated, fuzzy or obsolete; placeholders and markup kept."""
    po = _read(PACKAGE_LOCALE / name / "LC_MESSAGES" / "digest.po", locale=name)
    template = {_key(m) for m in _read(TEMPLATE) if m.id}
    have = {_key(m) for m in po if m.id}
    assert template - have == set(), f"{name}: missing; run `pybabel update`"
    assert have - template == set(), f"{name}: obsolete; run `pybabel update`"
    assert not po.obsolete, f"{name}: obsolete entries (#~) left in the file"
    problems = []
    for message in po:
        if not message.id:
            continue
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        english = message.id if isinstance(message.id, tuple) else (message.id,)
        if message.fuzzy:
            problems.append(f"fuzzy: {english[0]!r}")
        if not all(forms):
            problems.append(f"untranslated: {english[0]!r}")
        wanted = set(PLACEHOLDER.findall(" ".join(english)))
        for form in forms:
            used = set(PLACEHOLDER.findall(form))
            # A plural form may leave the number out ("مقالان": two articles).
            if used - wanted or wanted - used - {"num", "count"}:
                problems.append(f"placeholders {sorted(used)} in {form!r} for {english[0]!r}")
            if sorted(TAG.findall(form)) != sorted(TAG.findall(english[0])):
                problems.append(f"markup differs in {form!r}")
            if "%" in PLACEHOLDER.sub("", form):
                problems.append(f"a bare % in {form!r} (Jinja formats every message)")
    errors = [f"{m.id!r}: {e}" for m, errs in po.check() for e in errs]
    assert not problems and not errors, f"{name}:\n" + "\n".join(problems + errors)


@pytest.mark.parametrize("name", CATALOGS)
def test_plural_forms_follow_babel(name: str) -> None:
    """Each catalog's Plural-Forms counts and picks forms as Babel's rules for the language."""
    po = _read(PACKAGE_LOCALE / name / "LC_MESSAGES" / "digest.po")
    rules = get_plural(Locale.parse(name))
    assert po.num_plurals == rules.num_plurals, name
    theirs = gettext.c2py(rules.plural_expr)
    ours = gettext.c2py(po.plural_expr)
    numbers = [*range(1200), 1_000_000, 2_000_000, 1_000_001, 21_000_000]
    assert [ours(n) for n in numbers] == [theirs(n) for n in numbers], name
    for message in po:
        if message.id and isinstance(message.id, tuple):
            assert len(message.string) == rules.num_plurals, (name, message.id)


@pytest.mark.parametrize("name", CATALOGS)
def test_the_shipped_mo_is_its_po_compiled(name: str) -> None:
    """The committed .mo says exactly what its .po says (`pybabel compile` was run)."""
    folder = PACKAGE_LOCALE / name / "LC_MESSAGES"
    po = _read(folder / "digest.po", locale=name)
    with (folder / "digest.mo").open("rb") as handle:
        mo = gettext.GNUTranslations(handle)
    choose = gettext.c2py(po.plural_expr)
    stale = []
    for message in po:
        if not message.id:
            continue
        if isinstance(message.id, tuple):
            for n in range(120):
                wanted = message.string[choose(n)]
                if mo.ngettext(message.id[0], message.id[1], n) != wanted:
                    stale.append(f"{message.id[0]!r} for {n}")
                    break
        elif mo.gettext(message.id) != message.string:
            stale.append(repr(message.id))
    expected = {m.id if isinstance(m.id, str) else m.id[0] for m in po if m.id}
    compiled = {key[0] if isinstance(key, tuple) else key for key in mo._catalog}  # type: ignore[attr-defined]
    assert compiled - {""} == expected, f"{name}: the .mo holds other messages"
    assert not stale, f"{name}: run `pybabel compile`; stale: {stale}"
    assert mo.info()["plural-forms"].replace(" ", "") == po.plural_forms.replace(" ", "")
