"""HTTP side of a camera session: the one aiohttp session per device, TLS, and transport errors.

Everything that is about the connection rather than about ONVIF lives here: which TLS check a
device gets, how aiohttp's exceptions become :mod:`bridges.errors` types, and which of them are
worth retrying.

TLS: onvif-zeep-async builds every connector with a context that accepts any certificate
(``onvif.util.create_no_verify_ssl_context``). We verify by default and switch verification off
only for a device configured with ``verify_tls=False`` (cameras with self-signed certificates).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import aiohttp
from onvif.const import KEEPALIVE_EXPIRY
from onvif.util import create_no_verify_ssl_context

from ..errors import DeviceError, DeviceTimeout, DeviceUnreachable

_LOGGER = logging.getLogger(__name__)

# onvif-zeep-async logs every SOAP request body at DEBUG, WS-Security header included, and a
# PasswordText token is the password in clear. Keep that logger above DEBUG whatever the daemon's
# log level, so credentials never reach a log file.
logging.getLogger("onvif.zeep_aiohttp").setLevel(logging.INFO)

_P = ParamSpec("_P")
_T = TypeVar("_T")

DEFAULT_RETRY_ATTEMPTS = 3
DEFAULT_RETRY_BACKOFF_S = 0.2


def tls_setting(verify_tls: bool) -> ssl.SSLContext | bool:
    """What the connector gets as ``ssl=``: ``True`` is aiohttp's verifying default context.

    The non-verifying context is onvif-zeep-async's own (it also re-enables old ciphers and
    legacy renegotiation, which old camera firmwares need); it is only built when asked for.
    """
    if verify_tls:
        return True
    relaxed: ssl.SSLContext = create_no_verify_ssl_context()
    return relaxed


def build_http_session(*, verify_tls: bool, connect_timeout_s: float) -> aiohttp.ClientSession:
    """The one HTTP session of a device, shared by its SOAP services and its snapshots.

    Idle keep-alive sockets are dropped after ``KEEPALIVE_EXPIRY`` (4 s), as onvif-zeep-async
    does, because many cameras close idle connections after about 5 s and a request written to
    such a socket fails. Only the connect phase has a timeout here; each operation gets its own
    deadline from the session (``asyncio.timeout``), so a slow answer becomes DeviceTimeout
    while a connect that does not complete becomes DeviceUnreachable.
    """
    connector = aiohttp.TCPConnector(
        ssl=tls_setting(verify_tls),
        keepalive_timeout=KEEPALIVE_EXPIRY,
        limit_per_host=4,
    )
    timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout_s, sock_connect=connect_timeout_s)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False)


def _root_cause(error: BaseException) -> BaseException:
    """onvif-zeep-async re-raises aiohttp's timeouts as a bare TimeoutError; look through it
    (but not through asyncio.timeout's own TimeoutError, whose cause is a CancelledError)."""
    cause = error
    while isinstance(cause, TimeoutError) and isinstance(cause.__cause__, TimeoutError | aiohttp.ClientError):
        cause = cause.__cause__
    return cause


def is_connect_error(error: BaseException) -> bool:
    """Whether the request failed before reaching the device, so sending it again is safe.

    Connection refused, DNS failure and a connect timeout qualify; a TLS certificate the device
    keeps presenting does not (retrying cannot change it), and nor does anything that happened
    after the request was written (a reset or a disconnect mid-answer could follow a PTZ move the
    device already executed). onvif-zeep-async's transport separately retries, once, a pooled
    keep-alive socket found dead before writing.
    """
    cause = _root_cause(error)
    if isinstance(cause, aiohttp.ClientSSLError):
        return False
    return isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


def retry_connection_error(
    attempts: int = DEFAULT_RETRY_ATTEMPTS,
    backoff_s: float = DEFAULT_RETRY_BACKOFF_S,
    should_retry: Callable[[BaseException], bool] = is_connect_error,
) -> Callable[[Callable[_P, Awaitable[_T]]], Callable[_P, Awaitable[_T]]]:
    """Retry a coroutine function on transport errors only, a bounded number of times.

    Waits ``backoff_s``, then twice that, and so on between attempts; the last error is
    re-raised unchanged. Every other exception (faults, timeouts after connecting, bad XML)
    propagates at once: repeating those would only load a struggling device further.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")

    def decorate(func: Callable[_P, Awaitable[_T]]) -> Callable[_P, Awaitable[_T]]:
        @functools.wraps(func)
        async def retrying(*args: _P.args, **kwargs: _P.kwargs) -> _T:
            for attempt in range(1, attempts + 1):
                try:
                    return await func(*args, **kwargs)
                except Exception as error:
                    if attempt == attempts or not should_retry(error):
                        raise
                    delay = backoff_s * 2 ** (attempt - 1)
                    _LOGGER.debug(
                        "%s: transport error (%s), attempt %d/%d, retrying in %.2f s",
                        func.__qualname__,
                        type(_root_cause(error)).__name__,
                        attempt,
                        attempts,
                        delay,
                    )
                    await asyncio.sleep(delay)
            raise AssertionError("unreachable: the loop returns or raises")

        return retrying

    return decorate


def translate_transport_error(
    error: BaseException, *, host: str, device: str, what: str
) -> DeviceError | None:
    """The bridge error for an aiohttp/timeout failure, or None when it is not a transport error."""
    cause = _root_cause(error)
    if isinstance(cause, aiohttp.ClientSSLError):
        return DeviceUnreachable(f"{what}: TLS handshake failed ({cause})", host=host, device=device)
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return DeviceUnreachable(f"{what}: no connection within the time limit", host=host, device=device)
    if isinstance(cause, aiohttp.ClientConnectorError):
        return DeviceUnreachable(f"{what}: cannot connect ({cause.os_error})", host=host, device=device)
    if isinstance(cause, aiohttp.ClientConnectionError):
        return DeviceUnreachable(f"{what}: connection lost ({cause})", host=host, device=device)
    if isinstance(cause, TimeoutError):
        return DeviceTimeout(f"{what}: no answer within the time limit", host=host, device=device)
    return None
