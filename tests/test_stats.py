"""`digest stats` against a ledger built the way a newsroom builds one, on both backends.

Three weeks (Monday 16 November to now, Wednesday 2 December 2026): readers
added and confirmed, two issues sent over SMTP to a real aiosmtpd server (one
reader's server refuses with 550 5.1.1, another's with a 5.7.1 block), a
one-click unsubscribe from each issue's own List-Unsubscribe link, one through
a link of the old form (no issue in it) with an answer to "why are you
leaving?", a complaint read from an ARF report, a message to a reader's own
unsubscribe address, and a confirmation this week.
Every number `digest stats` prints is known from that story.
"""

from __future__ import annotations

import email
import json
import re
import secrets
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from _bounce_fixtures import bounce_config, reader_values, report
from _public_fixtures import Site
from _render_fixtures import sample_issue, write_issue
from _send_fixtures import SmtpSink, add_readers, use_smtp

from digest import bounces, clock, consent, lifecycle
from digest.people import changes, record, rights
from digest.send import deliveries, engine
from digest.send.intake import files
from digest.store import open_store, stats
from digest.tokens import Tokens
from digest.workspace import Workspace

FIRST, SECOND = "2026-11-20", "2026-11-27"


def at(text: str) -> None:
    clock.set_now(datetime.fromisoformat(text).replace(tzinfo=UTC), running=True)


def unsubscribe_path(received: Any) -> str:
    """The https link of a received message's List-Unsubscribe header, as a path."""
    header = str(email.message_from_bytes(received.data)["List-Unsubscribe"])
    url = re.search(r"<(https://[^>]+)>", " ".join(header.split()))
    assert url, header
    return urlsplit(url.group(1)).path


@pytest.fixture
def newsroom(
    send_ws: Workspace, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, Any]:
    """The three weeks of the module docstring; the readers' ids by role."""
    key = secrets.token_urlsafe(32)
    monkeypatch.setenv("DIGEST_SECRET_KEY", key)
    ws = bounce_config(use_smtp(send_ws, smtp_sink))
    for day in (FIRST, SECOND):
        issue = sample_issue(day=date.fromisoformat(day))
        issue.status = "ready"
        write_issue(ws, issue)

    at("2026-11-16T09:00:00")
    ids = add_readers(ws, 6)  # an operator's additions, consent on record: "added"
    with open_store(ws) as store:
        for n in (1, 2):
            sub = changes.request_signup(
                store, f"signup{n}@example.org", None, method="web_form", source="t", evidence={}
            )
            changes.confirm(store, sub.id, method="link", source="t", evidence={})
    roles = {"A": ids[0], "B": ids[1], "X": ids[2], "C": ids[3], "Y": ids[4], "D": ids[5]}
    email_of = {sid: f"reader{n}@example.net" for n, sid in enumerate(ids)}

    at(f"{FIRST}T07:00:00")
    smtp_sink.script("reader2@example.net", "550 5.1.1 <reader2@example.net>: User unknown")
    smtp_sink.script("reader4@example.net", "550 5.7.1 Client host blocked using a block list")
    first = engine.run_send(ws, FIRST)
    assert (first.counts["sent"], first.counts["failed"]) == (6, 2)
    links = {FIRST: {r.rcpt: unsubscribe_path(r) for r in smtp_sink.received}}

    site = Site(ws, smtp_sink)
    try:
        at(f"{FIRST}T18:30:00")  # the Friday evening: A leaves with the first issue's link
        reply = site.post(
            links[FIRST]["reader0@example.net"], data={"List-Unsubscribe": "One-Click"}
        )
        assert reply.status_code == 200

        at(f"{SECOND}T07:00:00")
        smtp_sink.handler.received.clear()
        second = engine.run_send(ws, SECOND)
        assert (second.counts["sent"], second.counts["failed"]) == (6, 0)
        links[SECOND] = {r.rcpt: unsubscribe_path(r) for r in smtp_sink.received}

        at("2026-11-28T10:00:00")  # B with the second issue's link, C with a link of the old form
        reply = site.post(
            links[SECOND]["reader1@example.net"], data={"List-Unsubscribe": "One-Click"}
        )
        assert reply.status_code == 200
        old = f"/unsubscribe/{Tokens(key.encode()).unsubscribe(roles['C'])}"
        page = site.post(old, data={"action": "unsubscribe"})
        assert page.status_code == 200 and 'name="answer_token"' in page.text
        answer = {
            "form_token": re.search(r'name="form_token" value="([^"]+)"', page.text).group(1),  # type: ignore[union-attr]
            "answer_token": re.search(r'name="answer_token" value="([^"]+)"', page.text).group(1),  # type: ignore[union-attr]
            "reason": "too_often",
            "text": "Every Friday is a lot. Write to c.reader@example.net if it goes monthly.",
        }
        assert site.post("/leaving", data=answer).status_code == 200
    finally:
        site.close()

    at("2026-11-29T08:00:00")  # D's mailbox provider reports a complaint about the second issue
    arf = tmp_path / "arf.eml"
    arf.write_bytes(
        report("arf-abuse.eml", reader_values(ws, roles["D"], email_of[roles["D"]], SECOND))
    )
    # Y writes to their own unsubscribe address: a mailbox report that names no issue.
    mailto = tmp_path / "mailto.eml"
    mailto.write_bytes(
        report(
            "mailto-unsubscribe.eml", reader_values(ws, roles["Y"], email_of[roles["Y"]], SECOND)
        )
    )
    with open_store(ws) as store:
        assert dict(files.ingest(store, str(arf)).outcomes) == {"suppressed": 1}
        assert dict(files.ingest(store, str(mailto)).outcomes) == {"unsubscribed": 1}

    at("2026-12-01T12:00:00")  # a new reader confirms this week
    with open_store(ws) as store:
        sub = changes.request_signup(
            store, "signup3@example.org", None, method="web_form", source="t", evidence={}
        )
        changes.confirm(store, sub.id, method="link", source="t", evidence={})
    at("2026-12-02T10:00:00")
    return {"ws": ws, "roles": roles}


