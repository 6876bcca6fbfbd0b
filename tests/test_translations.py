"""One mechanism for digest's words: the shipped catalogs, a workspace's own over them,
Babel's dates and plurals, and the fallback to English."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from _render_fixtures import set_config
from babel.messages.pofile import read_po
from click.testing import CliRunner

from digest import catalogs, check, config
from digest.cli import main
from digest.issue import workspace_issue
from digest.render import Recipient, prepare
from digest.translations import TEMPLATE, best_match, catalog, locale_name
from digest.workspace import Workspace, open_workspace

FRIDAY = date(2026, 12, 11)


def test_the_catalog_for_a_language_and_its_neighbours() -> None:
    assert catalog("ru")("Unsubscribe") == "Отписаться"
    assert catalog("pt-BR")("Unsubscribe") == "Cancelar inscrição"
    assert catalog("de-AT").shipped == "de" and catalog("de-AT")("Subscribe") == "Abonnieren"
    assert catalog("sr-Latn").shipped is None and not catalog("sr-Latn").covered
    assert catalog("sr-Latn")("Unsubscribe") == "Unsubscribe"  # English, and `digest check` says so
    assert catalog("en-US").covered and catalog("en-US")("Unsubscribe") == "Unsubscribe"
    assert best_match("pt", ["en", "pt-BR"]) == "pt-BR"
    assert best_match("zh-Hant-TW", ["zh-Hant", "zh"]) == "zh-Hant"
    assert locale_name("sr-latn-rs") == "sr_Latn_RS"


@pytest.mark.parametrize(
    ("tag", "written"),
    [
        ("ru", "пятница, 11 декабря 2026\u202fг."),  # a narrow no-break space before г.
        ("fr", "vendredi 11 décembre 2026"),
        ("de", "Freitag, 11. Dezember 2026"),
        ("uk", "пʼятниця, 11 грудня 2026\u202fр."),
        ("pl", "piątek, 11 grudnia 2026"),
        ("ar", "الجمعة، 11 ديسمبر 2026"),
        ("en", "Friday, 11 December 2026"),
        ("en-US", "Friday, December 11, 2026"),
    ],
)
def test_dates_are_written_the_way_the_language_writes_them(tag: str, written: str) -> None:
    assert catalog(tag).format_date(FRIDAY) == written


def test_an_instant_is_dated_in_the_schedules_zone() -> None:
    late = datetime(2026, 12, 10, 22, 30, tzinfo=UTC)  # already Friday in Moscow
    assert catalog("ru").format_date(late, zone=ZoneInfo("Europe/Moscow")).startswith("пятница")
    assert catalog("ru").format_date(late, zone=ZoneInfo("UTC")).startswith("четверг")


@pytest.mark.parametrize(
    ("tag", "counts"),
    [
        ("ru", {1: "1 статья", 2: "2 статьи", 5: "5 статей", 21: "21 статья", 112: "112 статей"}),
        ("uk", {1: "1 стаття", 3: "3 статті", 11: "11 статей"}),
        ("pl", {1: "1 artykuł", 4: "4 artykuły", 5: "5 artykułów", 22: "22 artykuły"}),
        ("ar", {0: "لا مقالات", 1: "مقال واحد", 2: "مقالان", 3: "3 مقالات", 11: "11 مقالًا"}),
        ("fr", {0: "0 article", 1: "1 article", 2: "2 articles"}),
        ("en", {1: "1 article", 2: "2 articles"}),
    ],
)
def test_plurals_follow_the_language(tag: str, counts: dict[int, str]) -> None:
    words = catalog(tag)
    assert {n: words.plural("%(num)s article", "%(num)s articles", n) for n in counts} == counts


def test_a_workspace_catalog_overrides_one_message_and_keeps_the_rest(
    workspace: Workspace,
) -> None:
    path = catalogs.start(workspace.locale_dir, "ru")
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        'msgid "Read the story"\nmsgstr ""', 'msgid "Read the story"\nmsgstr "Дальше"'
    )
    text = text.replace(
        'msgid "Unsubscribe"\nmsgstr ""', '#, fuzzy\nmsgid "Unsubscribe"\nmsgstr "Прочь"'
    )
    path.write_text(text, encoding="utf-8")
    words = catalog("ru", workspace.locale_dir)
    assert words("Read the story") == "Дальше"  # the workspace's
    assert words("Unsubscribe") == "Отписаться"  # fuzzy: not used
    assert words("Subscribe") == "Подписаться"  # left empty: digest's own
    assert words.workspace == path and words.problems == ()
    # Read again when the file changes, no restart and no compile step.
    path.write_text(text.replace('msgstr "Дальше"', 'msgstr "Читать"'), encoding="utf-8")
    assert catalog("ru", workspace.locale_dir)("Read the story") == "Читать"


def test_a_workspace_can_add_a_language_digest_does_not_ship(workspace: Workspace) -> None:
    path = catalogs.start(workspace.locale_dir, "nl")
    text = path.read_text(encoding="utf-8")
    text = text.replace('msgid "Unsubscribe"\nmsgstr ""', 'msgid "Unsubscribe"\nmsgstr "Afmelden"')
    path.write_text(text, encoding="utf-8")
    words = catalog("nl", workspace.locale_dir)
    assert words.covered and words.shipped is None
    assert words("Unsubscribe") == "Afmelden"
    assert words("Subscribe") == "Subscribe"  # not translated yet: English
    assert "nplurals=2" in path.read_text(encoding="utf-8")  # Babel's rule for Dutch


def test_a_translation_with_wrong_placeholders_is_left_out_and_reported(
    workspace: Workspace,
) -> None:
    path = catalogs.start(workspace.locale_dir, "de")
    text = path.read_text(encoding="utf-8").replace(
        'msgid "By %(author)s"\nmsgstr ""', 'msgid "By %(author)s"\nmsgstr "Text: %(autor)s"'
    )
    path.write_text(text, encoding="utf-8")
    words = catalog("de", workspace.locale_dir)
    assert words("By %(author)s", author="Anna") == "Von Anna"  # digest's own, not a crash
    [problem] = words.problems
    assert problem.startswith(f"{path}:") and "'autor'" in problem
    ws = set_config(workspace, 'language = "en"', 'language = "de"')
    issue = workspace_issue(ws, None, create=True)
    found = [f for f in check.check_issue(ws, issue).findings if f.code == "translation-broken"]
    assert len(found) == 1 and found[0].level == "warning" and "'autor'" in found[0].message


def test_a_language_digest_does_not_ship_falls_back_to_english_and_check_warns(
    workspace: Workspace,
) -> None:
    ws = set_config(workspace, 'language = "en"', 'language = "nl"')
    issue = workspace_issue(ws, None, create=True)
    html = prepare(ws, issue).html(Recipient("1", "lezer@example.com"))
    assert '<html lang="nl" dir="ltr"' in html and "Unsubscribe</a>" in html
    findings = check.check_issue(ws, issue).findings
    [warning] = [f for f in findings if f.code == "language-not-shipped"]
    assert warning.level == "warning" and "'nl'" in warning.message
    assert "digest translations init nl" in warning.message
    current = "nl"
    for tag in ("ru", "en-GB", "de-AT"):
        ws = set_config(ws, f'language = "{current}"', f'language = "{tag}"')
        current = tag
        codes = {f.code for f in check.check_issue(ws, workspace_issue(ws, None)).findings}
        assert "language-not-shipped" not in codes, tag


def test_the_default_statement_and_footer_line_speak_the_language(workspace: Workspace) -> None:
    ws = set_config(workspace, 'language = "en"', 'language = "ru"')
    assert ws.config.consent_statement == (
        "Да, присылайте мне «The Weekly Brief» по электронной почте каждую пятницу. "
        "Я могу отписаться в любой момент одним нажатием."
    )
    assert ws.config.why() == (
        "Вы получаете это письмо, потому что подписались на «The Weekly Brief»."
    )
    monday = set_config(ws, 'weekday = "friday"', 'weekday = "monday"')
    assert "каждый понедельник" in monday.config.consent_statement


def test_the_english_defaults_older_workspaces_wrote_out_follow_the_language(
    workspace: Workspace,
) -> None:
    ws = set_config(
        workspace, 'consent_statement = ""', f'consent_statement = "{config.LEGACY_STATEMENT}"'
    )
    ws = set_config(ws, 'why = ""', f'why = "{config.LEGACY_WHY}"')
    assert ws.config.consent_statement.startswith("Yes, send me The Weekly Brief by email every")
    ru = set_config(ws, 'language = "en"', 'language = "ru"')
    assert ru.config.consent_statement.startswith("Да, присылайте мне")
    assert ru.config.why().startswith("Вы получаете это письмо")
    own = set_config(ru, config.LEGACY_STATEMENT, "Пишите мне о {name}.")
    assert own.config.consent_statement == "Пишите мне о The Weekly Brief."  # the editor's own


def test_init_with_a_language_names_the_sections_in_it(tmp_path: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(
        main, ["init", str(tmp_path / "ar"), "--name", "الأسبوعية", "--language", "ar"]
    )
    assert made.exit_code == 0, made.output
    ws = open_workspace(tmp_path / "ar")
    assert ws.config.newsletter.language == "ar"
    assert ws.config.newsletter.sections == ("أخبار", "تقارير", "تحليلات", "آراء")
    assert "note:" not in made.output
    dutch = runner.invoke(main, ["init", str(tmp_path / "nl"), "--language", "nl"])
    assert dutch.exit_code == 0 and "digest ships no 'nl' catalog" in dutch.output
    assert open_workspace(tmp_path / "nl").config.newsletter.sections[0] == "News"
    bad = runner.invoke(main, ["init", str(tmp_path / "bad"), "--language", "Russian please"])
    assert bad.exit_code == 1 and "is not a language tag" in bad.output
    assert "Traceback" not in bad.output and not (tmp_path / "bad").exists()


def test_the_translations_commands(cli, workspace: Workspace) -> None:
    listed = cli("translations", "list").output
    assert "* en" in listed and "  ar       shipped" in listed
    made = cli("translations", "init", "ru")
    path = workspace.locale_dir / "ru" / "LC_MESSAGES" / "digest.po"
    assert made.exit_code == 0 and str(path) in made.output
    text = path.read_text(encoding="utf-8")
    assert '#. digest: Отписаться\nmsgid "Unsubscribe"\nmsgstr ""' in text
    again = cli("translations", "init", "ru")
    assert again.exit_code == 1 and "already exists" in again.output
    # One entry translated, one the code no longer has, one the catalog lacks.
    text = text.replace('msgid "Unsubscribe"\nmsgstr ""', 'msgid "Unsubscribe"\nmsgstr "Прочь"')
    text = text.replace('msgid "Subscribe"\nmsgstr ""\n', "")
    text += '\nmsgid "A message of an older digest"\nmsgstr "Старое"\n'
    path.write_text(text, encoding="utf-8")
    # As many messages as digest has (one removed, one of an older digest added).
    with TEMPLATE.open("rb") as handle:
        total = len([message for message in read_po(handle) if message.id])
    assert f"ru/LC_MESSAGES/digest.po: 1 of {total} messages translated" in cli(
        "translations", "list"
    ).output.replace(str(workspace.locale_dir.parent) + "/", "")
    updated = cli("translations", "update").output
    assert "1 new (empty: digest's own wording until you fill them in), 1 no longer" in updated
    text = path.read_text(encoding="utf-8")
    assert 'msgid "Subscribe"\nmsgstr ""' in text and "older digest" not in text
    assert text.count('#. digest: Отписаться\nmsgid "Unsubscribe"\nmsgstr "Прочь"') == 1
