"""README.md's quickstart, run as written: from `digest init` to a send and `digest serve`.

Each `digest` line of the quickstart's shell blocks is run in order (the article URL
pointed at the loopback sample site, the browser preview and the blocking server left
to their own tests); the steps written in words (fill in digest.toml, write the subject)
are done as the editor would.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from digest.cli import main
from digest.samples import SampleSite

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
NOW = "2026-12-01T09:00:00+00:00"  # a Tuesday: the next slot is Friday 2026-12-04


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
            # step 2, in words: fill in digest.toml
            config = root / "digest.toml"
            text = config.read_text(encoding="utf-8")
            config.write_text(
                text.replace('postal_address = ""', 'postal_address = "1 Press Lane"', 1),
                encoding="utf-8",
            )
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