EXPECTED_WEEKS = [
    {"week": "2026-11-16", "active": 6, "confirmed": 2, "added": 6, "unsubscribed": 1,
     "bounced": 1, "complained": 0},
    {"week": "2026-11-23", "active": 2, "confirmed": 0, "added": 0, "unsubscribed": 3,
     "bounced": 0, "complained": 1},
    {"week": "2026-11-30", "active": 3, "confirmed": 1, "added": 0, "unsubscribed": 0,
     "bounced": 0, "complained": 0},
]  # fmt: skip


def test_stats_json_tells_the_three_weeks(newsroom: dict[str, Any], cli: Any) -> None:
    result = cli("stats", "--weeks", "3", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["from"], data["to"], data["weeks"], data["time_zone"]) == (
        "2026-11-16",
        "2026-12-06",
        3,
        "UTC",
    )
    assert data["list"]["active"] == 3 and data["list"]["active_before"] == 0
    assert data["list"]["weeks"] == EXPECTED_WEEKS
    assert data["list"]["unsubscribes"] == {
        "attributed": 2,
        "earlier_issues": 0,
        "not_attributed": 2,  # the old link, and the message to the unsubscribe address
    }
    first, second = data["issues"]
    common = {"subject": "The port strike, a gas deal & a day in Tula", "waiting": 0, "skipped": 0}
    assert {k: first[k] for k in (*common, "issue", "audience", "sent", "failed", "unknown")} == {
        **common,
        "issue": FIRST,
        "audience": 8,
        "sent": 6,
        "failed": 2,
        "unknown": 0,
    }
    assert (first["bounces"], first["complaints"], first["unsubscribes"]) == (
        {"hard": 1, "soft": 1},
        0,
        1,
    )
    assert (second["issue"], second["audience"], second["sent"], second["failed"]) == (
        SECOND,
        6,
        6,
        0,
    )
    assert (second["bounces"], second["complaints"], second["unsubscribes"]) == (
        {"hard": 0, "soft": 0},
        1,
        1,
    )
    for issue in (first, second):
        assert issue["finished_at"] is not None and 0 <= issue["seconds"] < 60
        assert issue["reasons"] == {}  # C's answer came through a link without an issue
    assert data["reasons"]["answers"] == 1
    assert data["reasons"]["counts"] == {"too_often": 1}
    [said] = data["reasons"]["texts"]
    assert said["issue"] == "" and said["reason"] == "too_often"
    assert "c.reader@example.net" not in said["text"] and "Every Friday is a lot." in said["text"]


