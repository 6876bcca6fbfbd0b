"""Start-up time of the commands that must stay quick, and what each one imports.

    python benchmarks/startup_bench.py [--runs 7]

Runs each command in a fresh process against a new workspace (made by
``digest init`` in a temporary folder) and prints the best and median wall
time and the best CPU time (user + system, steadier on a busy machine), next
to ``python -c pass`` for the interpreter's own start. Then, from
one ``python -X importtime`` run each, which of the heavy libraries it loaded.
Targets: ``digest --help`` and a ``digest send --due`` with nothing due under
0.3 s; neither loads the web stack, premailer, SQLAlchemy, httpx or feedparser.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("starlette", "uvicorn", "premailer", "sqlalchemy", "httpx", "feedparser", "jinja2", "lxml")
NOW = "2026-12-01T10:00:00Z"  # a Tuesday: nothing is due
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "digest --help": ["-m", "digest", "--help"],
    "digest send --due (nothing due)": ["-m", "digest", "--now", NOW, "send", "--due"],
    "digest issue list": ["-m", "digest", "issue", "list"],
    "digest schedule": ["-m", "digest", "--now", NOW, "schedule"],
}


# As a user runs it: with bytecode cached (a first, uncounted run writes it).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(args: list[str], cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *extra, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=ENV,
    )


def loaded(importtime: str) -> list[str]:
    """The top-level packages named in ``-X importtime`` output."""
    names = set()
    for line in importtime.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return [name for name in HEAVY if name in names]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        subprocess.run(
            [sys.executable, "-m", "digest", "init", str(root)], check=True, capture_output=True
        )
        print(f"{'command':<34} {'wall best':>9} {'median':>7} {'cpu best':>8}  heavy imports")
        for label, command in COMMANDS.items():
            walls, cpus = [], []
            run(command, root)  # warm-up: bytecode and the file cache
            for _ in range(args.runs):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                run(command, root)
                walls.append(time.perf_counter() - start)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            heavy = loaded(run(command, root, "-X", "importtime").stderr)
            print(
                f"{label:<34} {min(walls):>8.3f}s {statistics.median(walls):>6.3f}s "
                f"{min(cpus):>7.3f}s  {', '.join(heavy) or '-'}"
            )


if __name__ == "__main__":
    main()
