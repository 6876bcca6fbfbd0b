"""A real headless Chromium, and a real server for an app to point it at.

``browser`` is a Playwright Browser (one per test module) launched from the system's
Chromium (``DIGEST_TEST_CHROMIUM``, else ``/usr/bin/chromium``): Playwright's
own browser download cannot work on these machines. Where Chromium is absent
the browser tests skip with the reason, except on CI (``CI=true``), where
they fail: CI installs it, so a skip there would hide a broken setup.

``serve_app(app)`` runs any ASGI app under uvicorn on a free loopback port in
a thread and yields its base URL; ``browser_page`` is a fresh page per test.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def chromium_path() -> str | None:
    path = os.environ.get("DIGEST_TEST_CHROMIUM") or "/usr/bin/chromium"
    return path if Path(path).is_file() and os.access(path, os.X_OK) else None


def _on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if _on_ci():
        pytest.fail(f"{reason} (CI=true: browser tests must run on CI)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A Playwright Browser on the system's headless Chromium, one per test module.

    Not per session: Playwright's sync API keeps an asyncio loop marked as
    running while it is open, which would break ``asyncio.run`` in the tests
    of other modules.
    """
    path = chromium_path()
    if path is None:
        _unavailable(
            "no Chromium at DIGEST_TEST_CHROMIUM or /usr/bin/chromium "
            "(install Debian's `chromium` to run the browser tests)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is a test dependency
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def browser_page(browser: Any) -> Iterator[Any]:
    """A fresh page (its own context: no shared storage) at a desktop size."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def free_socket(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(64)
    return sock


@contextmanager
def serve_app(app: Any, *, timeout: float = 10.0) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port in a thread; yield its URL."""
    import uvicorn

    sock = free_socket()
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        log_level="warning",
        ws="none",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
