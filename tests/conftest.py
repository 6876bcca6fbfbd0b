"""Shared fixtures: a workspace in tmp_path and a CLI runner.

Fixtures of one subsystem live in ``tests/_<noun>_fixtures.py`` and are
imported here, so that each stays beside the tests that use it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _bounce_fixtures import *  # noqa: F403
from _browser_fixtures import *  # noqa: F403
from _dns_fixtures import *  # noqa: F403
from _email_fixtures import *  # noqa: F403
from _public_fixtures import *  # noqa: F403
from _render_fixtures import *  # noqa: F403
from _send_fixtures import *  # noqa: F403
from _site_fixtures import *  # noqa: F403
from _store_fixtures import *  # noqa: F403
from click.testing import CliRunner, Result

from digest import clock
from digest.cli import main
from digest.workspace import Workspace, init_workspace, open_workspace

FIXTURES = Path(__file__).parent / "fixtures"

# "Now" for every test: a Wednesday morning, two days before the Friday issue
# of 2026-12-04 that the tests are written against. Pinned in-process and, via
# DIGEST_NOW, for every subprocess a test starts, so no expectation depends on
# the day the suite runs (CI runs it again under libfaketime at another date).
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's own workspace, database or clock."""
    for name in ("DIGEST_WORKSPACE", "DIGEST_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIGEST_NOW", NOW.isoformat())
    clock.set_now(NOW, running=True)
    yield
    clock.set_now(None)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A fresh workspace made by `digest init`, with a postal address set."""
    root = tmp_path / "ws"
    init_workspace(root)
    config = root / "digest.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace('postal_address = ""', 'postal_address = "1 Press Lane, Springfield"', 1)
    config.write_text(text, encoding="utf-8")
    return open_workspace(root)


class Cli:
    """Runs `digest -C WORKSPACE ...` in-process and returns click's Result."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runner = CliRunner()

    def __call__(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        return self.runner.invoke(
            main, ["-C", str(self.root), *args], input=input, env=env, catch_exceptions=False
        )


@pytest.fixture
def cli(workspace: Workspace) -> Cli:
    return Cli(workspace.root)


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@contextmanager
def running(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """The process, killed if still running and its pipes closed, whatever the test does."""
    with process:
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
