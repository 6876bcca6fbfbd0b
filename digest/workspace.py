"""Finding and creating a workspace: a folder holding ``digest.toml``.

A workspace is found the way git finds a repository: an explicit folder
(``-C DIR`` or ``DIGEST_WORKSPACE``), else the nearest folder upward from the
current one that holds ``digest.toml``.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from email.headerregistry import Address
from importlib import resources
from pathlib import Path

from digest import config as config_mod
from digest.atomic import write_text
from digest.config import CONFIG_NAME, Config
from digest.errors import ConfigError, WorkspaceError
from digest.languages import is_tag
from digest.tokens import Tokens, key_weakness
from digest.translations import catalog

SUBSCRIBERS_IGNORE = """\
# Personal data lives here: never commit it.
*
!.gitignore
"""
OUTBOX_IGNORE = """\
# Rendered messages carry subscribers' addresses: never commit them.
*
!.gitignore
"""


@dataclass(frozen=True)
class Workspace:
    root: Path
    config: Config

    @property
    def issues_dir(self) -> Path:
        return self.root / "issues"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def locale_dir(self) -> Path:
        """The workspace's own catalogs, over digest's: locale/<tag>/LC_MESSAGES/digest.po."""
        return self.root / config_mod.LOCALE_FOLDER

    @property
    def subscribers_dir(self) -> Path:
        return self.root / "subscribers"

    @property
    def outbox_dir(self) -> Path:
        return self.root / "outbox"

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def feeds_path(self) -> Path:
        return self.root / "feeds.yaml"

    @property
    def candidates_path(self) -> Path:
        return self.root / "candidates.json"

    @property
    def database_url(self) -> str:
        """``DIGEST_DATABASE_URL``, else ``[database] url``, else SQLite under subscribers/."""
        url = os.environ.get("DIGEST_DATABASE_URL") or self.config.database.url
        if not url:
            return f"sqlite:///{self.subscribers_dir / 'digest.db'}"
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            relative = url.removeprefix("sqlite:///")
            if relative and relative != ":memory:":
                return f"sqlite:///{self.root / relative}"
        return url

    def secret(self, env_name: str) -> bytes:
        """The secret in environment variable ``env_name``, else this workspace's own.

        A workspace on one machine needs no setup: the first use makes a random
        key in ``subscribers/.keys/ENV_NAME`` (git-ignored, mode 600). Several
        machines sharing one database must all set the variable to one value.
        """
        value = os.environ.get(env_name, "")
        if value:  # as it is: a pseudonym key is used byte for byte
            checked_key(value.strip().encode("utf-8"), env_name)
            return value.encode("utf-8")
        path = self.key_file(env_name)
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Written whole under a temporary name, then linked into place: a
            # process racing this one either makes the key or reads a whole one.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{env_name}.")
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(32))
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    pass
            finally:
                os.unlink(tmp)
        return checked_key(path.read_text(encoding="utf-8").strip().encode("utf-8"), str(path))

    def key_file(self, env_name: str) -> Path:
        """Where this workspace keeps its own key for ``env_name`` (made on first use)."""
        return self.subscribers_dir / ".keys" / env_name

    @property
    def exports_record(self) -> Path:
        """Which export files were written for whom, so that erasure can find them."""
        return self.subscribers_dir / ".exports.json"

    def previous_secrets(self) -> tuple[bytes, ...]:
        """Signing keys retired by a rotation that still verify links already mailed.

        From ``[web] previous_secret_keys_env`` (default DIGEST_PREVIOUS_SECRET_KEYS),
        separated by spaces, commas or newlines; never from a file.
        """
        name = self.config.web.previous_secret_keys_env
        text = os.environ.get(name, "") if name else ""
        keys = [key.encode("utf-8") for key in re.split(r"[\s,]+", text) if key]
        return tuple(
            checked_key(key, name if len(keys) == 1 else f"{name} (key {n} of {len(keys)})")
            for n, key in enumerate(keys, 1)
        )

    def tokens(self) -> Tokens:
        """The link and address signer: the signing key signs, retired keys still verify."""
        return Tokens(self.signing_key(), previous=self.previous_secrets())

    @property
    def signing_key_env(self) -> str:
        """The environment variable that holds the signing key (``[web] secret_key_env``)."""
        return self.config.web.secret_key_env or "DIGEST_SECRET_KEY"

    def signing_key(self, *, env_only: bool = False) -> bytes:
        """The one key that signs links in emails and checks them on the public pages.

        It is named by ``[web] secret_key_env``. Rendering and sending fall back to
        this workspace's own key (see :meth:`secret`); the public pages
        (``env_only``) need the variable itself, so every machine that signs or
        checks links holds the same value. Either way a weak key is refused
        (:func:`checked_key`), and so is a weak retired key still verifying links:
        whatever loads the one checks the others.
        """
        name = self.signing_key_env
        self.previous_secrets()
        if not env_only:
            return self.secret(name).strip()
        value = os.environ.get(name, "").strip()
        if not value:
            made = self.subscribers_dir / ".keys" / name
            if made.exists():
                # Mail already went out signed with the workspace's own key: keep it.
                raise ConfigError(
                    f"the environment variable {name} is not set; messages sent from this "
                    f'workspace were signed with the key in {made}: export {name}="$(cat {made})" '
                    "so their unsubscribe links keep working"
                )
            raise ConfigError(
                f"the environment variable {name} is not set: the public pages sign and check "
                f"links with it; make one with `digest secret` and export {name}=<that value> "
                "(the same value wherever digest sends mail)"
            )
        return checked_key(value.encode("utf-8"), name)

    def reload(self) -> Workspace:
        """The same folder with its config read again (after an edit)."""
        return open_workspace(self.root)


def checked_key(key: bytes, where: str) -> bytes:
    """``key`` as loaded from ``where`` (a variable or a file), or ConfigError if it is weak.

    Every key digest loads goes through here, whatever the command: the
    signing key, each retired one still verifying links, and the pseudonym key.
    """
    weakness = key_weakness(key)
    if weakness:
        raise ConfigError(
            f"the key in {where} {weakness}; replace it with a random one "
            "(`digest secret` makes a good one)"
        )
    return key


def outbox_file_name(subscriber_id: object) -> str:
    """A subscriber's file in an outbox folder: named by id, never by address."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", str(subscriber_id)) or "_"
    return f"{safe}.eml"


