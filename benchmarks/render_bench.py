"""Personalised messages per second: the fast path against Jinja + premailer per recipient.

    python benchmarks/render_bench.py [--subscribers 10000] [--naive 200] [--cyrillic]

Builds a throwaway workspace with an issue of 18 articles, then builds complete
wire messages (both parts, a unique unsubscribe token and Message-ID each) for
every subscriber through the fast path, and for ``--naive`` subscribers by
rendering Jinja and premailer per recipient and building the message with the
email package; the naive rate is extrapolated. Runs on one core; rates are per
second of this process's CPU time, so other work on the machine does not skew them.
``--cyrillic`` writes the articles in Russian, where both parts go out in base64
(encoded whole per recipient) instead of quoted-printable.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from digest.issue import Article, Issue, save_issue  # noqa: E402
from digest.message import MessageBuilder, reference_message  # noqa: E402
from digest.render import Recipient, premailer_runs, prepare  # noqa: E402
from digest.workspace import init_workspace, open_workspace  # noqa: E402

SECTIONS = ("News", "Features", "Analysis", "Opinion")
NAMES = ("Ann Lee", "Zoë Ünï", "Tom & Jerry", "", "Дмитрий", "O'Brien 🦊")


RU_TITLE = "История {n}: что забастовка в порту значит для цены зимнего топлива"
RU_SUMMARY = (
    "Докеры вышли в понедельник. Суда стоят на рейде, и импортёры говорят, что цены "
    "вырастут до Рождества, если переговоры не возобновятся."
)


def make_workspace(root: Path, cyrillic: bool = False) -> tuple[object, Issue]:
    init_workspace(root)
    config = root / "digest.toml"
    config.write_text(
        config.read_text().replace('postal_address = ""', 'postal_address = "1 Press Lane"'),
        encoding="utf-8",
    )
    ws = open_workspace(root)
    articles = [
        Article(
            url=f"https://news.example.com/2026/12/a-story-with-a-longer-slug-{n}",
            title=RU_TITLE.format(n=n)
            if cyrillic
            else f"Story {n}: what the port strike means for the price of winter fuel",
            section=SECTIONS[n % 4],
            author="Anna Petrova",
            image=f"https://news.example.com/img/{n}.jpg" if n % 3 == 0 else "",
            summary=RU_SUMMARY
            if cyrillic
            else "Dockers walked out on Monday. Ships are queueing off the coast, and "
            "importers say prices will rise before Christmas unless talks resume.",
        )
        for n in range(18)
    ]
    articles.sort(key=lambda a: SECTIONS.index(a.section))
    issue = Issue(
        date=date(2026, 12, 4),
        subject="The port strike, a gas deal & a day in Tula",
        preheader="Eighteen stories for your Friday.",
        intro="Good morning. This week: **strikes**, contracts and a visit to Tula.",
        articles=articles,
    )
    save_issue(issue, ws.issues_dir / "2026-12-04.yaml")
    return ws, issue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--naive", type=int, default=200)
    parser.add_argument("--cyrillic", action="store_true", help="articles in Russian (base64)")
    args = parser.parse_args()
    recipients = [
        Recipient(f"sub-{i:06d}", f"reader{i}@example.com", NAMES[i % len(NAMES)])
        for i in range(args.subscribers)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        ws, issue = make_workspace(Path(tmp) / "ws", args.cyrillic)
        runs = premailer_runs()
        t0 = time.process_time()
        prepared = prepare(ws, issue)  # type: ignore[arg-type]
        builder = MessageBuilder(prepared)
        for has_name in (True, False):  # both variants, so the timing is per-recipient work only
            builder.build(Recipient("warm", "w@example.com", "W" if has_name else ""))
        prep = time.process_time() - t0
        runs = premailer_runs() - runs
        # What the preview pays per edit: a changed issue in a warm process.
        from digest.check import check_prepared

        issue.subject += " (edited)"
        t0 = time.process_time()
        check_prepared(prepare(ws, issue))  # type: ignore[arg-type]
        edit = time.process_time() - t0
        issue.subject = issue.subject.removesuffix(" (edited)")

        t0 = time.process_time()
        total = 0
        for r in recipients:
            raw = builder.build(r)
            total += len(raw)
        fast = time.process_time() - t0
        ids = {builder.parts(r).message_id for r in recipients[:1000]}
        assert len(ids) == min(1000, len(recipients))

        t0 = time.process_time()
        for r in recipients[: args.naive]:
            values = prepared.values(r)
            html, text = prepared.render_full(r, values)
            parts = builder.parts(r)
            reference_message(
                type(parts)(
                    parts.subject,
                    parts.from_,
                    parts.to,
                    parts.reply_to,
                    html,
                    text,
                    parts.headers,
                    parts.message_id,
                ),
                r,
            )
        naive = time.process_time() - t0

    fast_rate = len(recipients) / fast
    naive_rate = args.naive / naive
    html_kb = len(prepared.html(recipients[0]).encode()) / 1024
    print(
        f"issue: {len(issue.articles)} articles, HTML {html_kb:.1f} KB, "
        f"prepare (Jinja for every variant, premailer {runs}x, cold process) {prep * 1000:.0f} ms"
    )
    print(f"after an edit: prepare and check again (warm process) {edit * 1000:.0f} ms")
    print(
        f"fast path : {len(recipients):>6} messages in {fast:6.2f} s = {fast_rate:8.0f} msg/s "
        f"(avg {total / len(recipients) / 1024:.1f} KB each)"
    )
    print(
        f"naive path: {args.naive:>6} messages in {naive:6.2f} s = {naive_rate:8.1f} msg/s "
        "(Jinja + premailer + email package per recipient)"
    )
    print(f"ratio     : {fast_rate / naive_rate:.0f}x")


if __name__ == "__main__":
    main()
