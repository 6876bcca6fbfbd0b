"""The corpus of real bounces: every message gets the class an established classifier gives.

tests/fixtures/bounces/corpus/ holds real bounce, complaint and auto-reply messages from
many mail systems (see its README.md and MANIFEST.tsv: file, mail system, expected class,
sisimai's reason, source, licence). The expected class is the reason sisimai assigns
(its published test tables), mapped to ours: its hard-bounce reasons are hard, its
other failure reasons soft, feedback by Feedback-Type (abuse and fraud a complaint,
opt-out an unsubscribe, anything else nothing), vacation and delivered nothing.

A message agrees when the set of classes we read for its recipients is the set
expected. A reader is *wrongly suppressed* when we read hard or complaint where the
reference reads neither. The figures are in docs/bounces.md; the messages we read
otherwise than the reference are listed in DISAGREEMENTS.tsv with why, so an
improvement or a regression both show here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from digest.send.intake import reports

CORPUS = Path(__file__).parent / "fixtures" / "bounces" / "corpus"
DOCS = Path(__file__).parent.parent / "docs" / "bounces.md"
SUPPRESSING = {"hard", "complaint"}


@dataclass(frozen=True)
class Entry:
    file: str
    system: str
    expected: frozenset[str]
    reason: str
    source: str
    licence: str


def manifest() -> list[Entry]:
    rows = []
    for line in (CORPUS / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        file, system, expected, reason, source, licence = line.split("\t")
        rows.append(Entry(file, system, frozenset(expected.split("+")), reason, source, licence))
    return rows


def run() -> tuple[dict[str, frozenset[str]], dict[str, str]]:
    """What we read for each message, and the messages that raised."""
    read: dict[str, frozenset[str]] = {}
    crashed: dict[str, str] = {}
    for entry in manifest():
        try:
            read[entry.file] = frozenset(reports.classes((CORPUS / entry.file).read_bytes()))
        except Exception as exc:  # noqa: BLE001 - a crash is a figure of the corpus
            crashed[entry.file] = f"{type(exc).__name__}: {exc}"
    return read, crashed


def known_disagreements() -> dict[str, str]:
    out = {}
    for line in (CORPUS / "DISAGREEMENTS.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            file, _, why = line.partition("\t")
            out[file] = why
    return out


def test_the_manifest_lists_every_message_with_source_and_licence() -> None:
    entries = manifest()
    files = {path.name for path in CORPUS.glob("*.eml")}
    assert {e.file for e in entries} == files
    assert len(entries) >= 100
    assert len({e.system for e in entries}) >= 25
    for entry in entries:
        assert (
            entry.source
            and entry.licence
            and entry.expected
            <= {
                "hard",
                "soft",
                "complaint",
                "unsubscribe",
                "ignored",
            }
        ), entry.file


def test_the_corpus_figures() -> None:
    entries = manifest()
    read, crashed = run()
    assert crashed == {}
    disagree = {e.file for e in entries if read[e.file] != e.expected}
    wrongly = {
        e.file
        for e in entries
        if read[e.file] & SUPPRESSING
        and not e.expected & SUPPRESSING
        or "complaint" in read[e.file] - e.expected
    }
    listed = known_disagreements()
    assert disagree == set(listed), "update DISAGREEMENTS.tsv (and the figures in the docs)"
    agreement = 1 - len(disagree) / len(entries)
    docs = DOCS.read_text(encoding="utf-8")
    figures = re.search(
        r"(\d+) messages from (\d+) mail systems: (\d+\.\d)% agreement, "
        r"(\d+) readers? wrongly suppressed, (\d+) crash",
        docs,
    )
    assert figures is not None, "docs/bounces.md must give the corpus figures"
    assert figures.groups() == (
        str(len(entries)),
        str(len({e.system for e in entries})),
        f"{agreement * 100:.1f}",
        str(len(wrongly)),
        "0",
    )
