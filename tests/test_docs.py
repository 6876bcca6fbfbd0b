"""Every command has help text and is in the README; every setting is documented."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from digest.cli import main

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


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
def test_command_is_in_readme(path: str, command: click.Command) -> None:
    # In running text as `digest x ...`, or at the start of a line in an example.
    pattern = rf"(`|^\s*(\$ )?){re.escape(path)}(?![\w-])"
    assert re.search(pattern, README, re.M), f"{path} is not in README.md"


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


def test_every_check_rule_is_in_the_readme_table() -> None:
    from digest.check import RULES

    rows = re.findall(r"^\| (.+?) \| (error|warning|error / warning) \|", README, re.M)
    documented = {code for cell, _ in rows for code in re.findall(r"`([a-z-]+)`", cell)}
    missing = [r.code for r in RULES if r.code not in documented]
    assert not missing, f"check codes missing from README's table: {missing}"
