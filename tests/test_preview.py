"""The preview app through httpx.ASGITransport, and `digest preview` as a real process."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import running

from digest.errors import DigestError
from digest.issue import load_issue
from digest.render import prepare, sample_recipient
from digest.web.preview import app as preview_app
from digest.web.preview import as_dark, bind, fingerprint, is_loopback
from digest.workspace import Workspace, open_workspace

DAY = "2026-12-04"

ISSUE = """\
# The issue the preview tests edit.
date: 2026-12-04
subject: "Gas, cars and a floating reactor"
preheader: "Three stories for your Friday."
status: draft
intro: |
  Good morning. This week follows **one thread**.
articles:
  - section: News
    url: https://news.example.com/gas
    title: Gazprom and CNPC Sign a Gas Contract
    summary: The pipeline deal was signed at last.
    image: https://news.example.com/img/pipeline.jpg
    image_alt: A pipeline on the steppe
  - section: Features
    url: https://news.example.com/tula
    title: A Chinese Automaker Comes to Tula
    author: Anna Petrova
    summary: What the plant means for the region's workers.
  - section: Opinion
    url: https://news.example.com/rapprochement
    title: The Rapprochement Runs Deep
    summary: An analyst on the turn toward Beijing.
"""


@pytest.fixture
def ws(workspace: Workspace) -> Workspace:
    (workspace.issues_dir / f"{DAY}.yaml").write_text(ISSUE, encoding="utf-8")
    return workspace


def issue_file(ws: Workspace) -> Path:
    return ws.issues_dir / f"{DAY}.yaml"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


class Client:
    """Synchronous GETs against the preview app through httpx.ASGITransport."""

    def __init__(self, ws: Workspace) -> None:
        self.app = preview_app(ws)

    def get(self, path: str, **headers: str) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1:8765"
            ) as c:
                return await c.get(path, headers=headers)

        return asyncio.run(go())


@pytest.fixture
def client(ws: Workspace) -> Client:
    return Client(ws)


def text_of(html: str) -> str:
    """Visible text, roughly: tags dropped, entities left as they are."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# -- the issue list -----------------------------------------------------------


def test_issue_list_shows_date_status_subject_and_article_count(
    ws: Workspace, client: Client
) -> None:
    (ws.issues_dir / "2026-12-11.yaml").write_text(
        "date: 2026-12-11\nsubject: Next week\nstatus: ready\narticles: []\n", encoding="utf-8"
    )
    response = client.get("/")
    assert response.status_code == 200
    rows = re.findall(r"<tr>(.*?)</tr>", response.text, re.S)
    cells = [text_of(row).split() for row in rows]
    assert ["2026-12-11", "ready", "Next", "week", "0"] in cells
    assert ["2026-12-04", "draft", "Gas,", "cars", "and", "a", "floating", "reactor", "3"] in cells
    assert response.text.index("2026-12-11") < response.text.index("2026-12-04"), "newest first"
    assert f'href="/issue/{DAY}"' in response.text


def test_issue_list_names_a_broken_issue_and_lists_the_rest(ws: Workspace, client: Client) -> None:
    (ws.issues_dir / "2026-12-11.yaml").write_text(
        "date: 2026-12-11\nsubject: [unclosed\n", encoding="utf-8"
    )
    response = client.get("/")
    assert response.status_code == 200
    assert "2026-12-11.yaml:" in response.text
    assert "broken" in response.text
    assert "Gas, cars and a floating reactor" in response.text


def test_empty_workspace_says_how_to_start(workspace: Workspace) -> None:
    response = Client(workspace).get("/")
    assert response.status_code == 200
    assert "No issues yet" in response.text
    assert "digest issue new" in response.text


# -- one issue ----------------------------------------------------------------


