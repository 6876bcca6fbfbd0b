"""The wheel carries the compiled catalogs: `pip install .` (not editable) speaks Russian.

The wheel is built from this checkout with the test environment's hatchling
(no build isolation: nothing is downloaded), installed into a fresh
environment of its own, and run from another folder; the libraries digest
needs come from the test environment through a path file, so that only
digest itself is the installed copy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.slow


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DIGEST_WORKSPACE")}
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_an_installed_wheel_renders_a_russian_issue_from_another_folder(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
        "-w", dist, ROOT,
    )  # fmt: skip
    [wheel] = dist.glob("digest-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for tag in ("ru", "uk", "de", "fr", "es", "pt_BR", "it", "pl", "ar"):
        assert f"digest/locale/{tag}/LC_MESSAGES/digest.mo" in names, tag
        assert f"digest/locale/{tag}/LC_MESSAGES/digest.po" in names, tag
    assert "digest/locale/digest.pot" in names

    fresh = tmp_path / "fresh"
    _run(sys.executable, "-m", "venv", "--without-pip", fresh)
    python = fresh / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel)
    site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    )
    (site / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(python, "-c", "import digest; print(digest.__file__)", cwd=elsewhere)
    assert Path(where.strip()).is_relative_to(site)

    digest = fresh / "bin" / "digest"
    _run(digest, "init", "weekly", "--name", "Еженедельник", "--language", "ru", cwd=elsewhere)
    (elsewhere / "weekly" / "issues" / "2026-12-04.yaml").write_text(
        'date: 2026-12-04\nsubject: "Выпуск"\nstatus: draft\narticles:\n'
        "- section: Новости\n  url: https://news.example.com/a\n"
        '  title: "Докеры остановили порт"\n  author: "Анна Петрова"\n',
        encoding="utf-8",
    )
    _run(digest, "-C", "weekly", "render", "2026-12-04", "--text", "out.txt", cwd=elsewhere)
    text = (elsewhere / "out.txt").read_text(encoding="utf-8")
    assert "пятница, 4 декабря 2026" in text and "Автор: Анна Петрова" in text
    assert "Отписаться:" in text and "Unsubscribe" not in text
