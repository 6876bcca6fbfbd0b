"""The Stats page in a real headless Chromium: a phone and a desktop, light and dark.

Eight weeks of a growing list (readers joining every week, an issue sent to the
outbox every Friday, readers leaving by link, bounces, complaints, answers to
"why are you leaving?") are served by the preview; the page must show every
chart at both widths, nothing wider than the screen, text in the scheme's
colours, and fetch nothing from anywhere. docs/stats.png is the desktop shot
(written there when DIGEST_WRITE_SCREENSHOTS=1, else to a temporary folder).
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _browser_fixtures import serve_app
from _render_fixtures import sample_issue, set_config, write_issue

from digest import bounces, clock
from digest.people import changes
from digest.send import engine
from digest.store import open_store, reasons
from digest.store.stats import unsubscribe_source
from digest.web.preview import app as preview_app
from digest.workspace import Workspace

pytestmark = pytest.mark.browser

DOCS = Path(__file__).parent.parent / "docs"
FIRST_MONDAY = date(2026, 10, 5)
WEEKS = 9
SAID = [
    ("too_often", "Weekly is a lot for me; a monthly digest would be perfect."),
    ("not_relevant", "I hoped for more on the regions, less on Moscow."),
    ("read_elsewhere", ""),
    ("too_often", ""),
    ("other", "Changed jobs, no longer cover energy."),
    ("never_signed_up", "I do not remember subscribing."),
]


def at(moment: datetime) -> None:
    clock.set_now(moment, running=True)


def grow(ws: Workspace) -> None:
    """Nine weeks of a newsroom's list: joins, weekly sends, and the ways readers leave."""
    url = f"{ws.config.newsletter.base_url}/unsubscribe"
    active: list[str] = []
    said = 0
    for week in range(WEEKS):
        monday = datetime.combine(FIRST_MONDAY + timedelta(weeks=week), datetime.min.time(), UTC)
        at(monday + timedelta(hours=9))
        with open_store(ws) as store:
            for n in range(6 + 3 * week):
                email = f"w{week}r{n}@example.net"
                if n % 3:
                    sub = changes.admin_add(store, email, source="t", confirmed=True)
                else:
                    sub = changes.request_signup(
                        store, email, None, method="web_form", source="t", evidence={}
                    )
                    changes.confirm(store, sub.id, method="link", source="t", evidence={})
                active.append(sub.id)
        friday = monday.date() + timedelta(days=4)
        if friday >= date(2026, 12, 2):
            continue
        issue = sample_issue(day=friday)
        issue.subject = f"Week {week + 1}: the port strike, a gas deal and a day in Tula"
        issue.status = "ready"
        write_issue(ws, issue)
        at(monday + timedelta(days=4, hours=7))
        engine.run_send(ws, friday)
        at(monday + timedelta(days=5, hours=10))
        day = friday.isoformat()
        with open_store(ws) as store:
            for _ in range(1 + week % 3):
                sid = active.pop(0)
                changes.unsubscribe(
                    store,
                    sid,
                    method="one_click",
                    source=unsubscribe_source(url, day),
                    evidence={"issue": day},
                )
                reason, text = SAID[said % len(SAID)]
                said += 1
                with store.begin() as conn:
                    reasons.record(conn, f"page-{said}", reasons.answer(day, reason, text))
            for kind in ("hard", "soft", "hard") + (("complaint",) if week % 2 else ()):
                bounces.apply(
                    store,
                    bounces.Report(
                        source="smtp",
                        kind=kind,
                        raw=f"{day} {kind} {len(active)}".encode(),
                        subscriber_id=active.pop(),
                        issue=day,
                        proven=True,
                        method="smtp_reply",
                    ),
                )
    at(datetime(2026, 12, 2, 10, 0, tzinfo=UTC))


