"""Cron and systemd recipes that run ``digest send --due`` every few minutes."""

from __future__ import annotations

import os
import shlex
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digest.workspace import Workspace


def needed_env(ws: Workspace) -> list[tuple[str, str]]:
    """The environment variables a send from this workspace reads: (name, what)."""
    config = ws.config
    names: list[tuple[str, str]] = []
    if os.environ.get("DIGEST_DATABASE_URL"):
        names.append(("DIGEST_DATABASE_URL", "the database (it is set where you ran this)"))
    sender = config.sender
    if sender.kind == "smtp":
        if sender.smtp.username_env:
            names.append((sender.smtp.username_env, "SMTP user name"))
        if sender.smtp.password_env:
            names.append((sender.smtp.password_env, "SMTP password"))
    if sender.kind == "http" and sender.http.token_env:
        names.append((sender.http.token_env, f"{sender.http.provider} API token"))
    if config.dkim.enabled and config.dkim.private_key_env:
        names.append((config.dkim.private_key_env, "DKIM private key"))
    names.append(_signing_key(ws))
    names.append(_pseudonym_key(ws, config.consent.pseudonym_key_env))
    return names


def _signing_key(ws: Workspace) -> tuple[str, str]:
    """The signing key's line, with the story the README, `send` and `serve` tell: it
    lives in the variable, the same value wherever digest signs or checks links."""
    env_name, what = ws.signing_key_env, "signing key of unsubscribe links"
    if os.environ.get(env_name, "").strip():
        return env_name, (
            f"{what}: the value set where you ran this (the same wherever digest sends mail "
            "and `digest serve` runs; `digest send` refuses a key that did not sign the last "
            "issue)"
        )
    made = ws.key_file(env_name)
    since = (
        f"; mail sent so far was signed with the key in {made}: set it to that file's value"
        if made.exists()
        else ": `digest secret` makes one"
    )
    return env_name, (
        f"{what}: not set where you ran this; set it here to the value your shell and "
        f"`digest serve` use{since}"
    )


def _pseudonym_key(ws: Workspace, env_name: str) -> tuple[str, str]:
    what = "pseudonym key"
    if os.environ.get(env_name, "").strip():
        return env_name, f"{what}: the value set where you ran this (the same on every machine)"
    return env_name, (
        f"{what}: not set where you ran this; leave it unset to use "
        f"{ws.key_file(env_name)}, or set it to that file's value on every machine"
    )


def _command(ws: Workspace) -> str:
    return f"{shlex.quote(sys.executable)} -m digest -C {shlex.quote(str(ws.root))} send --due"


def cron_entry(ws: Workspace, every: int = 5) -> str:
    """A crontab entry running ``digest send --due`` every ``every`` minutes."""
    minute = "*" if every == 1 else f"*/{every}"
    lines = [
        f"# {ws.config.newsletter.name}: send the issue when its slot comes "
        f"({ws.config.schedule.weekday} {ws.config.schedule.time} "
        f"{ws.config.schedule.timezone}).",
        "# Silent when nothing is due; any output is a problem cron mails you.",
        "# Set these above the entry (NAME=value lines) or in cron's environment:",
    ]
    lines += [f"#   {name:<22} {what}" for name, what in needed_env(ws)]
    lines.append(f"{minute} * * * * {_command(ws)}")
    return "\n".join(lines) + "\n"


def systemd_units(ws: Workspace, every: int = 5) -> dict[str, str]:
    """A oneshot service and the timer that starts it every ``every`` minutes."""
    name = f"digest-{ws.config.newsletter.slug}"
    env_lines = [f"#   {name_:<22} {what}" for name_, what in needed_env(ws)]
    service = "\n".join(
        [
            "[Unit]",
            f"Description={ws.config.newsletter.name}: send the issue when it is due",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=oneshot",
            f"WorkingDirectory={ws.root}",
            f"ExecStart={_command(ws)}",
            "# Secrets: put NAME=value lines in this file (mode 600), one per variable:",
            *env_lines,
            f"EnvironmentFile=-/etc/digest/{name}.env",
            "",
        ]
    )
    timer = "\n".join(
        [
            "[Unit]",
            f"Description=Run {name}.service every {every} minutes",
            "",
            "[Timer]",
            f"OnCalendar=*-*-* *:{'*' if every == 1 else f'00/{every}'}:00",
            "AccuracySec=1s",
            "Persistent=true",
            f"Unit={name}.service",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )
    return {f"{name}.service": service, f"{name}.timer": timer}
