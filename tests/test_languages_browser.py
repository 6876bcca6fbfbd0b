"""What a reader of a Russian or an Arabic newsletter sees, in a real Chromium at 375 px.

The Arabic email and subscribe page read right to left, mirrored, and nothing
in them is wider than the phone's screen (right to left, a page scrolls
towards the left, so the left edge is measured too). docs/email-ru-375.png
and docs/email-ar-375.png are made here: written to docs/ when
DIGEST_WRITE_SCREENSHOTS=1 (then committed), else to a temporary folder.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from _browser_fixtures import serve_app
from _email_fixtures import serve_sample_images, strip_style
from _public_fixtures import SECRET
from _render_fixtures import set_config

from digest.issue import Article, Issue, save_issue, workspace_issue
from digest.render import Recipient, prepare
from digest.web import public
from digest.workspace import Workspace

pytestmark = pytest.mark.browser

DOCS = Path(__file__).parent.parent / "docs"
IMG = "https://news.example.com/img"
ISSUES = {
    "ru": Issue(
        date=date(2026, 12, 4),
        subject="Забастовка в порту, газовый контракт и день в Туле",
        preheader="Три истории к пятнице.",
        intro="Доброе утро. На этой неделе: **забастовка** докеров, новый газовый контракт "
        "и один день на заводе в Туле.",
        articles=[
            Article(
                url="https://news.example.com/2026/12/port",
                title="Докеры остановили порт: что это значит для зимнего топлива",
                section="Новости",
                summary="В понедельник докеры вышли на забастовку. Суда стоят в очереди, "
                "а цены на дизель растут третий день подряд.",
                author="Анна Петрова",
                image=f"{IMG}/pipeline.jpg",
                image_size="1600x900",
                image_alt="Танкеры у причала",
            ),
            Article(
                url="https://news.example.com/2026/12/tula",
                title="Один день на оружейном заводе в Туле",
                section="Репортажи",
                summary="Смена начинается в шесть утра. Мы провели её с бригадой сборщиков.",
                author="Игорь Лебедев",
                image=f"{IMG}/tula.jpg",
                image_size="800x1000",
                image_alt="Цех завода",
            ),
            Article(
                url="https://news.example.com/2026/12/gas",
                title="Газовый контракт на десять лет: кто выиграл",
                section="Аналитика",
                blurb="Наш **отдел экономики** прочитал контракт целиком.",
            ),
        ],
    ),
    "ar": Issue(
        date=date(2026, 12, 4),
        subject="إضراب في الميناء وعقد للغاز ويوم في المصنع",
        preheader="ثلاث قصص ليوم الجمعة.",
        intro="صباح الخير. في هذا العدد: **إضراب** عمال الميناء، وعقد جديد للغاز، ويوم في مصنع.",
        articles=[
            Article(
                url="https://news.example.com/2026/12/port",
                title="عمال الميناء يوقفون العمل: ماذا يعني ذلك لوقود الشتاء",
                section="أخبار",
                summary="بدأ الإضراب يوم الاثنين. السفن تنتظر في الطابور والأسعار ترتفع.",
                author="ليلى حسن",
                image=f"{IMG}/pipeline.jpg",
                image_size="1600x900",
                image_alt="ناقلات عند الرصيف",
            ),
            Article(
                url="https://news.example.com/2026/12/gas",
                title="عقد الغاز لعشر سنوات: من الرابح",
                section="تحليلات",
                blurb="قرأ **قسم الاقتصاد** العقد كاملًا.",
            ),
        ],
    ),
}
SECTIONS = {
    "ru": '["Новости", "Репортажи", "Аналитика", "Мнения"]',
    "ar": '["أخبار", "تقارير", "تحليلات", "آراء"]',
}
NAMES = {
    "ru": ("Еженедельник", "Москва, Тверская ул., 1"),
    "ar": ("الأسبوعية", "عمّان، شارع الرينبو 1"),
}

# Every element's box, but for the form's hidden trap field (off the start edge, where
# no scrolling reaches: the document's scroll width proves it).
MEASURE = """() => {
  const boxes = [...document.querySelectorAll('body *')]
      .filter(e => !e.closest('[aria-hidden=true]'))
      .map(e => e.getBoundingClientRect()).filter(r => r.width > 0);
  return {scroll: document.documentElement.scrollWidth,
          left: Math.min(...boxes.map(r => r.left)), right: Math.max(...boxes.map(r => r.right)),
          direction: getComputedStyle(document.body).direction};
}"""
# Where a block's text sits within it: the gaps on its left and its right.
GAPS = """e => { const r = document.createRange(); r.selectNodeContents(e);
  const t = r.getBoundingClientRect(); const c = e.getBoundingClientRect();
  return [t.left - c.left, c.right - t.right]; }"""


def newsletter(workspace: Workspace, tag: str) -> Workspace:
    ws = set_config(workspace, 'language = "en"', f'language = "{tag}"')
    ws = set_config(ws, '["News", "Features", "Analysis", "Opinion"]', SECTIONS[tag])
    name, address = NAMES[tag]
    ws = set_config(ws, 'name = "The Weekly Brief"', f'name = "{name}"')
    ws = set_config(ws, '"1 Press Lane, Springfield"', f'"{address}"')
    save_issue(ISSUES[tag], ws.issues_dir / "2026-12-04.yaml")
    return ws


def email_html(ws: Workspace) -> str:
    issue = workspace_issue(ws, "2026-12-04")
    return prepare(ws, issue).html(Recipient("r-1", "reader@example.com", "Reader"))


def _shots(name: str, tmp_path: Path) -> Path:
    folder = DOCS if os.environ.get("DIGEST_WRITE_SCREENSHOTS") == "1" else tmp_path
    return folder / name


def _open(browser: Any, width: int, images: bool = True) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": width, "height": 1400})
    page = context.new_page()
    if images:
        serve_sample_images(page)
    return context, page


def _fits(seen: dict[str, Any], width: int) -> bool:
    return seen["scroll"] <= width and seen["left"] >= -0.5 and seen["right"] <= width + 0.5


@pytest.mark.parametrize("tag", ["ru", "ar"])
def test_the_email_at_375px(browser: Any, workspace: Workspace, tag: str, tmp_path: Path) -> None:
    ws = newsletter(workspace, tag)
    html = email_html(ws)
    rtl = tag == "ar"
    for document in (html, strip_style(html)):
        context, page = _open(browser, 375)
        try:
            page.set_content(document, wait_until="load")
            seen = page.evaluate(MEASURE)
            assert _fits(seen, 375), (tag, seen)
            assert seen["direction"] == ("rtl" if rtl else "ltr")
            for selector in (".dateline", ".byline", ".read", ".name"):
                left, right = page.eval_on_selector(selector, GAPS)
                # The text starts on the right right to left, on the left else.
                assert (right < left) if rtl else (left < right), (tag, selector, left, right)
            left, right = page.eval_on_selector(".topbar", GAPS)  # "View in browser": the end
            assert (left < right) if rtl else (right < left), (tag, ".topbar", left, right)
            spacing = page.eval_on_selector(
                ".section-label", "e => getComputedStyle(e).letterSpacing"
            )
            # Spaced capitals stay spaced, but letters of a cursive script are never pulled apart.
            assert (spacing in ("0px", "normal")) if rtl else spacing == "2px", spacing
            arrow = page.inner_text(".read a")
            assert arrow.endswith("←" if rtl else "→"), arrow
            if document is html:
                path = _shots(f"email-{tag}-375.png", tmp_path)
                page.screenshot(path=str(path), full_page=True)
                assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        finally:
            context.close()


def test_the_arabic_subscribe_page_at_375px_is_mirrored(
    browser: Any, workspace: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DIGEST_SECRET_KEY", SECRET)
    ws = newsletter(workspace, "ar")
    with serve_app(public.app(ws)) as url:
        context, page = _open(browser, 375, images=False)
        try:
            page.goto(f"{url}/subscribe")
            assert page.eval_on_selector("html", "e => [e.lang, e.dir]") == ["ar", "rtl"]
            seen = page.evaluate(MEASURE)
            assert _fits(seen, 375), seen
            assert seen["direction"] == "rtl"
            box = page.eval_on_selector("#consent", "e => e.getBoundingClientRect().left")
            label = page.eval_on_selector(
                "label[for=consent]", "e => e.getBoundingClientRect().left"
            )
            assert box > label  # the tick box stands right of its statement
            for selector in ("h2", ".name", "label[for=email]"):
                left, right = page.eval_on_selector(selector, GAPS)
                assert right < 1 < left, selector
            page.screenshot(path=str(tmp_path / "subscribe-ar-375.png"), full_page=True)
            # A refused form keeps the mirrored layout, its error bar on the right.
            page.click("button[type=submit]")
            page.wait_for_selector(".error")
            assert _fits(page.evaluate(MEASURE), 375)
            bar = page.eval_on_selector(
                ".error",
                "e => [getComputedStyle(e).borderRightWidth, getComputedStyle(e).borderLeftWidth]",
            )
            assert bar == ["4px", "0px"], bar
        finally:
            context.close()
