"""The demo's workspace (built once per test session) and an awkward issue, for the email tests."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pytest

from digest import confirmation
from digest.demo import run_demo
from digest.issue import Article, Issue, save_issue, workspace_issue
from digest.render import Recipient, prepare
from digest.samples import sample_folder
from digest.workspace import Workspace, open_workspace

SAMPLE_IMAGES = sample_folder() / "img"
LONG_WORD = "Rechtsschutzversicherungsgesellschaftsvorstandsvorsitzendenstellvertreterwahl"
LONG_URL = "https://news.example.com/2026/12/04/" + "a-very-long-slug-that-never-breaks-" * 4
CONFIRM_URL = "https://newsletter.example.com/confirm/" + "eyJzdWIiOiJhYmMxMjMifQ." * 6


@pytest.fixture(scope="session")
def demo_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """`digest demo`'s workspace: the sample issue, sent to the outbox."""
    root = tmp_path_factory.mktemp("demo") / "demo"
    # In a thread of its own: the send's asyncio.run must not meet the event loop
    # Playwright's sync API keeps running in this one while a browser is open.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(run_demo, root, lambda _line: None).result()
    return open_workspace(root)


def demo_html(ws: Workspace) -> str:
    issue = workspace_issue(ws, _only_issue(ws))
    return prepare(ws, issue).html(Recipient("r-1", "reader1@example.com", "Anna Petrova"))


def _only_issue(ws: Workspace) -> str:
    return next(ws.issues_dir.glob("*.yaml")).stem


def awkward_issue(ws: Workspace, language: str = "") -> Issue:
    """An issue with what breaks layouts: a long word, a long URL, a portrait image."""
    issue = Issue(
        date=date(2026, 12, 4),
        subject="A long word, a long link and a tall picture",
        preheader="Layout stress test.",
        intro=f"Read the filing at {LONG_URL} before Friday.",
        language=language,
        articles=[
            Article(
                url="https://news.example.com/a",
                title=f"The {LONG_WORD} resigns",
                section="News",
                summary="A summary.",
                image="https://news.example.com/img/tula.jpg",
                image_size="800x1000",
            ),
            Article(
                url="https://news.example.com/b",
                title="A wide picture",
                section="Features",
                blurb=f"See [the documents]({LONG_URL}) and {LONG_URL}.",
                image="https://news.example.com/img/pipeline.jpg",
                image_size="1600x900",
            ),
            Article(
                url="https://news.example.com/c",
                title="No size known",
                section="Analysis",
                summary="Its picture has no stated size.",
                image="https://news.example.com/img/rapprochement.jpg",
            ),
        ],
    )
    save_issue(issue, ws.issues_dir / "2026-12-04.yaml")
    return workspace_issue(ws, "2026-12-04")


def issue_html(ws: Workspace) -> str:
    issue = workspace_issue(ws, "2026-12-04")
    return prepare(ws, issue).html(Recipient("r-1", "ann@example.com", "Ann"))


def confirmation_html(ws: Workspace) -> str:
    return confirmation.build(ws, "ann@example.com", "Ann", CONFIRM_URL).html


def strip_style(html: str) -> str:
    """The document as a mail app that drops <style> shows it (inline styles stay)."""
    return re.sub(r"<style[^>]*>.*?</style>", "", html, flags=re.S | re.I)


def serve_sample_images(page: object) -> None:
    """Answer image requests with the sample images (by file name); refuse everything else."""

    def handle(route: object) -> None:
        name = Path(route.request.url.split("?")[0]).name  # type: ignore[attr-defined]
        path = SAMPLE_IMAGES / name
        if path.is_file():
            route.fulfill(body=path.read_bytes(), content_type="image/jpeg")  # type: ignore[attr-defined]
        else:
            route.abort()  # type: ignore[attr-defined]

    page.route("**/*", handle)  # type: ignore[attr-defined]
