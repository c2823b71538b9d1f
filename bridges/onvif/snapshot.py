"""Fetching a JPEG from a camera's snapshot URI with HTTP Digest, falling back to Basic.

Snapshot URIs are plain HTTP resources protected by HTTP authentication, not WS-Security, and
cameras differ in what they accept: most want Digest (RFC 7616), some only Basic. We answer a
Digest challenge with aiohttp's ``DigestAuthMiddleware`` (one instance per device, so later
requests authenticate pre-emptively with the cached nonce and a stale nonce is renewed without a
prompt) and send Basic credentials only when the device's 401 offers Basic. The scheme that
worked is remembered, so a Basic-only camera costs one request per snapshot after the first.

The body must be a JPEG (it starts with the SOI marker); an HTML error page served with status
200 is a bad response, not a picture.
"""

from __future__ import annotations

import asyncio
import enum
import logging

import aiohttp
from aiohttp import hdrs
from onvif.util import obscure_user_pass_url

from ..errors import (
    DeviceAuthFailed,
    DeviceBadResponse,
    DeviceBusy,
    DeviceError,
    DeviceUnsupported,
)
from .transport import retry_connection_error, translate_transport_error

_LOGGER = logging.getLogger(__name__)

JPEG_SOI = b"\xff\xd8"
MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024
"""A 4K JPEG is a few MB; anything far larger is not a snapshot."""


class HttpAuthScheme(enum.Enum):
    """Which HTTP authentication the snapshot endpoint accepted."""

    DIGEST = "digest"
    BASIC = "basic"


def _offers_basic(response: aiohttp.ClientResponse) -> bool:
    challenges = response.headers.getall(hdrs.WWW_AUTHENTICATE, [])
    return any(challenge.strip().lower().startswith("basic") for challenge in challenges)


class SnapshotFetcher:
    """Downloads snapshots of one device over the device's HTTP session."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        username: str,
        password: str,
        *,
        host: str,
        timeout_s: float,
    ) -> None:
        self._http = http
        self._username = username
        self._password = password
        self._host = host
        self._timeout_s = timeout_s
        self._digest = aiohttp.DigestAuthMiddleware(username, password)
        self._scheme = HttpAuthScheme.DIGEST
        self.device = ""
        """The device identity errors carry, once the session knows it."""

    @property
    def scheme(self) -> HttpAuthScheme:
        """The scheme the next request starts with (the one that worked last)."""
        return self._scheme

    async def fetch(self, url: str) -> bytes:
        """The JPEG at ``url``; raises a :class:`~bridges.errors.DeviceError` on any failure."""
        shown = obscure_user_pass_url(url)
        try:
            async with asyncio.timeout(self._timeout_s):
                status, body = await self._authenticated_get(url)
        except DeviceError:
            raise
        except Exception as error:
            translated = translate_transport_error(
                error, host=self._host, device=self.device, what="snapshot"
            )
            if translated is None and isinstance(error, aiohttp.ClientError):
                translated = DeviceBadResponse(f"snapshot: {error}", host=self._host, device=self.device)
            if translated is None:
                raise
            raise translated from error
        return self._checked_jpeg(shown, status, body)

    async def _authenticated_get(self, url: str) -> tuple[int, bytes]:
        """GET with the remembered scheme; after a Digest 401 that offers Basic, try Basic."""
        if self._scheme is HttpAuthScheme.BASIC:
            status, body = await self._get_with_basic(url)
            if status == 401:
                self._scheme = HttpAuthScheme.DIGEST  # the device changed its mind; renegotiate next time
            return status, body
        status, body, offers_basic = await self._get_with_digest(url)
        if status == 401 and offers_basic:
            status, body = await self._get_with_basic(url)
            if status < 300:
                self._scheme = HttpAuthScheme.BASIC
                _LOGGER.info("device %s: snapshot endpoint accepts only Basic authentication", self._label)
        return status, body

    @property
    def _label(self) -> str:
        return self.device or self._host

    @retry_connection_error()
    async def _get_with_digest(self, url: str) -> tuple[int, bytes, bool]:
        async with self._http.get(url, middlewares=(self._digest,)) as response:
            return response.status, await self._read_body(response), _offers_basic(response)

    @retry_connection_error()
    async def _get_with_basic(self, url: str) -> tuple[int, bytes]:
        headers = {hdrs.AUTHORIZATION: aiohttp.encode_basic_auth(self._username, self._password)}
        async with self._http.get(url, headers=headers) as response:
            return response.status, await self._read_body(response)

    async def _read_body(self, response: aiohttp.ClientResponse) -> bytes:
        """The body, refusing one larger than :data:`MAX_SNAPSHOT_BYTES`."""
        if response.status >= 300:
            response.release()
            return b""
        body = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > MAX_SNAPSHOT_BYTES:
                raise DeviceBadResponse(
                    f"snapshot larger than {MAX_SNAPSHOT_BYTES} bytes", host=self._host, device=self.device
                )
        return bytes(body)

    def _checked_jpeg(self, shown_url: str, status: int, body: bytes) -> bytes:
        host, device = self._host, self.device
        if status in (401, 403):
            raise DeviceAuthFailed(f"snapshot {shown_url}: HTTP {status}", host=host, device=device)
        if status in (404, 405, 501):
            raise DeviceUnsupported(f"snapshot {shown_url}: HTTP {status}", host=host, device=device)
        if status in (429, 503):
            raise DeviceBusy(f"snapshot {shown_url}: HTTP {status}", host=host, device=device)
        if status >= 300:
            raise DeviceBadResponse(f"snapshot {shown_url}: HTTP {status}", host=host, device=device)
        if not body.startswith(JPEG_SOI):
            raise DeviceBadResponse(
                f"snapshot {shown_url}: {len(body)} bytes that are not a JPEG", host=host, device=device
            )
        return body