def test_the_numbers_agree_with_the_ledgers(newsroom: dict[str, Any]) -> None:
    ws, roles = newsroom["ws"], newsroom["roles"]
    with open_store(ws) as store:
        with store.read() as conn:
            found = stats.collect(conn, ws, weeks=3)
        assert consent.verify(store).ok  # issues in sources and evidence: the chain holds
        for issue in found.issues:
            counts = deliveries.DeliveryLedger(store, issue.issue).counts()
            assert (issue.sent, issue.failed, issue.unknown) == (
                counts["sent"],
                counts["failed"],
                counts["unknown"],
            )
            summary = bounces.issue_summary(store, issue.issue)
            assert (issue.hard_bounces, issue.soft_bounces, issue.complaints) == (
                summary["hard"],
                summary["soft"],
                summary["complaints"],
            )
        assert found.active == len(
            [s for s in record.list_subscribers(store) if s.status == "active"]
        )
        # Each unsubscribe by link names the issue its link named, in source and evidence.
        for role, issue in (("A", FIRST), ("B", SECOND), ("C", "")):
            sub = record.get_subscriber(store, roles[role])
            assert sub is not None and sub.status == "unsubscribed"
            event = rights.history(store, sub)[-1]
            assert event.kind == "unsubscribed"
            assert event.method == ("link" if role == "C" else "one_click")
            assert stats.source_issue(event.source) == issue
            assert event.evidence is not None and event.evidence.get("issue", "") == issue


def test_stats_in_the_terminal(newsroom: dict[str, Any], cli: Any) -> None:
    result = cli("stats", "--weeks", "3")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "3 active readers (+3 in 3 weeks, from Mon 16 Nov 2026" in out
    assert "trend █▁▃" in out
    assert re.search(r"16 Nov 2026 +6 +2 +6 +1 +1 +0", out)
    assert re.search(r"23 Nov 2026 +2 +0 +0 +3 +0 +1", out)
    assert re.search(rf"{FIRST} +8 +6 +2 +0 +1 +1 +0 +1 +\d+m\d\ds", out)
    assert re.search(rf"{SECOND} +6 +6 +0 +0 +0 +0 +1 +1 +\d+m\d\ds", out)
    assert "2 attributed to the issues below, 0 to earlier issues, 2 not attributed" in out
    assert '"Why are you leaving?": 1 answer (too many emails 1)' in out
    assert "Every Friday is a lot." in out