def test_issue_page_has_inbox_line_frame_and_every_view(ws: Workspace, client: Client) -> None:
    response = client.get(f"/issue/{DAY}")
    assert response.status_code == 200
    page = response.text
    inbox = re.search(r'<div class="inbox".*?</div>', page, re.S)
    assert inbox is not None
    line = text_of(inbox.group(0))
    assert "The Weekly Brief" in line
    assert "Gas, cars and a floating reactor" in line
    assert "Three stories for your Friday." in line
    assert re.search(rf'<iframe id="email-frame"[^>]+src="/issue/{DAY}/email.html\?v=\w+"', page)
    for tab in ("email", "text", "source", "headers"):
        assert f'data-panel="{tab}"' in page
    # The text part, the raw source and the headers are in the page itself.
    assert "GAZPROM AND CNPC SIGN A GAS CONTRACT" in page.upper()
    assert "Content-Type: multipart/alternative" in page
    assert "List-Unsubscribe-Post" in page
    assert "HTML size" in page and "of 102.0 KB" in page


def test_email_frame_is_the_html_a_subscriber_gets(ws: Workspace, client: Client) -> None:
    response = client.get(f"/issue/{DAY}/email.html")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    issue = load_issue(issue_file(ws))
    assert response.text == prepare(ws, issue).html(sample_recipient())
    for title in ("Gazprom and CNPC Sign a Gas Contract", "A Chinese Automaker Comes to Tula"):
        assert title in response.text
    assert "frame-ancestors 'self'" in response.headers["content-security-policy"]


def test_dark_variant_switches_the_emails_dark_scheme_on(ws: Workspace, client: Client) -> None:
    light = client.get(f"/issue/{DAY}/email.html").text
    dark = client.get(f"/issue/{DAY}/email.html?scheme=dark").text
    assert "prefers-color-scheme: dark" in light
    assert "prefers-color-scheme: dark" not in dark
    assert dark == as_dark(light) and dark != light


def test_as_dark_turns_dark_queries_on_and_light_ones_off() -> None:
    css = "@media (prefers-color-scheme: dark) {a{}} @media ( prefers-color-scheme : light ) {b{}}"
    assert as_dark(css) == "@media (min-width: 0px) {a{}} @media (max-width: 0px) {b{}}"


def test_text_part(ws: Workspace, client: Client) -> None:
    response = client.get(f"/issue/{DAY}/text.txt")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    issue = load_issue(issue_file(ws))
    assert response.text == prepare(ws, issue).text(sample_recipient())
    assert "https://news.example.com/tula" in response.text


def test_raw_source_is_the_whole_message(client: Client) -> None:
    response = client.get(f"/issue/{DAY}/source.txt")
    assert response.status_code == 200
    message = email.message_from_string(response.text, policy=email.policy.default)
    assert message["Subject"] == "Gas, cars and a floating reactor"
    assert message.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in message.iter_parts()]  # type: ignore[attr-defined]
    assert kinds == ["text/plain", "text/html"]


def test_headers(client: Client) -> None:
    response = client.get(f"/issue/{DAY}/headers.json")
    assert response.status_code == 200
    headers = dict(response.json())
    assert headers["From"] == "The Weekly Brief <brief@example.com>"
    assert headers["Subject"] == "Gas, cars and a floating reactor"
    assert headers["List-Unsubscribe"].startswith("<https://")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "reader@example.com" in headers["To"]


def test_check_results_in_json_and_in_the_page(ws: Workspace, client: Client) -> None:
    edit(issue_file(ws), 'preheader: "Three stories for your Friday."', 'preheader: ""')
    edit(issue_file(ws), "    title: The Rapprochement Runs Deep\n", "")
    result = client.get(f"/issue/{DAY}/check.json").json()
    codes = {(f["level"], f["code"]) for f in result["findings"]}
    assert ("warning", "preheader-missing") in codes
    assert ("error", "article-no-title") in codes
    assert result["errors"] >= 1 and result["warnings"] >= 1
    html = client.get(f"/issue/{DAY}/email.html").text
    assert result["html_size"] == len(html.encode("utf-8"))
    assert result["gmail_limit"] == 102 * 1024
    page = client.get(f"/issue/{DAY}").text
    assert "verdict-bad" in page
    assert "preheader-missing" in page and "article-no-title" in page


