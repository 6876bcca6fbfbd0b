"""``digest demo``: the whole path on sample material, with no network beyond loopback.

It makes a workspace, serves the sample article pages and feed that ship in
the package from a loopback server, pulls the feed, picks its articles, adds
two more by URL (one behind a redirect, one in windows-1251), renders and
checks the issue, signs up sample readers (an import with recorded consent and
one double opt-in), verifies the consent ledger and sends the issue to the
outbox sender, so nothing is mailed.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from digest import consent, feeds
from digest.atomic import write_text
from digest.check import check_issue
from digest.curate import add_url
from digest.errors import WorkspaceError
from digest.issue import save_issue, workspace_issue
from digest.people.changes import confirm, request_signup
from digest.people.imports.generic import import_csv
from digest.samples import SampleSite, sample_folder
from digest.send.engine import run_send
from digest.store import open_store
from digest.workspace import Workspace, init_workspace, open_workspace

READERS = [
    ("Anna Petrova", "2026-10-02T08:15:00Z"),
    ("Ivan Sidorov", "2026-10-03T19:02:11Z"),
    ("Pat O'Brien", "2026-10-06T09:30:00Z"),
    ("Zoë Müller", "2026-10-07T09:00:00Z"),
    ("Jean-Luc Picard", "2026-10-08T11:45:00Z"),
    ("Mei Tanaka", "2026-10-09T06:20:00Z"),
    ("Kwame Mensah", "2026-10-10T17:05:00Z"),
    ("Sofía García", "2026-10-11T13:40:00Z"),
]
INTRO = """\
Good morning. This week's reading follows one thread: how far Moscow's turn
toward Beijing reaches, from a **30-year gas contract** to a car plant in Tula.

Reply to this email to tell us what we missed.
"""


@dataclass
class DemoReport:
    root: Path
    lines: list[str] = field(default_factory=list)
    outbox: Path | None = None
    sent: int = 0


def pick_folder(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3`` … when it already holds something."""
    candidate, n = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _configure(root: Path) -> Workspace:
    path = root / "digest.toml"
    text = path.read_text(encoding="utf-8")
    text = re.sub(
        r'^postal_address = ""',
        'postal_address = "The Weekly Brief, 1 Press Lane, 10115 Berlin, Germany"',
        text,
        count=1,
        flags=re.M,
    )
    write_text(path, text)
    return open_workspace(root)


def _readers_csv(ws: Workspace) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["email", "name", "consented_at", "source", "policy_version", "ip"])
    version = ws.config.privacy.policy_version
    for number, (name, when) in enumerate(READERS, 1):
        writer.writerow(
            [
                f"reader{number}@example.com",
                name,
                when,
                "demo sign-up sheet",
                version,
                f"192.0.2.{number}",
            ]
        )
    path = ws.subscribers_dir / "demo-readers.csv"
    write_text(path, buffer.getvalue())
    return path


def run_demo(directory: Path, echo: Callable[[str], None] = print) -> DemoReport:
    """Run the demo in ``directory`` (which must not hold a workspace yet)."""
    if (directory / "digest.toml").exists():
        raise WorkspaceError(f"{directory} already holds a workspace; pick another folder")
    init_workspace(directory)
    ws = _configure(directory)
    report = DemoReport(root=ws.root)

    def say(line: str) -> None:
        report.lines.append(line)
        echo(line)

    say(f"1. Workspace        {ws.root}")
    with SampleSite(sample_folder()) as site:
        say(f"2. Sample site      {site.url} (loopback only)")
        feeds.add_feed(ws, f"{site.url}/feeds/weekly.rss")
        pulled = feeds.pull(ws)
        listed = feeds.list_candidates(ws)
        say(f"3. Feed pulled      {sum(r.new for r in pulled)} candidates")
        picked = feeds.pick(ws, [c.number for c in listed])
        say(f"4. Picked           {len(picked)} articles from the feed")
        for path, section in (
            ("/short/redirect-target.html", None),  # a short link: the redirect is followed
            ("/articles/sanctions-cp1251.html", None),  # windows-1251, charset in <meta> only
            ("/articles/floating-reactors.html", "Analysis"),  # only <title> and description
        ):
            added = add_url(ws, site.url + path, section=section)
            say(f"   digest add       {added.article.title[:58]} ({added.article.section})")
    issue = workspace_issue(ws)
    issue.subject = "Moscow turns east: gas, cars and a floating reactor"
    issue.preheader = "A 30-year gas deal, a car plant in Tula, and what a memorandum hides."
    issue.intro = INTRO
    issue.status = "ready"
    save_issue(issue)
    say(f"5. Issue ready      {issue.path} ({len(issue.articles)} articles)")

    checked = check_issue(ws, issue)
    say(f"6. Check            {len(checked.errors)} errors, {len(checked.warnings)} warnings")
    for finding in checked.findings:
        say(f"   {finding.level}: {finding.message}")

    with open_store(ws) as store:
        imported = import_csv(store, _readers_csv(ws))
        say(f"7. Subscribers      {imported.imported} imported with their recorded consent")
        evidence = {"ip": "127.0.0.1", "user_agent": "digest demo", "form": "/subscribe"}
        reader = request_signup(
            store,
            "new.reader@example.com",
            "New Reader",
            method="web_form",
            source="digest demo",
            evidence=evidence,
        )
        confirm(store, reader.id, method="web_form", source="digest demo", evidence=evidence)
        say("   double opt-in    new.reader@example.com signed up and confirmed")
        verified = consent.verify(store)
        state = "verifies" if verified.ok else f"BROKEN at event {verified.broken_seq}"
        say(
            f"8. Consent ledger   {verified.events} events, chain {state}, "
            f"head {verified.head_hash[:16]}…"
        )

    sent = run_send(ws, issue.date)
    report.sent = sent.counts.get("sent", 0)
    report.outbox = ws.outbox_dir / issue.slug
    say(f"9. Sent             {report.sent} messages to {report.outbox}/ (nothing was mailed)")
    say("")
    say("Next:")
    say(f"  digest -C {ws.root} preview        the email in your browser")
    say(f"  digest -C {ws.root} deliveries     what the send did")
    say(f"  digest -C {ws.root} subscribers list")
    return report
