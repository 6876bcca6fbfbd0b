"""Every command has help and a page in docs/; what docs/ mentions exists; settings are documented.

The command tree is walked through click itself, so commands added later are
checked the same way: a page must mention each, and each `digest ...` line or
code span in docs/ must name real commands and options.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from digest.cli import main

ROOT = Path(__file__).parent.parent
PAGES = {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md"))}
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str = "digest") -> list[tuple[str, click.Command]]:
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"{prefix} {name} cannot be loaded"
        path = f"{prefix} {name}"
        found.append((path, command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, path))
    return found


COMMANDS = _commands(main)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_command_has_help(path: str, command: click.Command) -> None:
    assert (command.help or "").strip(), f"{path} has no help text"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_command_has_a_page(path: str, command: click.Command) -> None:
    # In running text as `digest x ...`, or at the start of a line in an example.
    pattern = rf"(`|^\s*(\$ )?){re.escape(path)}(?![\w-])"
    pages = [name for name, text in PAGES.items() if re.search(pattern, text, re.M)]
    assert pages, f"{path} is not mentioned on any page in docs/"


def mentions(text: str) -> list[str]:
    """The `digest ...` command lines of a Markdown text: code spans, and lines of code blocks."""
    found: list[str] = []
    in_block = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            command = re.sub(r"^\s*(\$ )?", "", line)
            if command.startswith("digest "):
                found.append(command.split("  #")[0])
        found.extend(m for m in re.findall(r"`(digest [^`]+)`", line))
    return found


GLOBAL_OPTIONS = {"-C", "--now", "--help", "-h", "--version"}


def problems(line: str) -> list[str]:
    """What in one `digest ...` line does not exist in the command tree."""
    try:
        words = shlex.split(line.replace("|", " "), comments=False)
    except ValueError:
        words = line.split()
    command: click.Command = main
    path = "digest"
    descending = True
    found = []
    rest = iter(words[1:])
    for word in rest:
        if word in ("-C", "--now"):  # the global options that take a value
            next(rest, None)
            continue
        word = word.strip("[]().,;:…")
        if not word or word in ("...", "&&", ">", "<", "\\"):
            if word in ("&&",):
                break
            continue
        if word.startswith("-") and len(word) > 1 and not word[1:2].isdigit():
            name = word.split("=")[0]
            known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
            if name not in known and name not in GLOBAL_OPTIONS:
                found.append(f"{path} has no option {name} (in `{line}`)")
            continue
        if descending and isinstance(command, click.Group):
            sub = command.get_command(click.Context(command), word)
            if sub is not None:
                command, path = sub, f"{path} {word}"
                continue
            if word.isupper():  # a placeholder such as COMMAND: nothing more to check
                return found
            if not command.invoke_without_command and not any(
                isinstance(p, click.Argument) for p in command.params
            ):
                found.append(f"{path} has no command {word!r} (in `{line}`)")
        descending = False
    return found


MENTIONS = sorted({(name, m) for name, text in PAGES.items() for m in mentions(text)})


@pytest.mark.parametrize(("page", "line"), MENTIONS, ids=[f"{p}: {m}" for p, m in MENTIONS])
def test_what_docs_mention_exists(page: str, line: str) -> None:
    assert not problems(line), f"docs/{page}: " + "; ".join(problems(line))


def test_the_checker_catches_what_does_not_exist() -> None:
    assert problems("digest issue new --date DATE") == []
    assert problems("digest -C /srv/news send --due") == []
    assert problems("digest issue frobnicate") != []
    assert problems("digest add URL --colour red") != []
    assert problems("digest frobnicate") != []


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_page_opens_with_a_title_and_a_two_line_summary(page: str) -> None:
    lines = PAGES[page].splitlines()
    assert lines[0].startswith("# "), f"docs/{page} does not open with a title"
    assert lines[1] == "" and lines[2].strip() and lines[3].strip() and lines[4] == "", (
        f"docs/{page}: the title is not followed by a two-line summary and a blank line"
    )


def test_readme_links_every_page() -> None:
    for name in PAGES:
        assert f"docs/{name}" in README, f"README.md does not link docs/{name}"


def test_every_setting_is_in_the_config_template() -> None:
    import dataclasses

    from digest import config
    from digest.workspace import default_config_text

    text = default_config_text()

    def keys(cls: type) -> list[str]:
        out = []
        for f in dataclasses.fields(cls):
            if f.metadata.get("internal"):
                continue
            if dataclasses.is_dataclass(f.type) or isinstance(f.default_factory, type):
                out.extend(keys(f.default_factory))  # type: ignore[arg-type]
            else:
                out.append(str(f.metadata.get("key", f.name)))
        return out

    for key in keys(config.Config):
        assert f"\n{key} = " in text, f"setting {key} is not in digest/data/digest.toml"


def test_every_check_rule_is_in_the_commands_table() -> None:
    from digest.check import RULES

    page = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (.+?) \| (error|warning|info|error / warning) \|", page, re.M)
    documented = {code for cell, _ in rows for code in re.findall(r"`([a-z-]+)`", cell)}
    missing = [r.code for r in RULES if r.code not in documented]
    assert not missing, f"check codes missing from the table in docs/commands.md: {missing}"