@pytest.fixture(scope="module")
def stats_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    from digest.workspace import init_workspace, open_workspace

    root = tmp_path_factory.mktemp("stats") / "ws"
    with pytest.MonkeyPatch.context() as env:  # the per-test clean-up has not run yet
        for name in ("DIGEST_WORKSPACE", "DIGEST_DATABASE_URL"):
            env.delenv(name, raising=False)
        init_workspace(root)
        ws = open_workspace(root)
        ws = set_config(ws, 'postal_address = ""', 'postal_address = "1 Press Lane, Springfield"')
        ws = set_config(ws, "brief@example.com", "brief@weekly-brief.news")
        ws = set_config(
            ws, "https://newsletter.example.com/privacy", "https://weekly-brief.news/privacy"
        )
        grow(ws)
    return ws


# The right edge of every element that shows, and what the page's text is drawn in.
MEASURE = """() => {
  let right = 0, widest = '';
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if (box.right > right) { right = box.right; widest = el.tagName + '.' + el.className; }
  }
  const svg = [...document.querySelectorAll('.chart svg')]
    .find(s => s.getBoundingClientRect().width > 0);
  const label = svg.querySelector('.axis text');
  return {
    doc: document.documentElement.scrollWidth, right: right, widest: widest,
    background: getComputedStyle(document.querySelector('section:not(.tiles)')).backgroundColor,
    ink: getComputedStyle(document.querySelector('h2')).color,
    chartText: getComputedStyle(label).fill,
    shown: [...document.querySelectorAll('.chart')]
      .filter(c => c.offsetParent).map(c => c.className),
    scale: svg.getBoundingClientRect().width / svg.viewBox.baseVal.width,
  };
}"""


def luminance(css: str) -> float:
    r, g, b = (int(v) for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


@pytest.mark.parametrize("width", [375, 1280])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_stats_page_at_every_width_and_scheme(
    stats_ws: Workspace, browser: Any, tmp_path: Path, width: int, scheme: str
) -> None:
    # stats_ws first: it sends with asyncio, which cannot run once Playwright's loop does.
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    elsewhere: list[str] = []
    try:
        with serve_app(preview_app(stats_ws)) as base:

            def outside(route: Any) -> None:
                elsewhere.append(route.request.url)
                route.abort()

            page.route(lambda url: not url.startswith(base), outside)
            page.goto(f"{base}/")
            page.get_by_role("link", name="Stats").first.click()
            expect(page.get_by_role("heading", name="How it went")).to_be_visible()
            page.goto(f"{base}/stats?weeks={WEEKS}")
            expect(page.get_by_role("heading", name="Who came, who left")).to_be_visible()
            expect(page.locator(".card")).to_have_count(WEEKS - 1)
            expect(page.get_by_text("a monthly digest would be perfect").first).to_be_visible()
            docs = (width, scheme) == (1280, "light")
            write = docs and os.environ.get("DIGEST_WRITE_SCREENSHOTS") == "1"
            shot = (DOCS if write else tmp_path) / (
                "stats.png" if docs else f"stats-{width}-{scheme}.png"
            )
            page.screenshot(path=str(shot))  # the top of the page, as it opens
            page.get_by_text("The numbers, week by week").click()  # the table, opened
            expect(page.locator(".numbers tbody tr")).to_have_count(WEEKS)
            seen = page.evaluate(MEASURE)
    finally:
        context.close()
    assert elsewhere == []
    assert seen["doc"] <= width, seen
    assert seen["right"] <= width + 0.5, seen
    assert seen["shown"] and all(("narrow" if width < 600 else "wide") in c for c in seen["shown"])
    assert len(seen["shown"]) == 5  # list, flows, deliveries, returns, reasons
    assert seen["scale"] >= 0.8, seen  # chart text stays near its drawn size (13 px)
    page_light = luminance(seen["background"]) > 0.8
    ink_light = luminance(seen["ink"]) > 0.6
    assert page_light == (scheme == "light") and ink_light == (scheme == "dark")
    assert (luminance(seen["chartText"]) > 0.5) == (scheme == "dark")  # axes in the page's ink
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
