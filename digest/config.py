"""digest.toml -> frozen dataclasses.

Each table of the file is one dataclass below; a field's default is the
setting's default, and ``digest init`` writes the commented file in
``digest/data/digest.toml`` that shows every one of them. A wrong value or an
unknown key is a :class:`ConfigError` naming the file, the line, the key and
what is allowed.

Secrets never live in the file: a setting ending in ``_env`` names the
environment variable that holds the secret.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.errors import ConfigError
from digest.languages import is_tag
from digest.translations import N_, Catalog, catalog

CONFIG_NAME = "digest.toml"
LOCALE_FOLDER = "locale"  # a workspace's own catalogs: locale/<tag>/LC_MESSAGES/digest.po
# digest's own wording, translated into the newsletter's language. The English texts
# older workspaces have written out in digest.toml count as these defaults, so that
# changing the language changes them too.
DEFAULT_STATEMENT = N_(
    "Yes, send me %(name)s by email %(when)s. I can unsubscribe at any time with one click."
)
DEFAULT_WHY = N_("You get this email because you subscribed to %(name)s.")
LEGACY_STATEMENT = (
    "Yes, send me {name} by email every Friday. I can unsubscribe at any time with one click."
)
LEGACY_WHY = "You get this email because you subscribed to {name}."
# Translators: the sections a new newsletter starts with (`digest init --language`); the
# editor renames them at will.
DEFAULT_SECTIONS = (N_("News"), N_("Features"), N_("Analysis"), N_("Opinion"))
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SENDER_KINDS = ("outbox", "smtp", "http", "null")
SMTP_SECURITY = ("starttls", "tls", "none")
PROVIDERS = ("postmark", "sendgrid", "mailgun", "resend", "generic")
IMAP_AFTER = ("move", "delete")


def _choices(*allowed: str) -> dict[str, Any]:
    return {"choices": allowed}


def _at_least(low: float, high: float | None = None) -> dict[str, Any]:
    """A number from ``low`` (to ``high``), checked when the file is loaded."""
    return {"min": low, "max": high}


_POSITIVE: dict[str, Any] = {"above": 0}  # a number greater than zero


@dataclass(frozen=True)
class Newsletter:
    name: str = "The Weekly Brief"
    from_: str = field(default="The Weekly Brief <brief@example.com>", metadata={"key": "from"})
    reply_to: str = ""
    postal_address: str = ""
    base_url: str = "https://newsletter.example.com"
    language: str = "en"
    sections: tuple[str, ...] = DEFAULT_SECTIONS
    why: str = ""  # empty: digest's own line, in the newsletter's language
    manage_url: str = ""
    unsubscribe_mailto: str = ""
    list_id: str = ""
    feedback_id: str = ""

    @property
    def from_address(self) -> str:
        return parseaddr(self.from_)[1]

    @property
    def domain(self) -> str:
        return self.from_address.rpartition("@")[2] or "localhost"

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "newsletter"

    @property
    def list_id_value(self) -> str:
        """The List-Id (RFC 2919): configured, or ``slug.domain``."""
        return self.list_id or f"{self.slug}.{self.domain}"


@dataclass(frozen=True)
class Privacy:
    policy_url: str = "https://newsletter.example.com/privacy"
    policy_version: str = "2026-05-01"
    # "{name}" stands for the newsletter's name (filled in by Config); empty: digest's
    # own statement in the newsletter's language (Config.consent_statement).
    consent_statement: str = ""


@dataclass(frozen=True)
class Schedule:
    weekday: str = field(default="friday", metadata=_choices(*WEEKDAYS))
    time: str = "07:00"
    timezone: str = "UTC"
    grace: str = "6h"
    review_cutoff: str = ""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def weekday_index(self) -> int:
        return WEEKDAYS.index(self.weekday)

    @property
    def clock_time(self) -> dt.time:
        hours, minutes = self.time.split(":")
        return dt.time(int(hours), int(minutes))

    @property
    def grace_seconds(self) -> int:
        return parse_duration(self.grace)


@dataclass(frozen=True)
class Database:
    url: str = ""


@dataclass(frozen=True)
class Smtp:
    host: str = "127.0.0.1"
    port: int = field(default=587, metadata=_at_least(1, 65535))
    security: str = field(default="starttls", metadata=_choices(*SMTP_SECURITY))
    username_env: str = ""
    password_env: str = ""
    messages_per_connection: int = field(default=1000, metadata=_at_least(1))
    timeout: float = field(default=30.0, metadata=_POSITIVE)


@dataclass(frozen=True)
class Http:
    provider: str = field(default="postmark", metadata=_choices(*PROVIDERS))
    token_env: str = "DIGEST_API_TOKEN"
    base_url: str = ""
    domain: str = ""
    batch_size: int = 0
    url: str = ""
    body_template: str = ""
    timeout: float = field(default=30.0, metadata=_POSITIVE)


@dataclass(frozen=True)
class Sender:
    kind: str = field(default="outbox", metadata=_choices(*SENDER_KINDS))
    rate: float = 0.0  # messages per second; 0: no cap
    # How many messages are in flight: SMTP connections (each pipelines up to two
    # messages), or HTTP requests (each a batch) at once. The one parallelism knob.
    connections: int = field(default=4, metadata=_at_least(1))
    lease_seconds: int = field(default=300, metadata=_at_least(1))
    max_attempts: int = field(default=5, metadata=_at_least(1))
    smtp: Smtp = field(default_factory=Smtp)
    http: Http = field(default_factory=Http)


@dataclass(frozen=True)
class Dkim:
    selector: str = ""
    domain: str = ""
    private_key_env: str = ""
    private_key_file: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.selector and (self.private_key_env or self.private_key_file))


@dataclass(frozen=True)
class Web:
    secret_key_env: str = "DIGEST_SECRET_KEY"
    trusted_proxies: tuple[str, ...] = ()
    confirm_expiry_days: int = field(default=7, metadata=_at_least(1))
    rate_limit_per_minute: int = 10  # 0: no limit
    # Security settings (docs/security.md):
    previous_secret_keys_env: str = "DIGEST_PREVIOUS_SECRET_KEYS"
    ipv6_prefix: int = 64
    confirmations_per_hour: int = 200
    subscribe_reply_seconds: float = 0.4
    header_timeout: float = field(default=10.0, metadata=_POSITIVE)
    body_timeout: float = field(default=15.0, metadata=_POSITIVE)
    log_client_ip: bool = False


@dataclass(frozen=True)
class Imap:
    """[bounces.imap]: the mailbox `digest bounces fetch` reads reports from."""

    host: str = ""
    port: int = field(default=993, metadata=_at_least(1, 65535))
    security: str = field(default="tls", metadata=_choices(*SMTP_SECURITY))
    username_env: str = "DIGEST_BOUNCE_IMAP_USER"
    password_env: str = "DIGEST_BOUNCE_IMAP_PASSWORD"
    folder: str = "INBOX"
    after: str = field(default="move", metadata=_choices(*IMAP_AFTER))
    move_to: str = "digest-processed"
    timeout: float = field(default=30.0, metadata=_POSITIVE)


@dataclass(frozen=True)
class Bounces:
    """[bounces]: the policy and where reports come from."""

    return_path: str = ""  # e.g. "bounce+{token}@bounces.example.com": VERP, per recipient
    soft_limit: int = 3  # soft bounces in a row, on separate issues, before suppression
    hard_rate_warning: float = 0.02
    complaint_rate_warning: float = 0.001
    imap: Imap = field(default_factory=Imap)

    @property
    def return_path_domain(self) -> str:
        return self.return_path.rpartition("@")[2]


@dataclass(frozen=True)
class PostmarkHook:
    username_env: str = ""
    password_env: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.username_env and self.password_env)


@dataclass(frozen=True)
class SendGridHook:
    public_key_env: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.public_key_env)


@dataclass(frozen=True)
class MailgunHook:
    signing_key_env: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.signing_key_env)


@dataclass(frozen=True)
class ResendHook:
    secret_env: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.secret_env)


@dataclass(frozen=True)
class SesHook:
    topic_arn: str = ""  # the SNS topic SES publishes to; messages from any other are refused

    @property
    def configured(self) -> bool:
        return bool(self.topic_arn)


@dataclass(frozen=True)
class Webhooks:
    """[webhooks.PROVIDER]: a route exists only for a provider configured here."""

    tolerance_seconds: int = 300
    postmark: PostmarkHook = field(default_factory=PostmarkHook)
    sendgrid: SendGridHook = field(default_factory=SendGridHook)
    mailgun: MailgunHook = field(default_factory=MailgunHook)
    resend: ResendHook = field(default_factory=ResendHook)
    ses: SesHook = field(default_factory=SesHook)


@dataclass(frozen=True)
class Consent:
    pseudonym_key_env: str = "DIGEST_PSEUDONYM_KEY"


@dataclass(frozen=True)
class Config:
    newsletter: Newsletter = field(default_factory=Newsletter)
    privacy: Privacy = field(default_factory=Privacy)
    schedule: Schedule = field(default_factory=Schedule)
    database: Database = field(default_factory=Database)
    sender: Sender = field(default_factory=Sender)
    dkim: Dkim = field(default_factory=Dkim)
    web: Web = field(default_factory=Web)
    consent: Consent = field(default_factory=Consent)
    bounces: Bounces = field(default_factory=Bounces)
    webhooks: Webhooks = field(default_factory=Webhooks)
    path: Path | None = field(default=None, compare=False, metadata={"internal": True})
    # One line each (file:line: what): renamed settings and settings that have no
    # effect for the configured sender. Printed when the file loads; `digest check`
    # lists them too.
    notices: tuple[str, ...] = field(default=(), compare=False, metadata={"internal": True})

    def __post_init__(self) -> None:
        # The statement names the newsletter as it is called now: renaming it makes
        # a new statement text, which the consent ledger records as a new version.
        statement = self.privacy.consent_statement
        if statement.strip() == LEGACY_STATEMENT:
            statement = ""
        if statement != self.privacy.consent_statement or "{name}" in statement:
            filled = statement.replace("{name}", self.newsletter.name)
            object.__setattr__(
                self, "privacy", dataclasses.replace(self.privacy, consent_statement=filled)
            )
        if self.newsletter.why.strip() == LEGACY_WHY:
            object.__setattr__(self, "newsletter", dataclasses.replace(self.newsletter, why=""))

    @property
    def locale_dir(self) -> Path | None:
        """The workspace's own catalogs (``locale/`` beside digest.toml), if it has a file."""
        return self.path.parent / LOCALE_FOLDER if self.path is not None else None

    @property
    def words(self) -> Catalog:
        """digest's words in the newsletter's language, the workspace's own over the shipped."""
        return catalog(self.newsletter.language, self.locale_dir)

    @property
    def consent_statement(self) -> str:
        """The consent statement readers are shown: ``[privacy] consent_statement``, else
        digest's own in the newsletter's language (it names the newsletter and its day)."""
        if self.privacy.consent_statement:
            return self.privacy.consent_statement
        words = self.words
        return words(
            DEFAULT_STATEMENT,
            name=self.newsletter.name,
            when=words.every(self.schedule.weekday_index),
        )

    def why(self, words: Catalog | None = None) -> str:
        """The footer's "why you get this" line: ``[newsletter] why``, else digest's own."""
        if self.newsletter.why:
            return self.newsletter.why.replace("{name}", self.newsletter.name)
        return (words or self.words)(DEFAULT_WHY, name=self.newsletter.name)

    def secret(self, env_name: str, what: str) -> str:
        """The secret held in environment variable ``env_name``, or a clear error."""
        value = os.environ.get(env_name, "") if env_name else ""
        if not value:
            raise ConfigError(
                f"{what} is not set: put it in the environment variable "
                f"{env_name or '(none named in digest.toml)'}"
            )
        return value