def test_a_clean_issue_checks_clean(ws: Workspace) -> None:
    # The newsletter's own From and privacy policy, not the placeholders `digest init` writes.
    edit(ws.config_path, "brief@example.com", "brief@tula-ledger.ru")
    edit(ws.config_path, "https://newsletter.example.com/privacy", "https://tula-ledger.ru/privacy")
    client = Client(ws.reload())
    result = client.get(f"/issue/{DAY}/check.json").json()
    assert result["findings"] == []
    assert "No problems found" in client.get(f"/issue/{DAY}").text


def test_the_placeholder_addresses_are_warnings_in_an_outbox_workspace(client: Client) -> None:
    result = client.get(f"/issue/{DAY}/check.json").json()
    assert {(f["code"], f["level"]) for f in result["findings"]} == {
        ("from-placeholder", "warning"),
        ("policy-placeholder", "warning"),
    }


# -- broken files and unknown dates --------------------------------------------


def test_broken_issue_file_is_shown_with_file_and_line_then_recovers(
    ws: Workspace, client: Client
) -> None:
    good = issue_file(ws).read_text(encoding="utf-8")
    edit(issue_file(ws), "status: draft", "status: draft\n  bad: [indent")
    response = client.get(f"/issue/{DAY}")
    assert response.status_code == 200
    assert "This preview cannot be built" in response.text
    assert re.search(rf"{DAY}\.yaml:\d+", response.text)
    assert 'id="email-frame"' not in response.text
    raw = client.get(f"/issue/{DAY}/email.html")
    assert raw.status_code == 422
    assert re.search(rf"{DAY}\.yaml:\d+", raw.text)

    issue_file(ws).write_text(good, encoding="utf-8")
    response = client.get(f"/issue/{DAY}")
    assert "This preview cannot be built" not in response.text
    assert 'id="email-frame"' in response.text


def test_broken_template_is_shown_with_template_and_line(ws: Workspace, client: Client) -> None:
    (ws.templates_dir / "email.html").write_text(
        '{% extends "default:email.html" %}\n{% block intro %}\n{{ no_such_thing }}\n'
        "{% endblock %}\n",
        encoding="utf-8",
    )
    response = client.get(f"/issue/{DAY}")
    assert response.status_code == 200
    assert "This preview cannot be built" in response.text
    assert "email.html:3" in response.text
    assert "no_such_thing" in response.text
    (ws.templates_dir / "email.html").unlink()
    assert 'id="email-frame"' in client.get(f"/issue/{DAY}").text


def test_broken_config_is_shown_with_file_and_line(ws: Workspace, client: Client) -> None:
    config = ws.root / "digest.toml"
    edit(config, 'weekday = "friday"', 'weekday = "someday"')
    response = client.get(f"/issue/{DAY}")
    assert response.status_code == 200
    assert re.search(r"digest\.toml:\d+", response.text)
    assert "someday" in response.text
    edit(config, 'weekday = "someday"', 'weekday = "friday"')
    assert 'id="email-frame"' in client.get(f"/issue/{DAY}").text


def test_config_change_shows_in_the_preview(ws: Workspace, client: Client) -> None:
    assert "The Weekly Brief" in client.get(f"/issue/{DAY}/email.html").text
    edit(ws.root / "digest.toml", 'name = "The Weekly Brief"', 'name = "The Friday Letter"')
    assert "The Friday Letter" in client.get(f"/issue/{DAY}/email.html").text


def test_unknown_date_is_a_404_page(client: Client) -> None:
    response = client.get("/issue/2026-12-11")
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert "No issue dated 2026-12-11" in response.text
    assert "digest issue new --date 2026-12-11" in response.text
    assert '<script src="/static/preview.js"' in response.text
    assert client.get("/issue/2026-12-11/email.html").status_code == 404
    assert client.get("/issue/not-a-date").status_code == 404
    as_json = client.get("/issue/2026-12-11", accept="application/json")
    assert as_json.status_code == 404
    assert as_json.json()["status"] == 404


# -- live reload ---------------------------------------------------------------


