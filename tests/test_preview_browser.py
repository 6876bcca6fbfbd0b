"""An editor's session in a real headless Chromium: look, switch to mobile, edit, see it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from _browser_fixtures import serve_app
from test_preview import DAY, ISSUE

from digest.web.preview import app as preview_app
from digest.workspace import Workspace

pytestmark = pytest.mark.browser

TITLES = (
    "Gazprom and CNPC Sign a Gas Contract",
    "A Chinese Automaker Comes to Tula",
    "The Rapprochement Runs Deep",
)
IMAGES = ("https://news.example.com/img/pipeline.jpg",)


def test_editor_previews_switches_to_mobile_and_sees_an_edit_live(
    workspace: Workspace, browser_page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    path = workspace.issues_dir / f"{DAY}.yaml"
    path.write_text(ISSUE, encoding="utf-8")
    page = browser_page
    elsewhere: list[str] = []

    with serve_app(preview_app(workspace)) as base:

        def outside(route: Any) -> None:
            # Nothing may leave the machine: note what the page asked for, then refuse it.
            elsewhere.append(route.request.url)
            route.abort()

        page.route(lambda url: not url.startswith(base), outside)
        page.goto(f"{base}/issue/{DAY}")
        frame = page.frame_locator("#email-frame")
        for title in TITLES:
            expect(frame.get_by_text(title)).to_be_visible()
        expect(page.locator(".inbox")).to_contain_text("Three stories for your Friday.")
        expect(page.locator("#live")).to_have_text("Live")
        desktop = page.locator("#email-frame").bounding_box()
        assert desktop is not None and desktop["width"] >= 600

        page.get_by_role("button", name="Mobile").click()
        expect(page.locator("body")).to_have_class("is-mobile")
        page.wait_for_function(
            "document.getElementById('email-frame').getBoundingClientRect().width === 375"
        )
        mobile = page.locator("#email-frame").bounding_box()
        assert mobile is not None and mobile["width"] == 375
        # The email lays itself out for a phone: nothing wider than the frame.
        scroll_width = frame.locator("body").evaluate("b => b.scrollWidth")
        assert scroll_width <= 375

        # Edit the file as an editor would; the page follows without a reload by hand.
        page.evaluate("window.stillTheSamePage = true")
        started = time.monotonic()
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("Runs Deep", "Runs Deeper Than It Looks"), encoding="utf-8")
        # wait_for watches the frame continuously (expect() retries at growing intervals,
        # which would add up to a second to the measured time).
        frame.get_by_text("The Rapprochement Runs Deeper Than It Looks").wait_for(
            state="visible", timeout=5000
        )
        took = time.monotonic() - started
        assert page.evaluate("window.stillTheSamePage") is True, "the page was reloaded"
        assert page.locator("#email-frame").bounding_box()["width"] == 375, "mobile kept"
        # A 350 ms poll plus one render (premailer once, ~0.1 s warm): 0.5-1.1 s on an idle
        # development machine, up to ~1.6 s with other test runs loading its two cores.
        assert took < 2, f"the edit took {took:.1f}s to show"

        page.screenshot(path=str(tmp_path / "preview-mobile.png"), full_page=True)
        page.get_by_role("button", name="Desktop").click()
        page.wait_for_timeout(400)
        page.screenshot(path=str(tmp_path / "preview.png"))

        # A broken file shows its error; fixing it brings the email back.
        path.write_text(
            ISSUE.replace("status: draft", "status: draft\n  oops: ["), encoding="utf-8"
        )
        expect(page.locator(".broken")).to_contain_text(f"{DAY}.yaml:", timeout=5000)
        page.screenshot(path=str(tmp_path / "preview-broken.png"))
        path.write_text(ISSUE, encoding="utf-8")
        expect(frame.get_by_text(TITLES[0])).to_be_visible(timeout=5000)
        assert page.evaluate("window.stillTheSamePage") is True

    assert (tmp_path / "preview.png").stat().st_size > 10_000
    # Only the articles' own images were asked for elsewhere, as in the email itself.
    assert elsewhere, "the email's images were requested"
    assert set(elsewhere) <= set(IMAGES), elsewhere


def test_dark_background_and_tabs(workspace: Workspace, browser_page: Any) -> None:
    from playwright.sync_api import expect

    (workspace.issues_dir / f"{DAY}.yaml").write_text(ISSUE, encoding="utf-8")
    page = browser_page
    with serve_app(preview_app(workspace)) as base:
        page.route(lambda url: not url.startswith(base), lambda route: route.abort())
        page.goto(f"{base}/issue/{DAY}")
        frame = page.frame_locator("#email-frame")
        expect(frame.get_by_text(TITLES[0])).to_be_visible()
        light = frame.locator("body").evaluate("b => getComputedStyle(b).backgroundColor")

        page.get_by_role("button", name="Dark").click()
        expect(page.locator("body")).to_have_class("is-dark")
        version = page.evaluate("document.body.dataset.version")
        expect(page.locator("#email-frame")).to_have_attribute(
            "src", f"/issue/{DAY}/email.html?v={version}&scheme=dark"
        )
        expect(frame.get_by_text(TITLES[0])).to_be_visible()
        # The frame's new document replaces the old one when it has loaded: wait for it
        # rather than sample whichever of the two is showing.
        expect(frame.locator("body")).not_to_have_css("background-color", light)
        # The stage fades to dark (a 0.2 s transition): wait for it rather than sample it.
        expect(page.locator(".stage")).to_have_css("background-color", "rgb(21, 23, 28)")

        page.get_by_role("tab", name="Plain text").click()
        expect(page.locator(".text-part")).to_be_visible()
        expect(page.locator(".text-part")).to_contain_text("https://news.example.com/tula")
        expect(page.locator("#email-frame")).to_be_hidden()
        page.get_by_role("tab", name="Headers").click()
        expect(page.locator("table.headers")).to_contain_text("List-Unsubscribe-Post")
        page.get_by_role("tab", name="Source").click()
        expect(page.locator("pre.source")).to_contain_text("multipart/alternative")

        # The choices stick: a fresh load keeps the tab and the dark background.
        page.reload()
        expect(page.locator("body")).to_have_class("is-dark")
        expect(page.locator("pre.source")).to_be_visible()


GEOMETRY = """() => {
  const frame = document.getElementById('email-frame').getBoundingClientRect();
  const stage = document.querySelector('.stage');
  return {left: frame.left, right: frame.right, width: frame.width,
          page: document.documentElement.scrollWidth, viewport: window.innerWidth,
          scrollable: stage.scrollWidth - stage.clientWidth, scrolled: stage.scrollLeft};
}"""


def _settled(page: Any, ready: Any) -> dict[str, float]:
    """The geometry once ``ready`` holds and two readings 150 ms apart agree (a smooth
    scroll or a transition has ended); evaluate() is not held by the page's CSP."""
    deadline = time.monotonic() + 5
    last = page.evaluate(GEOMETRY)
    while True:
        page.wait_for_timeout(150)
        now = page.evaluate(GEOMETRY)
        if (ready(now) and now == last) or time.monotonic() > deadline:
            return now  # type: ignore[no-any-return]
        last = now


