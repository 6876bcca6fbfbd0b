"""A Russian and an Arabic newsletter, end to end, without one English word from digest.

`digest init --language` -> an issue -> `digest serve` (a real uvicorn
process) -> subscribe on the form -> the confirmation email (the outbox
sender writes it) -> confirm -> `digest send` to the outbox -> the
mailbox's one-click unsubscribe from the message's List-Unsubscribe ->
the archive. Everything a reader saw on the way (each page, both parts of
both emails, their subjects) is scanned for the English text of every
message in digest's catalog: none may appear. The editor's own words (the
name, the issue, the sections) are in the language; proper names and
links are left out of the scan. The ledger names the language and the
statement the reader was shown.
"""

from __future__ import annotations

import email
import email.policy
import re
import threading
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import lxml.html
import pytest
from _public_fixtures import SECRET
from babel.messages.pofile import read_po
from click.testing import CliRunner
from test_security_serve import Served

from digest import consent
from digest.cli import main
from digest.people import record, rights
from digest.store import open_store
from digest.translations import TEMPLATE
from digest.workspace import Workspace, open_workspace

pytestmark = pytest.mark.slow

NEWSLETTERS = {
    "ru": {
        "name": "Еженедельник",
        "reader": "Ольга Смирнова",
        "subject": "Забастовка в порту и день в Туле",
        "preheader": "Две истории к пятнице.",
        "intro": "Доброе утро. На этой неделе: **забастовка** и завод.",
        "articles": [
            ("Докеры остановили порт", "Суда стоят в очереди, цены растут.", "Анна Петрова"),
            ("Один день на заводе в Туле", "Смена начинается в шесть утра.", ""),
        ],
        "statement": "Да, присылайте мне «Еженедельник» по электронной почте каждую пятницу.",
        "articles_word": "2 статьи",
    },
    "ar": {
        "name": "الأسبوعية",
        "reader": "ليلى حسن",
        "subject": "إضراب في الميناء ويوم في المصنع",
        "preheader": "قصتان ليوم الجمعة.",
        "intro": "صباح الخير. في هذا العدد: **إضراب** ومصنع.",
        "articles": [
            ("عمال الميناء يوقفون العمل", "السفن تنتظر والأسعار ترتفع.", "أنا بيتروفا"),
            ("يوم في مصنع", "تبدأ الوردية في السادسة صباحًا.", ""),
        ],
        "statement": "نعم، أرسلوا إليّ الأسبوعية عبر البريد الإلكتروني كل يوم جمعة",
        "articles_word": "مقالان",
    },
}
URL = re.compile(r"(https?|mailto):\S+|\S+@\S+")


def english_fragments() -> list[str]:
    """The English words of every message in the catalog, split at placeholders and markup."""
    with TEMPLATE.open("rb") as handle:
        template = read_po(handle)
    found: set[str] = set()
    for message in template:
        for text in message.id if isinstance(message.id, tuple) else (message.id,):
            for piece in re.split(r"%\(\w+\)s|<[^>]+>", text):
                piece = piece.strip(" .,:;()“”\"'")
                if re.search(r"[A-Za-z]{2}", piece):
                    found.add(piece)
    return sorted(found, key=len, reverse=True)


def leaks(texts: dict[str, str]) -> list[str]:
    """Each English message fragment found in what a reader saw, with where."""
    fragments = english_fragments()
    found = []
    for where, text in texts.items():
        text = URL.sub(" ", text)
        for fragment in fragments:
            if re.search(rf"(?<![A-Za-z]){re.escape(fragment)}(?![A-Za-z])", text):
                found.append(f"{where}: {fragment!r}")
    return found


def visible(html: str) -> str:
    """What a reader sees or hears of a page: text and the attributes read out."""
    doc = lxml.html.document_fromstring(html)
    for gone in doc.xpath("//style|//script|//head/meta"):
        gone.drop_tree()
    said = [
        value
        for name in ("alt", "title", "aria-label", "aria-roledescription", "placeholder")
        for value in doc.xpath(f"//@{name}")
    ]
    return " ".join([doc.text_content(), *said])


def direction(html: str) -> tuple[str | None, str | None]:
    root = lxml.html.document_fromstring(html)
    return root.get("lang"), root.get("dir")