def test_version_changes_when_a_watched_file_changes(ws: Workspace, client: Client) -> None:
    first = client.get("/_version").json()["version"]
    assert client.get("/_version").json()["version"] == first
    page = client.get(f"/issue/{DAY}").text
    assert f'data-version="{first}"' in page

    edit(issue_file(ws), "Gas Contract", "Gas Contract, at Last")
    after_issue = client.get("/_version").json()["version"]
    assert after_issue != first
    assert "Gas Contract, at Last" in client.get(f"/issue/{DAY}/email.html").text

    (ws.templates_dir / "email.txt").write_text('{% extends "default:email.txt" %}\n')
    after_template = client.get("/_version").json()["version"]
    assert after_template != after_issue

    edit(ws.root / "digest.toml", 'time = "07:00"', 'time = "08:00"')
    assert client.get("/_version").json()["version"] != after_template


def test_fingerprint_ignores_files_it_does_not_watch(ws: Workspace) -> None:
    before = fingerprint(ws.root)
    (ws.root / "notes.txt").write_text("not watched")
    (ws.outbox_dir / "x.eml").write_text("not watched")
    assert fingerprint(ws.root) == before


# -- the page itself -------------------------------------------------------------


def test_page_loads_nothing_from_elsewhere_and_has_no_inline_script(client: Client) -> None:
    for path in ("/", f"/issue/{DAY}"):
        response = client.get(path)
        page = response.text
        scripts = re.findall(r"<script([^>]*)>", page)
        assert scripts and all('src="/static/' in attrs for attrs in scripts)
        for url in re.findall(r'(?:src|href)="([^"]+)"', page):
            assert url.startswith(("/", "#")), f"{path} refers to {url}"
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["cache-control"] == "no-store"


def test_static_files_are_served(client: Client) -> None:
    js = client.get("/static/preview.js")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert "/_version" in js.text
    css = client.get("/static/preview.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    assert "http" not in re.sub(r"/\*.*?\*/", "", css.text, flags=re.S), "no remote fonts"


# -- serving ---------------------------------------------------------------------


def test_loopback_hosts() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")


def test_bind_takes_a_free_port_when_the_default_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    from digest.web import preview

    taken = bind("127.0.0.1", 0)
    monkeypatch.setattr(preview, "DEFAULT_PORT", taken.getsockname()[1])
    try:
        other = bind("127.0.0.1", None)
        assert other.getsockname()[1] not in (0, taken.getsockname()[1])
        other.close()
        with pytest.raises(DigestError, match=r"127\.0\.0\.1:\d+ .*--port"):
            bind("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


def test_cli_refuses_an_unknown_date(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("preview", "2026-12-11", "--no-browser")
    assert result.exit_code == 1
    assert "no issue dated 2026-12-11" in result.output
    assert "Traceback" not in result.output


def _start(ws: Workspace, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BROWSER": "true"}
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "-C", str(ws.root), "preview", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_digest_preview_serves_prints_the_url_and_stops_on_ctrl_c(ws: Workspace) -> None:
    with running(_start(ws, "--no-browser", "--port", "0")) as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)/issue/2026-12-04", line)
        assert match, line
        base = match.group(1)
        deadline = time.monotonic() + 10
        while True:
            try:
                health = httpx.get(base + "/healthz", timeout=30)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.05)
        assert health.text == "ok"
        # The first page renders the issue: under load on CI it has taken over httpx's 5 s.
        page = httpx.get(f"{base}/issue/{DAY}/email.html", timeout=30)
        assert "Gazprom and CNPC" in page.text
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "Preview stopped." in out
    assert "Traceback" not in err


def test_digest_preview_warns_when_not_on_loopback(ws: Workspace) -> None:
    with running(_start(ws, "--no-browser", "--port", "0", "--host", "0.0.0.0")) as process:
        assert process.stdout is not None
        assert "http://0.0.0.0:" in process.stdout.readline()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert "warning: serving the preview on 0.0.0.0" in err
    assert process.returncode == 0


def test_open_workspace_after_preview_is_unchanged(ws: Workspace) -> None:
    """Previewing writes nothing into the issue or the config."""
    before = {p: p.read_bytes() for p in (issue_file(ws), ws.root / "digest.toml")}
    Client(ws).get(f"/issue/{DAY}")
    assert {p: p.read_bytes() for p in before} == before
    assert open_workspace(ws.root).config == ws.config
