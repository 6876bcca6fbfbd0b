"""Settings are checked when digest.toml is loaded: one line naming the file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.config import load
from digest.errors import ConfigError
from digest.workspace import Workspace

BASE = """\
[newsletter]
name = "The Brief"
from = "Brief <brief@example.com>"

[privacy]
policy_url = "https://example.com/privacy"

[sender]
kind = "smtp"
rate = 0.0
connections = 4

[sender.smtp]
host = "127.0.0.1"
port = 587
timeout = 30.0

[sender.http]
timeout = 30.0

[web]
confirm_expiry_days = 7
rate_limit_per_minute = 10
"""


def write(tmp_path: Path, old: str, new: str) -> Path:
    assert old in BASE
    path = tmp_path / "digest.toml"
    path.write_text(BASE.replace(old, new, 1), encoding="utf-8")
    return path


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_the_base_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_text(BASE, encoding="utf-8")
    config = load(path)
    assert config.sender.smtp.port == 587 and config.privacy.policy_url.startswith("https")


@pytest.mark.parametrize(
    ("old", "new", "key", "says"),
    [
        ("port = 587", "port = 0", "sender.smtp.port", "must be from 1 to 65535, not 0"),
        ("port = 587", "port = 70000", "sender.smtp.port", "must be from 1 to 65535, not 70000"),
        ("port = 587", 'port = "587"', "sender.smtp.port", "must be a whole number"),
        (
            "timeout = 30.0\n\n[sender.http",
            "timeout = 0\n\n[sender.http",
            "sender.smtp.timeout",
            "greater than 0",
        ),
        (
            "timeout = 30.0\n\n[sender.http",
            "timeout = -1.5\n\n[sender.http",
            "sender.smtp.timeout",
            "greater than 0",
        ),
        (
            "timeout = 30.0\n\n[web",
            "timeout = 0.0\n\n[web",
            "sender.http.timeout",
            "greater than 0",
        ),
        (
            "timeout = 30.0\n\n[sender.http",
            "timeout = nan\n\n[sender.http",
            "sender.smtp.timeout",
            "finite number",
        ),
        ("rate = 0.0", "rate = -2", "sender.rate", "must not be negative, not -2"),
        ("connections = 4", "connections = 0", "sender.connections", "at least 1, not 0"),
        (
            "confirm_expiry_days = 7",
            "confirm_expiry_days = 0",
            "web.confirm_expiry_days",
            "must be at least 1, not 0",
        ),
        (
            "rate_limit_per_minute = 10",
            "rate_limit_per_minute = -1",
            "web.rate_limit_per_minute",
            "must not be negative, not -1",
        ),
        (
            'policy_url = "https://example.com/privacy"',
            'policy_url = "http://example.com/privacy"',
            "privacy.policy_url",
            "must be an https:// or mailto: URL",
        ),
        (
            'policy_url = "https://example.com/privacy"',
            'policy_url = "javascript:alert(1)"',
            "privacy.policy_url",
            "must be an https:// or mailto: URL",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_file_line_and_key(
    tmp_path: Path, old: str, new: str, key: str, says: str
) -> None:
    path = write(tmp_path, old, new)
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message
    wrong_line = line_of(path, new.splitlines()[0])
    assert message.startswith(f"{path}:{wrong_line}: {key} "), message
    assert says in message


def test_a_mailto_policy_url_is_fine(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'policy_url = "https://example.com/privacy"',
        'policy_url = "mailto:privacy@example.com"',
    )
    assert load(path).privacy.policy_url == "mailto:privacy@example.com"


def test_the_cli_shows_the_line_without_a_traceback(workspace: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    config = workspace.config_path
    config.write_text(config.read_text().replace("port = 587", "port = 0", 1), encoding="utf-8")
    result = cli("send", "--test", "ed@example.com")
    assert result.exit_code != 0
    assert "sender.smtp.port must be from 1 to 65535, not 0" in result.output
    assert "Traceback" not in result.output