def test_the_preview_on_a_375_px_screen_clips_nothing(workspace: Workspace, browser: Any) -> None:
    """An editor opens the preview on a phone: the page is no wider than the screen; at
    Desktop width the 600 px email starts at the screen's edge and scrolls sideways (a
    swipe or a wheel over the email), and at Mobile width the 375 px email fits exactly."""
    from playwright.sync_api import expect

    (workspace.issues_dir / f"{DAY}.yaml").write_text(ISSUE, encoding="utf-8")
    context = browser.new_context(viewport={"width": 375, "height": 800})
    try:
        page = context.new_page()
        with serve_app(preview_app(workspace)) as base:
            page.route(lambda url: not url.startswith(base), lambda route: route.abort())
            page.goto(f"{base}/issue/{DAY}")
            expect(page.frame_locator("#email-frame").get_by_text(TITLES[0])).to_be_visible()

            desktop = page.evaluate(GEOMETRY)
            assert desktop["page"] <= 375, desktop  # nothing makes the page itself wider
            assert desktop["width"] >= 600 and desktop["left"] >= 0, desktop
            assert desktop["scrollable"] >= desktop["right"] - 375 > 0, desktop
            box = page.locator("#email-frame").bounding_box()
            assert box is not None
            page.mouse.move(200, max(box["y"], 0) + 200)
            page.mouse.wheel(1000, 0)
            scrolled = _settled(page, lambda g: g["scrolled"] > 0)
            assert 0 < scrolled["right"] <= 375, scrolled  # the email's right edge, reached

            page.get_by_role("button", name="Mobile").click()
            mobile = _settled(page, lambda g: g["width"] == 375)
            assert (mobile["left"], mobile["right"]) == (0, 375), mobile
            assert mobile["page"] <= 375, mobile
    finally:
        context.close()
