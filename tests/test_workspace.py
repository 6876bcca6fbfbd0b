from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from digest import config as config_mod
from digest.cli import main
from digest.errors import ConfigError, WorkspaceError
from digest.workspace import find_workspace, init_workspace


def test_init_makes_every_folder_and_a_config_of_defaults(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["init", str(tmp_path / "news")])
    assert result.exit_code == 0, result.output
    root = tmp_path / "news"
    for folder in ("issues", "templates", "subscribers", "outbox"):
        assert (root / folder).is_dir()
    assert "*" in (root / "subscribers" / ".gitignore").read_text()
    loaded = config_mod.load(root / "digest.toml")
    assert loaded == config_mod.defaults()


def test_init_never_overwrites(tmp_path: Path) -> None:
    init_workspace(tmp_path)
    (tmp_path / "digest.toml").write_text('[newsletter]\nname = "Mine"\n')
    result = CliRunner().invoke(main, ["init", str(tmp_path)])
    assert result.exit_code == 1
    assert "never overwrites" in result.output
    assert (tmp_path / "digest.toml").read_text() == '[newsletter]\nname = "Mine"\n'


def test_init_with_a_name(tmp_path: Path) -> None:
    init_workspace(tmp_path, name='The "Friday" Letter')
    assert config_mod.load(tmp_path / "digest.toml").newsletter.name == 'The "Friday" Letter'


def test_found_upward_like_git(tmp_path: Path) -> None:
    init_workspace(tmp_path)
    deep = tmp_path / "issues" / "a" / "b"
    deep.mkdir(parents=True)
    assert find_workspace(start=deep).root == tmp_path.resolve()


def test_explicit_folder_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init_workspace(tmp_path / "w")
    assert find_workspace(explicit=tmp_path / "w").root == (tmp_path / "w").resolve()
    monkeypatch.setenv("DIGEST_WORKSPACE", str(tmp_path / "w"))
    assert find_workspace(start=Path("/")).root == (tmp_path / "w").resolve()


def test_outside_a_workspace_suggests_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["issue", "list"])
    assert result.exit_code == 1
    assert "digest init" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(WorkspaceError):
        find_workspace(start=tmp_path)


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ('[sender]\nkind = "smpt"\n', "sender.kind must be one of outbox, smtp, http, null"),
        ('[newsletter]\nnmae = "x"\n', "newsletter.nmae is not a setting"),
        ('[schedule]\ntimezone = "Mars/Olympus"\n', "schedule.timezone must be an IANA time zone"),
        ('[schedule]\ntime = "7am"\n', "schedule.time must be HH:MM"),
        ('[sender.smtp]\nport = "25"\n', "sender.smtp.port must be a whole number"),
        ('[newsletter]\nsections = "News"\n', "newsletter.sections must be a list of strings"),
        ("[newsletter\n", "fix the TOML syntax"),
        (
            '[sender]\nkind = "smtp"\n[sender.smtp]\nhost = "mx.example.com"\nsecurity = "none"\n',
            '"none" is allowed only for a loopback host',
        ),
    ],
)
def test_bad_config_is_one_line_with_file_line_and_key(
    tmp_path: Path, snippet: str, expected: str
) -> None:
    path = tmp_path / "digest.toml"
    path.write_text("# comment\n" + snippet, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        config_mod.load(path)
    message = str(info.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_bad_config_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_text('[newsletter]\nname = "x"\n\n[sender]\nrate = 1\nkind = "pigeon"\n')
    with pytest.raises(ConfigError, match=r"digest.toml:6: sender.kind"):
        config_mod.load(path)


def test_cli_reports_a_bad_config_without_traceback(tmp_path: Path) -> None:
    init_workspace(tmp_path)
    with (tmp_path / "digest.toml").open("a") as handle:
        handle.write("\n[extra]\nthing = 1\n")
    result = CliRunner().invoke(main, ["-C", str(tmp_path), "issue", "list"])
    assert result.exit_code == 1
    assert "extra is not a setting" in result.output
    assert "Traceback" not in result.output


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert "digest, version" in result.output


def test_secret_from_environment_or_a_private_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest.workspace import open_workspace

    init_workspace(tmp_path)
    ws = open_workspace(tmp_path)
    monkeypatch.delenv("DIGEST_TEST_KEY", raising=False)
    made = ws.secret("DIGEST_TEST_KEY")
    assert len(made) >= 32
    assert ws.secret("DIGEST_TEST_KEY") == made
    key_file = tmp_path / "subscribers" / ".keys" / "DIGEST_TEST_KEY"
    assert key_file.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("DIGEST_TEST_KEY", "from-env-Vq3Lz8Rk1Nw6Tp0Ys4Hd9Jf2")
    assert ws.secret("DIGEST_TEST_KEY") == b"from-env-Vq3Lz8Rk1Nw6Tp0Ys4Hd9Jf2"
