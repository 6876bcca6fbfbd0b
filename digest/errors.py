"""The one exception tree of digest.

Every error a user can cause is a :class:`DigestError` whose message is one
line: what is wrong (file and line, key, address, host:port) and what to do.
The CLI turns these into a clean message and exit status; anything else is a
bug and keeps its traceback.

    DigestError
    ├── ConfigError          digest.toml is missing, malformed or has a bad value
    ├── WorkspaceError       no workspace here, or init would overwrite
    ├── IssueError           an issue file is missing, broken, or an edit is refused
    ├── CurateError          a page or feed could not be fetched or read
    ├── TemplateError        a template is missing or fails to render
    ├── StoreError           the database cannot be opened, migrated or queried
    │   └── ConsentError     the consent ledger refuses an event or fails to verify
    ├── SubscriberError      a bad address, an unknown subscriber, a bad import
    ├── CsvFileError         a CSV file that cannot be read (line too long, not UTF-8)
    ├── TokenError           a signed link is tampered with, expired or for another purpose
    ├── ScheduleError        nothing sensible to send, or a due issue is not ready
    └── SendError            a message or a whole send could not go out
        ├── TransientSendError   worth retrying later (4xx, 429, 5xx from an API, timeouts)
        └── PermanentSendError   never retried for this recipient (5xx SMTP, 4xx API)
"""

from __future__ import annotations


class DigestError(Exception):
    """Base of every error digest raises on purpose.

    Its message masks addresses (``a***@example.com``): it may end up in a log or a
    stored reason. ``typed`` is the same message with the address the operator typed
    in full; the command line, which answers the person at the keyboard, prints that.
    """

    def __init__(self, *args: object, typed: str | None = None) -> None:
        super().__init__(*args)
        self.typed = typed

    def for_terminal(self) -> str:
        """The message for the person who typed the command: addresses as they typed them."""
        return self.typed if self.typed is not None else str(self)


class ConfigError(DigestError):
    pass


class WorkspaceError(DigestError):
    pass


class IssueError(DigestError):
    pass


class CurateError(DigestError):
    pass


class TemplateError(DigestError):
    pass


class StoreError(DigestError):
    pass


class ConsentError(StoreError):
    pass


class SubscriberError(DigestError):
    pass


class CsvFileError(DigestError):
    pass


class TokenError(DigestError):
    """``expired``: the link was good but is too old (a page says so in the reader's words)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class ScheduleError(DigestError):
    pass


class SendError(DigestError):
    pass


class TransientSendError(SendError):
    """The server or API may accept the message later."""


class PermanentSendError(SendError):
    """The server or API refused this message for good."""