def open_workspace(root: Path) -> Workspace:
    root = root.resolve()
    if not (root / CONFIG_NAME).is_file():
        raise WorkspaceError(
            f"{root}: no {CONFIG_NAME} here; run `digest init {root}` to make a workspace"
        )
    return Workspace(root=root, config=config_mod.load(root / CONFIG_NAME))


def find_workspace(start: Path | None = None, explicit: str | Path | None = None) -> Workspace:
    """The workspace named by ``explicit`` or ``DIGEST_WORKSPACE``, else found upward."""
    named = explicit or os.environ.get("DIGEST_WORKSPACE")
    if named:
        path = Path(named).expanduser()
        if not path.is_dir():
            raise WorkspaceError(f"{path}: no such folder (from -C or DIGEST_WORKSPACE)")
        return open_workspace(path)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return open_workspace(folder)
    raise WorkspaceError(
        f"not inside a digest workspace (no {CONFIG_NAME} in {here} or above); "
        "run `digest init DIR` to make one, or pass -C DIR"
    )


def default_config_text(name: str | None = None, language: str | None = None) -> str:
    """The commented default digest.toml; ``name`` fills the name and From's display name,
    ``language`` the readers' language and the default sections, named in it."""
    text = resources.files("digest").joinpath("data/digest.toml").read_text(encoding="utf-8")
    values: list[tuple[str, str]] = []
    if name:
        name = " ".join(name.split())
        sender = Address(display_name=name, addr_spec=config_mod.Newsletter().from_address)
        values += [("name", _toml_string(name)), ("from", _toml_string(str(sender)))]
    if language:
        if not is_tag(language):
            raise WorkspaceError(
                f"--language {language!r} is not a language tag; write one like en, de, pt-BR or ar"
            )
        words = catalog(language)
        sections = ", ".join(_toml_string(words(s)) for s in config_mod.DEFAULT_SECTIONS)
        values += [("language", _toml_string(language)), ("sections", f"[{sections}]")]
    for key, value in values:
        line = f"{key} = {value}".replace("\\", "\\\\")
        text = re.sub(rf"^{key} = (\".*?\"|\[.*?\])(?=\s|$)", line, text, count=1, flags=re.M)
    return text


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def init_workspace(root: Path, name: str | None = None, language: str | None = None) -> list[Path]:
    """Create a workspace in ``root``; return the paths made. Never overwrites."""
    root = root.expanduser()
    if (root / CONFIG_NAME).exists():
        raise WorkspaceError(
            f"{root / CONFIG_NAME} already exists; digest init never overwrites a workspace"
        )
    config_text = default_config_text(name, language)
    made: list[Path] = []
    for folder in ("issues", "templates", "subscribers", "outbox"):
        path = root / folder
        if not path.exists():
            path.mkdir(parents=True)
            made.append(path)
    files = {
        root / CONFIG_NAME: config_text,
        root / "subscribers" / ".gitignore": SUBSCRIBERS_IGNORE,
        root / "outbox" / ".gitignore": OUTBOX_IGNORE,
        root / "templates" / "README.md": TEMPLATES_README,
    }
    for path, text in files.items():
        if not path.exists():
            write_text(path, text)
            made.append(path)
    return made


TEMPLATES_README = """\
# Templates

A file here replaces digest's built-in template of the same name; to change
only a part of one, extend it:

    {% extends "default:email.html" %}
    {% block footer %}{{ super() }}<p>Our own line.</p>{% endblock %}

`digest templates` lists the built-in names.
"""
