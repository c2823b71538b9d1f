"""Cheap "is it answering?" probes for health checks: one ONVIF request, one RTSP DESCRIBE.

These are not sessions. A health check must reach devices whose :class:`CameraSession` was
closed (a camera that went away has none) and must never queue behind a PTZ command holding a
session's lock, so each probe is one self-contained request with its own deadline:

* :func:`onvif_answers` posts an *unauthenticated* ``GetSystemDateAndTime``, the one operation
  ONVIF allows before authentication (clients read the clock to sign with it). Any SOAP envelope
  back, a fault included, means the device service is up; wrong credentials are the discovery
  round's business, not liveness.
* :func:`rtsp_stream_answers` sends ``DESCRIBE`` for the stream and wants ``200``: a mount that
  is gone answers 404, a camera whose encoder hung often accepts TCP and then says nothing. Basic
  and Digest authentication (RFC 2617, as RTSP servers use it) are answered once.

Both return a :class:`ProbeResult` instead of raising: for a health check a failure is data.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp

from .onvif.models import DeviceAddress

RTSP_DEFAULT_PORT: Final = 554
MAX_HEADER_BYTES: Final = 16 * 1024
USER_AGENT: Final = "ivc-gateway-health"

_GET_SYSTEM_DATE_AND_TIME: Final = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
    b'<GetSystemDateAndTime xmlns="http://www.onvif.org/ver10/device/wsdl"/>'
    b"</s:Body></s:Envelope>"
)
_SOAP_CONTENT_TYPE: Final = (
    'application/soap+xml; charset=utf-8; action="http://www.onvif.org/ver10/device/wsdl/GetSystemDateAndTime"'
)
_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe's outcome: ``ok`` and, for logs, what happened."""

    ok: bool
    detail: str = ""


async def onvif_answers(http: aiohttp.ClientSession, address: DeviceAddress, timeout: float) -> ProbeResult:
    """Whether the device service at ``address`` answers SOAP within ``timeout`` seconds.

    ``http`` should not keep connections alive: cameras close idle connections after a few
    seconds, and a probe that reuses such a connection fails although the camera is fine.
    """
    try:
        async with asyncio.timeout(timeout):
            async with http.post(
                address.url, data=_GET_SYSTEM_DATE_AND_TIME, headers={"Content-Type": _SOAP_CONTENT_TYPE}
            ) as response:
                body = await response.content.read(64 * 1024)
    except TimeoutError:
        return ProbeResult(False, f"no ONVIF answer in {timeout:.1f} s")
    except (aiohttp.ClientError, OSError) as error:
        return ProbeResult(False, f"ONVIF unreachable: {type(error).__name__}: {error}")
    if b"Envelope" not in body:
        return ProbeResult(False, f"HTTP {response.status} without a SOAP envelope")
    return ProbeResult(True, f"HTTP {response.status}")


@dataclass(frozen=True, slots=True)
class _RtspTarget:
    host: str
    port: int
    url: str
    username: str
    password: str


def _target(uri: str, username: str, password: str) -> _RtspTarget:
    """Where to connect and the URL to name, with credentials embedded in the URI taken out."""
    parts = urlsplit(uri)
    if parts.scheme.lower() not in ("rtsp", "rtsps") or not parts.hostname:
        raise ValueError(f"not an rtsp:// URI: {parts.scheme}://{parts.hostname or ''}")
    host = parts.hostname
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return _RtspTarget(
        host=host,
        port=parts.port or RTSP_DEFAULT_PORT,
        url=url,
        username=unquote(parts.username) if parts.username else username,
        password=unquote(parts.password) if parts.password else password,
    )


async def rtsp_stream_answers(uri: str, timeout: float, *, username: str = "", password: str = "") -> ProbeResult:
    """Whether the RTSP server describes the stream at ``uri`` (``200``) within ``timeout`` seconds."""
    try:
        target = _target(uri, username, password)
    except ValueError as error:
        return ProbeResult(False, str(error))
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(target.host, target.port)
            status, headers = await _describe(reader, writer, target, cseq=1, authorization=None)
            if status == 401 and target.username:
                authorization = _authorization(headers.get("www-authenticate", []), target)
                if authorization is not None:
                    status, headers = await _describe(reader, writer, target, cseq=2, authorization=authorization)
    except TimeoutError:
        return ProbeResult(False, f"no RTSP answer in {timeout:.1f} s")
    except (OSError, asyncio.IncompleteReadError, ValueError) as error:
        return ProbeResult(False, f"RTSP failed: {type(error).__name__}: {error}")
    finally:
        if writer is not None:
            writer.close()
    if status == 200:
        return ProbeResult(True, "RTSP 200")
    return ProbeResult(False, f"RTSP {status}")


async def _describe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    target: _RtspTarget,
    *,
    cseq: int,
    authorization: str | None,
) -> tuple[int, dict[str, list[str]]]:
    """Send one DESCRIBE and read its status and headers (and skip its body, if any)."""
    lines = [f"DESCRIBE {target.url} RTSP/1.0", f"CSeq: {cseq}", "Accept: application/sdp", f"User-Agent: {USER_AGENT}"]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEADER_BYTES:
        raise ValueError("RTSP answer header too large")
    status_line, *header_lines = head.decode("utf-8", errors="replace").split("\r\n")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("RTSP/") or not fields[1].isdigit():
        raise ValueError(f"not an RTSP answer: {status_line[:80]!r}")
    headers: dict[str, list[str]] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), []).append(value.strip())
    length = int((headers.get("content-length") or ["0"])[0] or 0)
    if length > 0:
        await reader.readexactly(min(length, MAX_HEADER_BYTES))
    return int(fields[1]), headers


def _authorization(challenges: list[str], target: _RtspTarget) -> str | None:
    """An Authorization header for the strongest challenge offered (Digest, else Basic)."""
    for challenge in challenges:
        scheme, _, rest = challenge.partition(" ")
        if scheme.lower() == "digest":
            params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3) for m in _CHALLENGE_PARAM.finditer(rest)}
            return _digest(params, target)
    if any(challenge.lower().startswith("basic") for challenge in challenges):
        token = base64.b64encode(f"{target.username}:{target.password}".encode()).decode("ascii")
        return f"Basic {token}"
    return None


def _digest(params: dict[str, str], target: _RtspTarget) -> str | None:
    realm, nonce = params.get("realm"), params.get("nonce")
    if realm is None or nonce is None or params.get("algorithm", "MD5").upper() != "MD5":
        return None

    def md5(text: str) -> str:
        return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()

    ha1 = md5(f"{target.username}:{realm}:{target.password}")
    ha2 = md5(f"DESCRIBE:{target.url}")
    fields = [f'username="{target.username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{target.url}"']
    qop_options = [option.strip() for option in params.get("qop", "").split(",") if option.strip()]
    if "auth" in qop_options:
        cnonce, count = secrets.token_hex(8), "00000001"
        response = md5(f"{ha1}:{nonce}:{count}:{cnonce}:auth:{ha2}")
        fields += ["qop=auth", f"nc={count}", f'cnonce="{cnonce}"']
    else:
        response = md5(f"{ha1}:{nonce}:{ha2}")
    fields.append(f'response="{response}"')
    if "opaque" in params:
        fields.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join(fields)