def test_stats_html_is_one_self_contained_page(
    newsroom: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    target = tmp_path / "out" / "stats.html"
    result = cli("stats", "--weeks", "3", "--html", str(target))
    assert result.exit_code == 0, result.output
    assert f"Wrote {target}" in result.output
    html = target.read_text(encoding="utf-8")
    assert html.count("<svg") == 2 * 5  # five charts, each drawn wide and narrow
    for outside in ("<script", "<link", " src=", "@import", "url("):
        assert outside not in html
    assert "Every Friday is a lot." in html
    assert re.search(r'class="figure">3</p>\s*<p>active readers now', html)
    assert not list(target.parent.glob(".stats.html.*"))  # written whole: no temporary left


def test_stats_html_refuses_a_folder(workspace: Workspace, cli: Any, tmp_path: Path) -> None:
    result = cli("stats", "--html", str(tmp_path))
    assert result.exit_code == 2
    assert "is a directory" in result.output


def test_weeks_follow_the_schedules_time_zone(store: Any) -> None:
    """An unsubscribe at 23:30 UTC on Sunday is Monday 00:30 in Berlin: next week's."""
    from _render_fixtures import set_config

    ws = set_config(store.workspace, 'timezone = "UTC"', 'timezone = "Europe/Berlin"')
    at("2026-11-16T09:00:00")
    [sid] = add_readers(ws, 1)
    at("2026-11-29T23:30:00")
    changes.unsubscribe(store, sid, method="admin", source="t", evidence={})
    at("2026-12-02T10:00:00")
    with open_store(ws) as berlin, berlin.read() as conn:
        found = stats.collect(conn, ws, weeks=3)
    assert [(w.start.isoformat(), w.unsubscribed, w.active) for w in found.weeks] == [
        ("2026-11-16", 0, 1),
        ("2026-11-23", 0, 1),
        ("2026-11-30", 1, 0),
    ]
    assert found.time_zone == "Europe/Berlin"


def test_active_counts_only_readers_who_were_active(store: Any) -> None:
    """Leaving from pending (a bounced confirmation email) is not leaving the active list."""
    at("2026-11-24T09:00:00")
    pending = changes.request_signup(
        store, "pending@example.org", None, method="web_form", source="t", evidence={}
    )
    [active] = add_readers(store.workspace, 1)
    at("2026-11-25T09:00:00")
    changes.suppress(store, pending.id, reason="5.1.1", kind="bounced", source="t")
    rights.export(store, active, source="t")  # an export between two events changes nothing
    changes.suppress(store, active, reason="5.1.1", kind="bounced", source="t")
    at("2026-12-02T10:00:00")
    with store.read() as conn:
        found = stats.collect(conn, store.workspace, weeks=2)
    assert [(w.added, w.bounced, w.active) for w in found.weeks] == [(1, 2, 0), (0, 0, 0)]
    assert found.active_before == 0


def test_the_lists_of_kinds_and_states_are_the_ledgers_own() -> None:
    """stats sits below the modules that define these; it must follow them."""
    entering = {k for k, after in consent.STATUS_AFTER.items() if after == "active"}
    assert entering == set(stats.ENTERING)
    assert {t.event for t in lifecycle.TRANSITIONS.values() if "active" in t.sources} | {
        "erased"
    } == set(stats.LEAVING)
    assert set(stats.NOT_SENT) == set(deliveries.STATES) - {"sent"}
    assert set(stats.NOT_COUNTED) == {
        bounces.UNKNOWN,
        bounces.NOT_OURS,
        bounces.DUPLICATE,
        bounces.REFUSED,
    }
    assert set(stats.LINK_METHODS) <= set(consent.METHODS)


def test_source_names_the_issue() -> None:
    url = "https://news.example.org/unsubscribe"
    assert stats.source_issue(stats.unsubscribe_source(url, "2026-12-04")) == "2026-12-04"
    assert stats.source_issue(stats.unsubscribe_source(url, "")) == ""
    assert stats.source_issue("mailbox report 0123") == ""


def test_an_empty_workspace_has_stats_too(store: Any) -> None:
    with store.read() as conn:
        found = stats.collect(conn, store.workspace, weeks=1)
    assert [w.active for w in found.weeks] == [0] and found.issues == []
    data = found.to_dict()
    assert data["issues"] == [] and data["reasons"] == {"answers": 0, "counts": {}, "texts": []}
    assert found.start == date(2026, 11, 30) and found.end == found.start + timedelta(days=6)


def test_the_preview_says_when_there_are_no_stats(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database out of reach is said on the page (503), in the preview's layout."""
    import asyncio

    import httpx

    from digest.web.preview import app as preview_app

    monkeypatch.setenv("DIGEST_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=preview_app(workspace.reload()))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.get("/stats")

    reply = asyncio.run(get())
    assert reply.status_code == 503
    assert "No stats right now" in reply.text and "cannot connect to" in reply.text


def test_migration_9_brings_a_database_made_before_it_up_to_date(
    workspace: Workspace, database_url: str
) -> None:
    """A database of migrations 1 to 8 (as released) gets the indexes and the reasons table."""
    from sqlalchemy import inspect

    from digest.store import Store, migrations

    store = Store.connect(database_url, workspace)
    saved = list(migrations.MIGRATIONS)
    try:
        migrations.MIGRATIONS[:] = [m for m in saved if m.version < 9]
        migrations.upgrade(store.engine)
        with store.engine.begin() as conn:  # the indexes as migrations 1 to 8 made them
            for name in (
                "ix_consent_events_kind_time",
                "ix_consent_events_subject_seq",
                "ix_bounce_reports_issue_kind",
            ):
                conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
            conn.exec_driver_sql("CREATE INDEX ix_bounce_reports_issue ON bounce_reports (issue)")
    finally:
        migrations.MIGRATIONS[:] = saved
    try:
        later = [m.version for m in saved if m.version >= 9]  # 9, and any added since
        assert [m.version for m in migrations.upgrade(store.engine)] == later
        assert migrations.upgrade(store.engine) == []
        inspector = inspect(store.engine)
        events = {ix["name"] for ix in inspector.get_indexes("consent_events")}
        reports = {ix["name"] for ix in inspector.get_indexes("bounce_reports")}
        assert "ix_consent_events_kind_time" in events
        assert ("ix_consent_events_subject_seq" in events) == (store.dialect == "postgresql")
        assert (
            "ix_bounce_reports_issue_kind" in reports and "ix_bounce_reports_issue" not in reports
        )
        assert inspector.has_table("unsubscribe_reasons")  # made by migration 9 alone
    finally:
        store.close()
