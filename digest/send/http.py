"""HTTP mail APIs through one httpx.AsyncClient, with one small adapter per provider.

The adapter (``digest/send/providers/NAME.py``) knows its provider's request
and reply shapes; this module does what is common to all of them:

* 2xx: the adapter reads one result per message from the reply (a 200 can
  hide failed messages in a batch).
* 429 and 5xx (and 408, 409): transient for every message of the request,
  retried after ``Retry-After``; a 429 also slows the whole send.
* 401 and 403: the token is wrong or lacks a right; the whole send stops
  with one line naming the provider's host and the environment variable.
* Other 4xx: permanent for the messages of that request, with the reply.
* The connection lost after the request went out: the provider may have
  taken it, so the messages are unknown, unless it honours an
  Idempotency-Key, in which case sending them again is safe (transient).

Tests pass ``transport=httpx.MockTransport(handler)``.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from digest.addresses import Unroutable, route
from digest.config import Http
from digest.errors import DigestError, SendError
from digest.send.providers import Provider
from digest.send.sender import OutgoingMessage, Result, Sender


class HttpSender(Sender):
    def __init__(
        self,
        provider: Provider,
        settings: Http,
        *,
        parallel: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.provider = provider
        self.settings = settings
        self.idempotent = provider.idempotent
        limit = provider.max_batch
        self.batch_size = min(settings.batch_size, limit) if settings.batch_size else limit
        self.parallel = max(1, parallel)
        self.host = urlsplit(provider.endpoint).netloc or provider.endpoint
        self.name = f"http {provider.name} ({self.host})"
        self.bounce_source = provider.name
        self.client = httpx.AsyncClient(
            transport=transport,
            timeout=settings.timeout,
            limits=httpx.Limits(
                max_connections=self.parallel, max_keepalive_connections=self.parallel
            ),
        )

    async def send(self, batch: list[OutgoingMessage]) -> list[Result]:
        """One request for the batch; a message the provider cannot take (its address,
        or an error building its payload) is that message's failure, not the batch's."""
        going, refused = self._addressed(batch)
        if not refused:
            try:
                request = self.provider.request(going)
            except DigestError:  # the settings, not one message: the whole send stops
                raise
            except Exception:
                request = None
        if refused or request is None:
            return await self._send_apart(going, refused)
        return await self._post(request, going)

    def _addressed(
        self, batch: list[OutgoingMessage]
    ) -> tuple[list[OutgoingMessage], dict[int, Result]]:
        """Each message as the provider takes its address, and those it cannot take."""
        going: list[OutgoingMessage] = []
        refused: dict[int, Result] = {}
        for index, message in enumerate(batch):
            if message.email.isascii():
                going.append(message)
                continue
            try:
                address, _ = route(message.email, utf8=self.provider.eai, who=self.provider.name)
                going.append(message.readdressed(address))
            except Unroutable as exc:
                refused[index] = Result.permanent(str(exc))
            except Exception as exc:
                refused[index] = Result.permanent(f"{type(exc).__name__}: {exc}")
        return going, refused

    async def _send_apart(
        self, going: list[OutgoingMessage], refused: dict[int, Result]
    ) -> list[Result]:
        """The slow path: find the messages whose payload cannot be built, send the rest."""
        fine: list[OutgoingMessage] = []
        broken: dict[int, Result] = {}
        for message in going:
            try:
                self.provider.request([message])
            except DigestError:
                raise
            except Exception as exc:
                broken[id(message)] = Result.permanent(f"{type(exc).__name__}: {exc}")
            else:
                fine.append(message)
        sent = iter(await self._post(self.provider.request(fine), fine) if fine else [])
        results: list[Result] = []
        pending = iter(going)
        for index in range(len(going) + len(refused)):
            if index in refused:
                results.append(refused[index])
                continue
            message = next(pending)
            results.append(broken.get(id(message)) or next(sent))
        return results

    async def _post(self, request: dict[str, Any], batch: list[OutgoingMessage]) -> list[Result]:
        try:
            response = await self.client.send(self.client.build_request(**request))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return [Result.transient(f"cannot connect to {self.host} ({exc})")] * len(batch)
        except httpx.TransportError as exc:
            reason = f"connection to {self.host} lost before the reply ({type(exc).__name__})"
            if self.idempotent:
                return [Result.transient(reason)] * len(batch)
            return [Result.unknown(reason)] * len(batch)
        status = response.status_code
        if 200 <= status < 300:
            results = self.provider.results(response, batch)
            if len(results) != len(batch):
                raise SendError(
                    f"{self.host}: {self.provider.name} answered {len(results)} results for "
                    f"{len(batch)} messages; the reply is not one digest understands"
                )
            return results
        reason = f"{status} {self.provider.error(response)}".strip()
        if status in (401, 403):
            raise SendError(
                f"{self.host}: {self.provider.name} refused the API token ({reason}); check the "
                f"token in the environment variable {self.settings.token_env}"
            )
        if status == 429 or status >= 500 or status in (408, 409):
            wait = retry_after(response)
            return [Result.transient(reason, wait, throttled=status == 429)] * len(batch)
        return self.provider.rejected(response, batch, reason)

    async def aclose(self) -> None:
        await self.client.aclose()


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from ``Retry-After`` (seconds or an HTTP date), or a reset time."""
    value = response.headers.get("retry-after", "").strip()
    if value:
        if value.replace(".", "", 1).isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    reset = response.headers.get("x-ratelimit-reset", "").strip()
    if reset.isdigit():
        number = float(reset)
        return max(0.0, number - time.time()) if number > 1e9 else number
    return None


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