def parse_duration(text: str) -> int:
    """Seconds in ``90s``, ``30m``, ``6h``, ``2d`` or a plain number of seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (write e.g. 30m, 6h or 2d)")
    amount, unit = int(match.group(1)), match.group(2) or "s"
    return amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def load(path: Path) -> Config:
    """Read and check ``digest.toml``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (run `digest init` to make a workspace)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}; fix the TOML syntax") from None
    locator = _Locator(path, text)
    notices = _renamed(data, locator)
    config = _build(Config, data, (), locator)
    notices += _unused(config, data, locator)
    config = dataclasses.replace(config, path=path, notices=tuple(notices))
    _check(config, locator)
    return config


def defaults() -> Config:
    return Config()


class _Locator:
    """Finds the line of a key in the TOML text, for error messages."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.aliases: dict[tuple[str, ...], tuple[str, ...]] = {}  # new name -> old, as written

    def where(self, keys: tuple[str, ...]) -> str:
        keys = self.aliases.get(keys, keys)
        table, key = ".".join(keys[:-1]), keys[-1]
        current = ""
        for number, line in enumerate(self.lines, 1):
            stripped = line.strip()
            header = re.fullmatch(r"\[\s*([^\]]+?)\s*\]", stripped)
            if header:
                current = header.group(1)
                if current == ".".join(keys):
                    return f"{self.path}:{number}"
                continue
            if re.match(rf'["\']?{re.escape(key)}["\']?\s*=', stripped) and current == table:
                return f"{self.path}:{number}"
        return str(self.path)

    def error(self, keys: tuple[str, ...], message: str) -> ConfigError:
        written = self.aliases.get(keys, keys)
        return ConfigError(f"{self.where(keys)}: {'.'.join(written)} {message}")


def _key(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("key", f.name))


def _build(cls: type, data: Any, keys: tuple[str, ...], locator: _Locator) -> Any:
    if not isinstance(data, dict):
        raise locator.error(keys, "must be a table ([section])")
    hints = typing.get_type_hints(cls)
    fields = {_key(f): f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    unknown = [k for k in data if k not in fields]
    if unknown:
        allowed = ", ".join(fields)
        raise locator.error(keys + (unknown[0],), f"is not a setting (allowed here: {allowed})")
    values: dict[str, Any] = {}
    for key, f in fields.items():
        if key not in data:
            continue
        hint = hints[f.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            values[f.name] = _build(hint, data[key], keys + (key,), locator)
        else:
            values[f.name] = _coerce(hint, data[key], keys + (key,), locator, f)
    return cls(**values)


def _coerce(
    hint: Any, value: Any, keys: tuple[str, ...], locator: _Locator, f: dataclasses.Field[Any]
) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise locator.error(keys, f"must be true or false, not {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise locator.error(keys, f"must be a whole number, not {value!r}")
        _in_range(value, keys, locator, f)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise locator.error(keys, f"must be a number, not {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise locator.error(keys, f"must be a finite number, not {value!r}")
        _in_range(value, keys, locator, f)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise locator.error(keys, f"must be a string in quotes, not {value!r}")
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise locator.error(keys, f"must be one of {', '.join(choices)}, not {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise locator.error(keys, f'must be a list of strings like ["a", "b"], not {value!r}')
        return tuple(value)
    if origin in (types.UnionType, typing.Union):  # pragma: no cover - no such settings yet
        return value
    raise TypeError(f"unsupported setting type {hint!r}")  # pragma: no cover


def _in_range(
    value: float, keys: tuple[str, ...], locator: _Locator, f: dataclasses.Field[Any]
) -> None:
    low, high = f.metadata.get("min"), f.metadata.get("max")
    if "above" in f.metadata and value <= f.metadata["above"]:
        raise locator.error(keys, f"must be greater than {f.metadata['above']}, not {value}")
    if low is not None and high is not None and not low <= value <= high:
        raise locator.error(keys, f"must be from {low} to {high}, not {value}")
    if low is not None and value < low:
        raise locator.error(keys, f"must be at least {low}, not {value}")
    if value < 0:
        raise locator.error(keys, f"must not be negative, not {value}")


def _check(config: Config, locator: _Locator) -> None:
    """Checks that need more than one value's type."""
    n = config.newsletter
    if not n.name.strip():
        raise locator.error(("newsletter", "name"), "must not be empty")
    if "@" not in n.from_address:
        raise locator.error(
            ("newsletter", "from"),
            f'must be an address like "Name <news@example.com>", not {n.from_!r}',
        )
    if not re.match(r"https?://[^/\s]+", n.base_url):
        raise locator.error(
            ("newsletter", "base_url"), f"must start with https:// (or http://), not {n.base_url!r}"
        )
    policy = config.privacy.policy_url
    if not re.match(r"(https://[^/\s]+|mailto:[^\s@]+@[^\s@]+$)", policy):
        raise locator.error(
            ("privacy", "policy_url"),
            f"must be an https:// or mailto: URL, not {policy!r}",
        )
    if not is_tag(n.language):
        raise locator.error(
            ("newsletter", "language"),
            f"must be a language tag like en, de, pt-BR or ar, not {n.language!r}",
        )
    if not n.sections:
        raise locator.error(("newsletter", "sections"), "must name at least one section")
    lowered = [s.lower() for s in n.sections]
    if len(set(lowered)) != len(lowered):
        raise locator.error(("newsletter", "sections"), "must not name a section twice")
    s = config.schedule
    if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", s.time):
        raise locator.error(("schedule", "time"), f'must be HH:MM like "07:00", not {s.time!r}')
    try:
        ZoneInfo(s.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise locator.error(
            ("schedule", "timezone"),
            f'must be an IANA time zone like "Europe/Berlin", not {s.timezone!r}',
        ) from None
    try:
        parse_duration(s.grace)
    except ValueError as exc:
        raise locator.error(("schedule", "grace"), str(exc)) from None
    if s.review_cutoff and not re.fullmatch(
        rf"({'|'.join(WEEKDAYS)})\s+([01]?\d|2[0-3]):[0-5]\d", s.review_cutoff.strip().lower()
    ):
        raise locator.error(
            ("schedule", "review_cutoff"),
            f'must be a weekday and time like "thursday 18:00", not {s.review_cutoff!r}',
        )
    url = config.database.url
    if url and not url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
        raise locator.error(
            ("database", "url"), f"must start with sqlite:/// or postgresql://, not {url!r}"
        )
    smtp = config.sender.smtp
    if (
        config.sender.kind == "smtp"
        and smtp.security == "none"
        and smtp.host
        not in (
            "127.0.0.1",
            "localhost",
            "::1",
        )
    ):
        raise locator.error(
            ("sender", "smtp", "security"),
            f'"none" is allowed only for a loopback host, not {smtp.host!r}; use starttls or tls',
        )
    if not 1 <= config.web.ipv6_prefix <= 128:
        raise locator.error(
            ("web", "ipv6_prefix"),
            f"must be a prefix length from 1 to 128, not {config.web.ipv6_prefix}",
        )
    _check_bounces(config, locator)


def _check_bounces(config: Config, locator: _Locator) -> None:
    """An address template must hold ``{token}`` once, in the local part."""
    for keys, value in (
        (("bounces", "return_path"), config.bounces.return_path),
        (("newsletter", "unsubscribe_mailto"), config.newsletter.unsubscribe_mailto),
    ):
        if not value or "{token}" not in value:
            if keys[0] == "bounces" and value:
                raise locator.error(
                    keys, 'must hold {token}, like "bounce+{token}@bounces.example.com"'
                )
            continue
        local, at, domain = value.rpartition("@")
        if not at or "{token}" not in local or "{token}" in domain or "." not in domain:
            raise locator.error(
                keys, f"must be an address with {{token}} in its local part, not {value!r}"
            )
    if config.bounces.soft_limit < 1:
        raise locator.error(("bounces", "soft_limit"), "must be at least 1")


# -- renamed settings and settings without effect --------------------------------------

# Old name -> the setting that replaced it. An old file keeps working: its value
# moves to the new name, with one line saying so.
RENAMED: dict[tuple[str, ...], tuple[str, ...]] = {
    ("sender", "concurrency"): ("sender", "connections"),
    ("sender", "smtp", "connections"): ("sender", "connections"),
}

# The old name that had effect for each sender, before the knobs became one.
_OLD_KNOB = {"smtp": ("sender", "smtp", "connections"), "http": ("sender", "concurrency")}


def _table(data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any] | None:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None  # type: ignore[assignment]
    return data if isinstance(data, dict) else None


def _name(keys: tuple[str, ...]) -> str:
    return f"[{'.'.join(keys[:-1])}] {keys[-1]}"


def _renamed(data: dict[str, Any], locator: _Locator) -> list[str]:
    """Move old settings' values to their new names (in ``data``); a line for each."""
    notices = []
    moves: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for old, new in RENAMED.items():
        table = _table(data, old[:-1])
        if table is not None and old[-1] in table:
            moves.setdefault(new, []).append(old)
    for new, olds in moves.items():
        target = _table(data, new[:-1])
        assert target is not None  # an old key lives in the new key's table or below
        kind = _table(data, ("sender",)) or {}
        applied = _OLD_KNOB.get(str(kind.get("kind", "")))
        olds.sort(key=lambda old: old != applied)  # the one that had effect first
        chosen = None if new[-1] in target else olds[0]
        for old in olds:
            table = _table(data, old[:-1])
            assert table is not None
            value = table.pop(old[-1])
            if old == chosen:
                target[new[-1]] = value
                locator.aliases[new] = old
                why = ""
            elif chosen is None:
                why = f" (ignored: the file sets {_name(new)} too)"
            else:
                why = f" (ignored: {_name(chosen)} is the one that applied)"
            notices.append(
                f"{locator.where(old)}: {_name(old)} is now {_name(new)} (SMTP connections "
                f"or HTTP requests in flight, for every sender){why}; rename it"
            )
    return notices


# Settings each sender reads, beyond [sender] kind, rate, lease_seconds, max_attempts.
_HTTP_ONLY_FOR = {
    "base_url": ("postmark", "sendgrid", "mailgun", "resend"),
    "domain": ("mailgun",),
    "url": ("generic",),
    "body_template": ("generic",),
}


def _unused(config: Config, data: dict[str, Any], locator: _Locator) -> list[str]:
    """A line per table whose settings, set to other than their defaults, have no
    effect for the configured sender."""
    kind = config.sender.kind
    notices = []
    sender = _table(data, ("sender",)) or {}
    if kind in ("outbox", "null") and sender.get("connections", 4) != 4:
        notices.append(
            f"{locator.where(('sender', 'connections'))}: [sender] connections has no effect "
            f'with kind = "{kind}", which writes one batch at a time'
        )
    for other, settings in (("smtp", config.sender.smtp), ("http", config.sender.http)):
        table = _table(data, ("sender", other)) or {}
        defaults = type(settings)()
        if kind != other:
            changed = [k for k in table if table[k] != getattr(defaults, k, table[k])]
            why = f'[sender] kind is "{kind}"'
        elif other == "http":
            provider = config.sender.http.provider
            changed = [
                k for k, only in _HTTP_ONLY_FOR.items() if table.get(k) and provider not in only
            ]
            why = f'provider is "{provider}"'
        else:
            changed = []
        if changed:
            names = ", ".join(changed)
            verb = "has" if len(changed) == 1 else "have"
            notices.append(
                f"{locator.where(('sender', other, changed[0]))}: [sender.{other}] {names} "
                f"{verb} no effect: {why}"
            )
    return notices
