"""An async client for the iss API: signs, rate-limits, retries what is safe to retry.

Retries cover failures where the request either never reached the cloud or the cloud said
"try again": connection errors, timeouts, HTTP 5xx and ``RequestLimitExceeded``/``InternalError``
style codes. Callers that must not repeat a write blindly (registration) pass ``retry=False``
and resolve the uncertainty themselves via the outbox.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from . import API_VERSION, SERVICE
from .envelope import parse_response
from .errors import IssError, IssTransportError
from .ratelimit import ActionRateLimiter
from .signing import Tc3Signer

_LOGGER = logging.getLogger(__name__)

CallObserver = Callable[[str, str, float, int], None]
"""``(action, code, seconds, request bytes)`` after every attempt; ``code`` is "OK", the iss error
code, or "Transport" when no iss answer came back (metrics hook)."""
TRANSPORT_CODE = "Transport"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in attempts."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


class IssClient:
    """Calls iss actions on one endpoint with one key pair.

    The ``aiohttp.ClientSession`` is owned by the client for its lifetime (one session per peer);
    use it as an async context manager or call :meth:`close`.
    """

    def __init__(
        self,
        endpoint: str,
        signer: Tc3Signer,
        *,
        region: str | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),
        limiter: ActionRateLimiter | None = None,
        clock: Callable[[], float] = time.time,
        session: aiohttp.ClientSession | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        url = URL(endpoint if "://" in endpoint else f"https://{endpoint}")
        self._url = url.with_path("/")
        self._host = url.raw_authority
        self._signer = signer
        self.region = region
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = retry
        self._limiter = limiter or ActionRateLimiter()
        self._clock = clock
        self._session = session
        self._owns_session = session is None
        self.observer = observer

    @property
    def endpoint(self) -> str:
        """The host[:port] requests are signed for."""
        return self._host

    async def __aenter__(self) -> IssClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the owned HTTP session; idempotent."""
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._owns_session = True
        return self._session

    async def call(self, action: str, params: Mapping[str, Any] | None = None, *, retry: bool = True) -> dict[str, Any]:
        """Call ``action`` and return its ``Response`` (without ``Error``); raise :class:`IssError`.

        Transport failures raise :class:`IssTransportError` once retries are exhausted.
        """
        body = json.dumps(dict(params or {}), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        attempts = self._retry.attempts if retry else 1
        for attempt in range(1, attempts + 1):
            await self._limiter.acquire(action)
            try:
                return await self._send(action, body)
            except IssError as err:
                if not err.retryable or attempt == attempts:
                    raise
                _LOGGER.info("iss %s answered %s, retry %d/%d", action, err.code, attempt, attempts - 1)
            except IssTransportError as err:
                if attempt == attempts:
                    raise
                _LOGGER.info("iss %s transport error (%s), retry %d/%d", action, err, attempt, attempts - 1)
            await asyncio.sleep(self._retry.delay(attempt))
        raise AssertionError("unreachable")

    async def _send(self, action: str, body: bytes) -> dict[str, Any]:
        signed = self._signer.sign(
            action=action,
            body=body,
            host=self._host,
            timestamp=int(self._clock()),
            version=API_VERSION,
            region=self.region,
        )
        session = self._get_session()
        started = time.monotonic()
        try:
            async with session.post(self._url, data=signed.body, headers=signed.headers, timeout=self._timeout) as resp:
                payload = await resp.read()
                if resp.status >= 500:
                    raise IssTransportError(f"HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as err:
            self._observe(action, TRANSPORT_CODE, started, len(body))
            raise IssTransportError(f"{type(err).__name__}: {err}") from err
        except IssTransportError:
            self._observe(action, TRANSPORT_CODE, started, len(body))
            raise
        elapsed_ms = (time.monotonic() - started) * 1000
        try:
            response = parse_response(payload)
        except IssError as err:
            self._observe(action, err.code, started, len(body))
            _LOGGER.debug(
                "iss %s -> %s in %.1f ms", action, err.code, elapsed_ms, extra={"action": action, "code": err.code}
            )
            raise
        except (ValueError, KeyError, TypeError) as err:
            self._observe(action, TRANSPORT_CODE, started, len(body))
            raise IssTransportError(f"not an iss answer (HTTP {resp.status})") from err
        self._observe(action, "OK", started, len(body))
        _LOGGER.debug("iss %s -> OK in %.1f ms", action, elapsed_ms, extra={"action": action, "code": "OK"})
        return response

    def _observe(self, action: str, code: str, started: float, request_bytes: int) -> None:
        if self.observer is not None:
            self.observer(action, code, time.monotonic() - started, request_bytes)


__all__ = ["IssClient", "RetryPolicy", "SERVICE"]
