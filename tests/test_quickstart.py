"""README.md's quickstart, run as written: from `digest init` to a send and `digest serve`.

Each `digest` line of the quickstart's shell blocks is run in order (the article URL
pointed at the loopback sample site, the browser preview and the blocking server left
to their own tests); the steps written in words (fill in digest.toml, write the subject)
are done as the editor would.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from click.testing import CliRunner
from starlette.applications import Starlette

from digest.cli import main
from digest.samples import SampleSite
from digest.web.public_server import create_public_app
from digest.workspace import open_workspace

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
NOW = "2026-12-01T09:00:00+00:00"  # a Tuesday: the next slot is Friday 2026-12-04
STEP_2 = README.split("\n2. ", 1)[1].split("\n3. ", 1)[0]
TRIAL_URL = "http://127.0.0.1:8000"


def sign_up_over_http(root: Path, env: dict[str, str]) -> int:
    """GET the form and POST it back with its cookie over plain http, as a client other
    than a browser does (a Secure cookie would not come back: "The form had expired")."""
    with _environment(env):
        app = create_public_app(open_workspace(root))
        assert isinstance(app, Starlette)

        async def go() -> int:
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            # The server's lifespan, as uvicorn runs it: its end sends the confirmation
            # the form handed to the mailer's worker before the test looks for it.
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=transport, base_url=TRIAL_URL) as client,
            ):
                form = await client.get("/subscribe")
                token = re.search(r'name="form_token" value="([^"]+)"', form.text)
                assert token, form.text
                fields = {"form_token": token.group(1), "email": "reader@example.org"}
                answer = await client.post("/subscribe", data={**fields, "consent": "yes"})
                assert "expired" not in answer.text, answer.text
                return answer.status_code

        return asyncio.run(go())


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def quickstart_lines() -> list[str]:
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for line in block.splitlines():
            command = line.strip().split("  #")[0].strip()
            if command:
                lines.append(command)
    return lines


def test_the_quickstart_works_as_written(tmp_path: Path, sample_site: SampleSite) -> None:
    lines = quickstart_lines()
    assert lines[0].startswith("pip install .")
    runner = CliRunner()
    env = {"DIGEST_NOW": NOW}
    root = tmp_path

    def run(words: list[str], input: str | None = None) -> str:
        result = runner.invoke(
            main, ["-C", str(root), *words], env=env, input=input, catch_exceptions=False
        )
        assert result.exit_code == 0, f"digest {' '.join(words)}:\n{result.output}"
        return result.output

    ran = []
    for line in lines[1:]:
        if line.startswith("digest init"):
            assert line == "digest init weekly && cd weekly"
            root = root / "weekly"
            made = runner.invoke(main, ["init", str(root)], env=env, catch_exceptions=False)
            assert made.exit_code == 0, made.output
            # step 2, in words: fill in digest.toml, for a trial on this machine over http
            assert f'`base_url = "{TRIAL_URL}"`' in " ".join(STEP_2.split())
            config = root / "digest.toml"
            text = config.read_text(encoding="utf-8")
            text = text.replace('postal_address = ""', 'postal_address = "1 Press Lane"', 1)
            text = re.sub(
                r'^base_url = "[^"]*"', f'base_url = "{TRIAL_URL}"', text, count=1, flags=re.M
            )
            config.write_text(text, encoding="utf-8")
        elif line.startswith("export DIGEST_SECRET_KEY="):
            assert line == 'export DIGEST_SECRET_KEY="$(digest secret)"'
            env["DIGEST_SECRET_KEY"] = run(["secret"]).strip()
        elif line.startswith("ls outbox/"):
            folder = root / line.split()[1]
            assert [p.suffix for p in folder.iterdir()] == [".eml"]
        elif line == "digest preview":
            continue  # a live browser page: tests/test_preview*.py
        elif line == "digest serve":
            page = run(["serve", "--get", "/subscribe"])
            assert page.startswith("200 OK")
            assert run(["serve", "--get", "/archive/2026-12-04"]).startswith("200 OK")
            # a reader signs up at http://127.0.0.1:8000/subscribe, as curl or httpx would
            assert sign_up_over_http(root, env) == 200
            assert len(list((root / "outbox" / "confirmations").glob("*.eml"))) == 1
        else:
            words = shlex.split(line)
            assert words[0] == "digest", line
            words = words[1:]
            if words[0] == "add":
                words[1] = f"{sample_site.url}/articles/gas-contract.html"
            out = run(words, input="y\n" if words == ["send"] else None)
            if words == ["issue", "new"]:
                assert "issues/2026-12-04.yaml" in out
                continue
            if words[0] == "add":
                # step 3, in words: write the subject
                path = root / "issues" / "2026-12-04.yaml"
                text = path.read_text(encoding="utf-8")
                path.write_text(
                    re.sub(r'^subject: ""', 'subject: "Our first issue"', text, flags=re.M),
                    encoding="utf-8",
                )
        ran.append(line.split("  ")[0])
    assert "digest send" in ran and "digest serve" in ran and "digest issue ready" in ran