def _cli(root: Path, *args: str) -> str:
    result = CliRunner().invoke(
        main, ["-C", str(root), *args], env={"DIGEST_SECRET_KEY": SECRET}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def _issue_yaml(spec: dict, sections: list[str]) -> str:
    lines = [
        "date: 2026-12-04",
        f'subject: "{spec["subject"]}"',
        f'preheader: "{spec["preheader"]}"',
        "status: draft",
        f'intro: "{spec["intro"]}"',
        "articles:",
    ]
    for number, (title, summary, author) in enumerate(spec["articles"]):
        lines += [
            f"- section: {sections[number]}",
            f"  url: https://news.example.com/2026/12/{number}",
            f'  title: "{title}"',
            f'  summary: "{summary}"',
            f'  author: "{author}"',
        ]
    return "\n".join(lines) + "\n"


def _arrived(folder: Path, timeout: float = 20) -> list[Path]:
    done = threading.Event()
    for _ in range(int(timeout * 10)):
        found = sorted(folder.glob("*.eml"))
        if found:
            return found
        done.wait(0.1)
    raise AssertionError(f"nothing arrived in {folder}")


def _mail(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _parts(message: EmailMessage) -> tuple[str, str]:
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content()


@pytest.mark.parametrize("tag", sorted(NEWSLETTERS))
def test_a_newsletter_in_another_language_from_init_to_the_archive(
    tmp_path: Path, tag: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = NEWSLETTERS[tag]
    root = tmp_path / "weekly"  # on PostgreSQL, `database_url` set DIGEST_DATABASE_URL
    monkeypatch.setenv("DIGEST_SECRET_KEY", SECRET)
    made = CliRunner().invoke(main, ["init", str(root), "--name", spec["name"], "--language", tag])
    assert made.exit_code == 0, made.output
    config = root / "digest.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace('postal_address = ""', 'postal_address = "1 Press Lane, Springfield"')
    text = text.replace("subscribe_reply_seconds = 0.4", "subscribe_reply_seconds = 0")
    config.write_text(text, encoding="utf-8")
    ws: Workspace = open_workspace(root)
    assert ws.config.newsletter.language == tag
    sections = list(ws.config.newsletter.sections)
    assert "News" not in sections  # named in the language by `digest init --language`
    (root / "issues" / "2026-12-04.yaml").write_text(_issue_yaml(spec, sections), encoding="utf-8")
    seen: dict[str, str] = {}

    with Served(ws) as server:
        base = f"http://127.0.0.1:{server.port}"
        with httpx.Client(base_url=base, timeout=30) as client:

            def page(name: str, reply: httpx.Response, status: int = 200) -> str:
                assert reply.status_code == status, (name, reply.status_code, reply.text)
                assert direction(reply.text) == (tag, "rtl" if tag == "ar" else "ltr"), name
                seen[f"page {name}"] = visible(reply.text)
                return reply.text

            # Subscribe on the form.
            shown = client.get("/subscribe")
            form = page("subscribe", shown)
            assert spec["statement"] in form
            token = re.search(r'name="form_token" value="([^"]+)"', form)
            assert token
            # The cookie is Secure (base_url is https): sent by hand over this loopback http.
            cookie = shown.headers["set-cookie"].split(";")[0]
            fields = {"email": "reader@example.com", "name": spec["reader"], "consent": "yes"}
            page(
                "check your inbox",
                client.post(
                    "/subscribe",
                    data={**fields, "form_token": token.group(1)},
                    headers={"Cookie": cookie},
                ),
            )
            page("form refused", client.post("/subscribe", data=fields), 403)

            # The confirmation email, written to the outbox by the server's sender
            # once the reply has gone.
            sent = _arrived(root / "outbox" / "confirmations")
            confirmation = _mail(sent[0])
            html, text = _parts(confirmation)
            assert direction(html) == (tag, "rtl" if tag == "ar" else "ltr")
            seen["confirmation subject"] = str(confirmation["Subject"])
            seen["confirmation html"], seen["confirmation text"] = visible(html), text
            link = re.search(r"https?://\S+/confirm/\S+", text)
            assert link
            path = urlsplit(link.group(0)).path
            page("confirm", client.get(path))
            page("welcome", client.post(path))
            page("a broken link", client.get("/confirm/not-a-token"), 400)

            # The issue, sent to the outbox.
            _cli(root, "issue", "ready")
            _cli(root, "send", "--yes")
            [delivered] = sorted((root / "outbox" / "2026-12-04").glob("*.eml"))
            message = _mail(delivered)
            html, text = _parts(message)
            assert direction(html) == (tag, "rtl" if tag == "ar" else "ltr")
            seen["issue html"], seen["issue text"] = visible(html), text
            assert spec["subject"] == message["Subject"]

            # The mailbox provider's one-click unsubscribe; the reader's own click.
            unsubscribe = re.search(r"<(https://[^>]+)>", str(message["List-Unsubscribe"]))
            assert unsubscribe
            path = urlsplit(unsubscribe.group(1)).path
            page("unsubscribe", client.get(path))
            page(
                "one-click unsubscribe",
                client.post(path, data={"List-Unsubscribe": "One-Click"}),
            )
            page("unsubscribed", client.post(path, data={}))

            # The archive.
            index = page("archive", client.get("/archive"))
            assert spec["articles_word"] in index
            page("archived issue", client.get("/archive/2026-12-04"))
            page("no such issue", client.get("/archive/2026-12-11"), 404)
            page("no such page", client.get("/nowhere"), 404)

    assert not leaks(seen), "\n".join(leaks(seen))
    assert spec["name"] in seen["issue html"] and spec["reader"] not in seen["page archive"]

    # The ledger: the language and the statement the reader was shown.
    with open_store(ws) as store:
        sub = record.find_by_email(store, "reader@example.com")
        assert sub is not None and sub.status == "unsubscribed"
        events = rights.history(store, sub)
        texts = consent.texts(store)
        statement = texts[events[0].statement_id]
        assert events[0].kind == "signup_requested"
        assert statement.language == tag and statement.body == ws.config.consent_statement
        assert spec["statement"] in statement.body
        assert events[0].evidence is not None
        assert events[0].evidence["language"] == tag
        assert events[0].evidence["consent_statement"] == statement.body
        assert consent.verify(store).ok
    shown = _cli(root, "consent", "verify", "--texts")
    assert f"statement v1 ({tag})" in shown and statement.body in shown


def test_the_scan_finds_digest_english_and_passes_over_links_and_names() -> None:
    assert leaks({"page": "Еженедельник · Past issues"}) == ["page: 'Past issues'"]
    assert leaks({"mail": "Автор: Анна. Read the story →"}) == ["mail: 'Read the story'"]
    assert leaks({"mail": "https://news.example.com/Subscribe reader@example.com"}) == []
    assert leaks({"mail": "«Еженедельник» приходит на почту каждую пятницу."}) == []
