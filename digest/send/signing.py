"""Which key signs a send's links, and whether it is the key that signed the last issue.

Every send records its signing key's fingerprint, and `digest serve` refuses keys that
cannot verify the last issue's links. A send that would sign with a key other than the
one that signed the last issue (week 1 sent from a shell with DIGEST_SECRET_KEY
exported, week 2 from cron without it, so signed with the workspace's key file) is
refused here, before anything goes: one of the two issues' unsubscribe links would fail.
A rotation (the old key kept in DIGEST_PREVIOUS_SECRET_KEYS) is allowed, and a leaked
key is retired on purpose with ``--retire-sent-key``.
"""

from __future__ import annotations

import os

from digest.errors import SendError
from digest.send.deliveries import latest_send
from digest.store import open_store
from digest.tokens import key_fingerprint
from digest.workspace import Workspace


def key_source(ws: Workspace) -> str:
    """Where the key that signs now comes from: the environment, else the key file."""
    name = ws.signing_key_env
    if os.environ.get(name, "").strip():
        return f"the environment variable {name}"
    return f"the key file {ws.key_file(name)}"


def refuse_another_key(ws: Workspace) -> None:
    """SendError when the key that would sign differs from the one that signed the issue
    sent last and no key of this run verifies that issue's links."""
    with open_store(ws) as store:
        last = latest_send(store)
        used = store.link_keys(last) if last is not None else set()
    signing = ws.signing_key()
    verifying = {key_fingerprint(key) for key in (signing, *ws.previous_secrets())}
    if last is None or not used or used & verifying:
        return
    name, path = ws.signing_key_env, ws.key_file(ws.signing_key_env)
    shown = ", ".join(sorted(used))
    if os.environ.get(name, "").strip():
        on_file = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
        if on_file and key_fingerprint(on_file.encode("utf-8")) in used:
            then = f"signed with the key file {path}"
            fix = (
                f'unset {name} to sign with that file again, or export {name}="$(cat {path})" '
                "wherever digest sends mail and serves its pages"
            )
        else:
            then = f"signed with another key (fingerprint {shown})"
            fix = f"set {name} to the key that sent it"
    else:
        then = (
            f"signed with another key (fingerprint {shown}), most likely {name} set in the "
            "environment of the run that sent it"
        )
        fix = (
            f"set {name} to that key here too (for cron or systemd, put it in the job's "
            "environment: see `digest schedule cron`)"
        )
    previous = ws.config.web.previous_secret_keys_env or "DIGEST_PREVIOUS_SECRET_KEYS"
    raise SendError(
        f"issue {last} went out {then}, but this send would sign with {key_source(ws)} "
        f"(fingerprint {key_fingerprint(signing)}), so one of the two issues' unsubscribe "
        f"links would fail on `digest serve`; {fix}. To change keys on purpose, keep the old "
        f"one verifying in {previous} (a rotation), or send with --retire-sent-key to retire "
        "a leaked one"
    )
