"""The base of every provider adapter of the HTTP sender (see :mod:`digest.send.providers`)."""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Any

import httpx

from digest.config import Http
from digest.send.sender import OutgoingMessage, Result


class Provider:
    name = "provider"
    default_base_url = ""
    max_batch = 1
    idempotent = False
    batched = False  # the body is a JSON array of payloads, not one payload
    # Takes internationalised addresses (RFC 6531 local parts) as they are, as its
    # documentation says; otherwise digest sends a domain-only IDN with its IDNA
    # domain and fails an address with a non-ASCII local part, one row each.
    eai = False

    def __init__(self, settings: Http, token: str) -> None:
        self.settings = settings
        self.token = token
        self.base_url = (settings.base_url or self.default_base_url).rstrip("/")

    @property
    def endpoint(self) -> str:
        return self.base_url

    def request(self, batch: list[OutgoingMessage]) -> dict[str, Any]:
        """Keyword arguments for ``httpx.AsyncClient.build_request``."""
        raise NotImplementedError

    def payload(self, message: OutgoingMessage) -> Any:
        """One message as the provider's JSON documents it (JSON APIs only)."""
        raise NotImplementedError

    def json_body(self, batch: list[OutgoingMessage]) -> bytes:
        """``json.dumps`` of the batch's payloads (ensure_ascii off), spliced per issue."""
        splicer = self.__dict__.get("_splicer")
        if splicer is None:
            from digest.send.splice import Splicer  # deferred: render, for JSON providers only

            splicer = self.__dict__["_splicer"] = Splicer(self.payload)
        chunks: list[bytes] = [b"["] if self.batched else []
        for index, message in enumerate(batch):
            if index:
                chunks.append(b", ")
            splicer.encode(message, chunks)
        if self.batched:
            chunks.append(b"]")
        return b"".join(chunks)

    def results(self, response: httpx.Response, batch: list[OutgoingMessage]) -> list[Result]:
        raise NotImplementedError

    def error(self, response: httpx.Response) -> str:
        """The provider's own words about a refused request."""
        try:
            data = response.json()
        except ValueError:
            return response.text[:200].strip()
        if isinstance(data, dict):
            for key in ("Message", "message", "error"):
                if isinstance(data.get(key), str):
                    return str(data[key])
            errors = data.get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                return str(errors[0].get("message", errors[0]))
        return response.text[:200].strip()

    def rejected(
        self, response: httpx.Response, batch: list[OutgoingMessage], reason: str
    ) -> list[Result]:
        """A 4xx for the whole request: permanent for each of its messages."""
        return [Result.permanent(reason, bounce=recipient_refused(reason))] * len(batch)


# A provider's words for "this recipient's address is invalid or suppressed here".
_RECIPIENT_REFUSED = re.compile(
    r"inactive recipient|marked as inactive|suppress|invalid `?(email|recipient|to|address)|"
    r"not a valid (email|address)|does not contain a valid address|illegal email address|"
    r"bounce list|on the bounce|unsubscribed recipient|blocked recipient",
    re.I,
)


def recipient_refused(reason: str) -> str:
    """``hard`` when a provider refused a message for its recipient's address, else ""."""
    return "hard" if _RECIPIENT_REFUSED.search(reason) else ""


def split_address(value: str) -> tuple[str, str]:
    """``("Name", "a@b")`` from ``Name <a@b>``."""
    name, address = parseaddr(value)
    return name, address
