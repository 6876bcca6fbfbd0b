"""How our bounce classification agrees with sisimai's on its whole labelled set (held out).

    git clone https://github.com/sisimai/p5-sisimai /tmp/p5-sisimai
    python benchmarks/bounce_corpus.py /tmp/p5-sisimai [--list] [--selection]

The corpus in ``tests/fixtures/bounces/corpus/`` is a fixed selection from sisimai's
public set of bounces (``set-of-emails/maildir/bsd/``, BSD 2-Clause): the first three
labelled messages of each mail system. The rest of the set is our held-out check: rules
tuned on the corpus must not lose ground on messages they were not tuned on. The set is
not committed (3.6 MB, 589 messages); this script reads it from a checkout of sisimai.

Each message's expected class comes from sisimai's own test tables (``t/*-lhost-*.t``,
``t/*-rhost-*.t``, ``t/89x-*.t``: per recipient, the status, reply code, reason and
whether sisimai calls it a hard bounce), mapped to ours the way the corpus manifest is:
sisimai's hard bounces are ``hard``; its other failures ``soft``; ``feedback`` by
Feedback-Type (abuse and fraud ``complaint``, opt-out ``unsubscribe``, others
``ignored``); ``vacation`` and ``delivered`` ``ignored``. A message agrees when the set
of classes we read for its recipients is the set expected; a reader is *wrongly
suppressed* when we read hard or complaint where sisimai reads neither.

Prints the figures for the whole labelled set, for the messages our corpus holds and
for the held-out rest (the labelled messages the corpus does not hold). ``--list`` adds
every disagreement (``*`` marks the corpus's); ``--selection`` prints the files the
corpus rule picks (to check the fixture against the rule).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from digest.send.intake import reports  # noqa: E402

SUPPRESSING = {"hard", "complaint"}
CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "bounces" / "corpus"
_ENGINE = re.compile(r"my \$enginename\s*=\s*'([^']+)'")
_ENTRY = re.compile(r"^\s*'(\d+)'\s*=>")
_RECIPIENT = re.compile(
    r"\[\s*'([^']*)'\s*,\s*'([^']*)'\s*,\s*'([^']*)'\s*,\s*(\d)(?:\s*,\s*'([^']*)')?\s*\]"
)
NOT_LHOST = ("ARF", "RFC3464", "RFC3834")


@dataclass(frozen=True)
class Labelled:
    file: str
    system: str
    expected: frozenset[str]
    reasons: str


def expected_class(reason: str, hard: str, feedback: str) -> str:
    if reason == "feedback":
        if feedback in ("abuse", "fraud"):
            return "complaint"
        if feedback in ("opt-out", "opt-out-list"):
            return "unsubscribe"
        return "ignored"
    if reason in ("vacation", "delivered"):
        return "ignored"
    return "hard" if hard == "1" else "soft"


def labelled(checkout: Path) -> list[Labelled]:
    """Every message of set-of-emails/maildir/bsd that a test table labels."""
    out = []
    bsd = checkout / "set-of-emails" / "maildir" / "bsd"
    for table in sorted((checkout / "t").glob("*.t")):
        text = table.read_text(encoding="utf-8", errors="replace")
        engine = _ENGINE.search(text)
        if engine is None:
            continue
        name = engine.group(1)
        if name in NOT_LHOST:
            prefix = name.lower()
        else:
            prefix = ("rhost-" if "-rhost-" in table.name else "lhost-") + name.lower()
        entries: dict[str, list[tuple[str, ...]]] = {}
        current = ""
        for line in text.splitlines():
            if line.lstrip().startswith("#"):
                continue
            started = _ENTRY.match(line)
            if started:
                current = started.group(1)
                entries[current] = []
            if current:
                entries[current].extend(_RECIPIENT.findall(line))
            if line.strip().startswith("};"):
                current = ""
        for index, recipients in entries.items():
            path = bsd / f"{prefix}-{int(index):02d}.eml"
            if not recipients or not path.is_file():
                continue
            expected = frozenset(expected_class(r[2], r[3], r[4]) for r in recipients)
            reasons = "+".join(
                r[2] if r[2] != "feedback" else f"feedback/{r[4]}" for r in recipients
            )
            out.append(Labelled(path.name, prefix, expected, reasons))
    return out


def selection(entries: list[Labelled]) -> set[str]:
    """The corpus rule: the first three labelled messages of each mail system."""
    chosen: set[str] = set()
    for system in {e.system for e in entries}:
        mine = sorted(e.file for e in entries if e.system == system)
        chosen.update(mine[:3])
    return chosen


def in_corpus() -> set[str]:
    """The files our corpus holds (its MANIFEST.tsv): the rest of the set is held out."""
    manifest = CORPUS / "MANIFEST.tsv"
    lines = manifest.read_text(encoding="utf-8").splitlines()
    return {line.split("\t")[0] for line in lines if line and not line.startswith("#")}


def measure(checkout: Path, entries: list[Labelled]) -> dict[str, tuple[frozenset[str], str]]:
    """What we read for each message (or the exception it raised)."""
    bsd = checkout / "set-of-emails" / "maildir" / "bsd"
    out = {}
    for entry in entries:
        try:
            out[entry.file] = (frozenset(reports.classes((bsd / entry.file).read_bytes())), "")
        except Exception as exc:  # noqa: BLE001 - a crash is a figure
            out[entry.file] = (frozenset(), f"{type(exc).__name__}: {exc}")
    return out


def figures(name: str, entries: list[Labelled], read: dict[str, tuple[frozenset[str], str]]) -> str:
    crashes = sum(1 for e in entries if read[e.file][1])
    disagree = sum(1 for e in entries if read[e.file][0] != e.expected)
    wrongly = sum(
        1
        for e in entries
        if (read[e.file][0] & SUPPRESSING and not e.expected & SUPPRESSING)
        or "complaint" in read[e.file][0] - e.expected
    )
    agreement = 100 * (1 - disagree / len(entries)) if entries else 0.0
    return (
        f"{name}: {len(entries)} messages from {len({e.system for e in entries})} mail systems: "
        f"{agreement:.1f}% agreement, {wrongly} wrongly suppressed, {crashes} crashes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkout", type=Path, help="a checkout of sisimai/p5-sisimai")
    parser.add_argument("--list", action="store_true", help="list every disagreement")
    parser.add_argument("--selection", action="store_true", help="print the corpus selection")
    args = parser.parse_args()
    entries = labelled(args.checkout)
    if not entries:
        sys.exit(f"{args.checkout}: no labelled messages (is it a checkout of p5-sisimai?)")
    if args.selection:
        print("\n".join(sorted(selection(entries))))
        return
    chosen = in_corpus()
    read = measure(args.checkout, entries)
    print(figures("all labelled", entries, read))
    print(figures("in the corpus", [e for e in entries if e.file in chosen], read))
    print(figures("held out", [e for e in entries if e.file not in chosen], read))
    if args.list:
        for entry in entries:
            got, crash = read[entry.file]
            if got != entry.expected or crash:
                mark = "*" if entry.file in chosen else " "
                print(
                    f"{mark} {entry.file}\twe read {'+'.join(sorted(got)) or crash}; "
                    f"sisimai: {entry.reasons} ({'+'.join(sorted(entry.expected))})"
                )


if __name__ == "__main__":
    main()
