"""One name-cleaning rule (digest.addresses.clean_name) for the form, a CSV, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from digest.addresses import NAME_MAX, clean_name
from digest.people import changes
from digest.people.imports import generic
from digest.render import Recipient
from digest.store import Store, schema


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("Ann Lee", "Ann Lee"),
        ("Ann\r\nBcc: eve@example.org", "Ann Bcc: eve@example.org"),
        ("Ann\nLee", "Ann Lee"),
        ("Ann\x00Lee", "AnnLee"),
        ("\x07Ann\x1b[31mLee\x7f", "Ann[31mLee"),
        ("  Ann \t Lee  ", "Ann Lee"),
        ("Ann\u2028Lee\u2029", "Ann Lee"),  # line and paragraph separators
        ("Ann\u202eeeL\u200b", "AnneeL"),  # bidi override, zero-width space (format chars)
        ("Ольга Müller 名前", "Ольга Müller 名前"),
        ("", ""),
        (None, ""),
        ("\r\n\x00", ""),
    ],
)
def test_clean_name(given: str | None, kept: str) -> None:
    assert clean_name(given) == kept


def test_clean_name_keeps_at_most_name_max_characters() -> None:
    assert clean_name("a" * 500) == "a" * NAME_MAX
    assert clean_name("a\n" * 500) == ("a " * NAME_MAX)[:NAME_MAX]


def test_the_rule_is_idempotent_and_the_renderer_uses_it() -> None:
    for name in ("Ann\r\nLee", "x\x00y", " Ольга\u2028 "):
        once = clean_name(name)
        assert clean_name(once) == once
        assert Recipient("s1", "a@example.com", name).name == once


def stored_names(store: Store) -> dict[str, str | None]:
    with store.read() as conn:
        rows = conn.execute(select(schema.subscribers.c.email, schema.subscribers.c.name))
        return {email: name for email, name in rows}


def test_form_cli_and_csv_store_the_cleaned_name(store: Store, tmp_path: Path) -> None:
    changes.request_signup(
        store,
        "form@example.com",
        "Eve\r\nBcc: victim@example.org",
        method="web_form",
        source="test",
        evidence={},
    )
    changes.admin_add(store, "cli@example.com", "Ann\x00\x07 Lee", source="test")
    csv = tmp_path / "people.csv"
    csv.write_text(
        "email,name,consented_at,policy_version\n"
        'csv@example.com,"Bo\r\nLee\u2028",2026-10-01T00:00:00Z,2026-05-01\n'
        "blank@example.com,\x00,2026-10-01T00:00:00Z,2026-05-01\n",
        encoding="utf-8",
        newline="",
    )
    report = generic.import_csv(store, csv, source="test")
    assert report.imported == 2, report.problems
    assert stored_names(store) == {
        "form@example.com": "Eve Bcc: victim@example.org",
        "cli@example.com": "Ann Lee",
        "csv@example.com": "Bo Lee",
        "blank@example.com": None,
    }
