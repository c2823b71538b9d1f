"""SOAP side of a camera session: zeep clients per service, WS-Security, fault translation.

One :class:`SoapClient` serves one device. It builds zeep clients lazily from the shared
:class:`~bridges.onvif.wsdl.WsdlCatalog`, signs requests with a UsernameToken whose ``Created``
follows the device's clock (see :class:`SkewedUsernameToken`) and turns every zeep or transport
failure into one :mod:`bridges.errors` type. Nothing here decides what a failure means for the
device; :class:`~bridges.onvif.session.CameraSession` does.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

import aiohttp
import zeep.exceptions
from lxml import etree
from onvif.client import AsyncTransportProtocolErrorHandler, ZeepAsyncClient
from onvif.definition import SERVICES
from onvif.settings import DEFAULT_SETTINGS
from onvif.util import is_auth_error, stringify_onvif_error
from onvif.wsa import WsAddressingIfMissingPlugin
from zeep.proxy import AsyncServiceProxy
from zeep.wsse.username import UsernameToken

from ..errors import (
    DeviceAuthFailed,
    DeviceBadResponse,
    DeviceBusy,
    DeviceError,
    DeviceRequestRejected,
    DeviceUnsupported,
)
from .transport import translate_transport_error
from .wsdl import WsdlCatalog

_LOGGER = logging.getLogger(__name__)

WallClock = Callable[[], float]
"""Epoch seconds now; injected so tests control what "now" is."""


class PasswordMode(enum.Enum):
    """How the UsernameToken carries the password."""

    DIGEST = "PasswordDigest"
    TEXT = "PasswordText"


_UNSUPPORTED_SUBCODES = frozenset(
    {
        "ActionNotSupported",
        "ActionNotImplemented",
        "NotSupported",
        "NoSuchService",
        "NoImagingForSource",
        "NoPTZProfile",
        "SnapshotNotSupported",
    }
)
"""ONVIF ``ter:`` subcodes meaning "this device does not do that"."""

_ARGUMENT_SUBCODES = frozenset({"InvalidArgVal", "InvalidArgs", "InvalidArgument"})
"""Subcodes blaming an argument (``ter:InvalidArgVal/ter:NoToken``...): the request is refused."""

_UNSUPPORTED_PHRASES = ("not implemented", "not supported")
"""Faults without a telling subcode: some firmwares only say it in the reason text."""

_BUSY_HTTP_STATUSES = frozenset({429, 503})
_AUTH_HTTP_STATUSES = frozenset({401, 403})
_MISSING_HTTP_STATUSES = frozenset({404, 405, 501})

_REPLY_PROCESSING_ERRORS: tuple[type[Exception], ...] = (
    zeep.exceptions.Error,
    etree.LxmlError,
    AttributeError,
    IndexError,
    KeyError,
    TypeError,
    ValueError,
)
"""What zeep raises while digesting an odd reply: its own parse/validation errors, but also
AttributeError or IndexError on a body that parsed to nothing, or ValueError from a type
converter fed ``<Width>abc</Width>``. Raised *before* a reply arrived, the same exceptions mean
our request was wrong, which is a bug and must not be blamed on the device."""

_LENIENT_PARSER = etree.XMLParser(
    recover=True, resolve_entities=False, no_network=True, huge_tree=True, remove_comments=True
)
"""Parses replies as forgivingly as zeep does with onvif-zeep-async's non-strict settings."""

_reply_received: ContextVar[bool] = ContextVar("onvif_reply_received", default=False)
"""Set by the transport in the calling task once the device answered the current request."""


class MalformedReply(zeep.exceptions.Error):
    """The device answered, but not with a SOAP envelope zeep can turn into a result."""

    def __init__(self, message: str) -> None:
        super().__init__(message)  # type: ignore[no-untyped-call]  # zeep has no annotations


def _status_error(status: int, content: bytes) -> zeep.exceptions.TransportError:
    """zeep's own exception for an HTTP status without a usable SOAP answer."""
    error: zeep.exceptions.TransportError = zeep.exceptions.TransportError(  # type: ignore[no-untyped-call]
        f"HTTP {status}", status_code=status, content=content
    )
    return error


def check_reply(status: int, content: bytes) -> None:
    """Classify an HTTP answer before zeep sees it.

    zeep parses leniently and then trips over what it made of a bad body (``None`` for text
    that is not XML, an IndexError for an empty Body) and reads an HTML error page sent with 401
    as an "Unknown fault". Here an auth or busy status wins over the body, and a body that is
    not an Envelope with an element in its Body becomes :class:`MalformedReply` (status 200) or
    a ``TransportError`` carrying the status (anything else).
    """
    if status in _AUTH_HTTP_STATUSES or status in _BUSY_HTTP_STATUSES:
        raise _status_error(status, content)
    if not content:
        return  # zeep handles empty answers (202 Accepted, or a TransportError with the status)
    try:
        root = etree.fromstring(content, parser=_LENIENT_PARSER)
    except etree.XMLSyntaxError:
        root = None
    is_envelope = root is not None and etree.QName(root).localname == "Envelope"
    body = root.find("{*}Body") if is_envelope and root is not None else None
    if body is not None and any(isinstance(child.tag, str) for child in body):
        return
    if status != 200:
        raise _status_error(status, content)
    raise MalformedReply("the answer is not a SOAP envelope with a body")


class CheckedTransport(AsyncTransportProtocolErrorHandler):  # type: ignore[misc]  # untyped base
    """onvif-zeep-async's aiohttp transport (which retries once when a pooled keep-alive socket
    turns out dead before the request is written), plus :func:`check_reply` on every answer."""

    async def post_xml(self, address: str, envelope: Any, headers: dict[str, str]) -> Any:
        """POST the envelope; note that a reply arrived, then vet it."""
        response = await super().post_xml(address, envelope, headers)
        _reply_received.set(True)
        check_reply(response.status_code, response.content or b"")
        return response


class SkewedUsernameToken(UsernameToken):
    """A WS-Security UsernameToken stamped with the device's time, not ours.

    Devices reject a PasswordDigest whose ``Created`` lies outside their freshness window (gSOAP
    uses 5 minutes), so a camera whose clock is off refuses a correctly signed request. Like Home
    Assistant we measure the offset once (unauthenticated GetSystemDateAndTime) and add it to our
    clock on every request, which leaves the camera's clock alone. Zulu timestamps because some
    firmwares (Hikvision) reject the numeric ``+00:00`` zone zeep writes otherwise.
    """

    def __init__(self, username: str, password: str, clock: WallClock) -> None:
        super().__init__(  # type: ignore[no-untyped-call]  # zeep has no annotations
            username, password, use_digest=True, zulu_timestamp=True
        )
        self._clock = clock
        self.offset_s = 0.0
        self.mode = PasswordMode.DIGEST

    def apply(self, envelope: Any, headers: Any) -> Any:
        """Sign one request; runs synchronously, so the temporary ``created`` cannot leak."""
        self.use_digest = self.mode is PasswordMode.DIGEST
        self.created = dt.datetime.fromtimestamp(self._clock() + self.offset_s, dt.UTC)
        try:
            return super().apply(envelope, headers)  # type: ignore[no-untyped-call]
        finally:
            self.created = None


def fault_subcodes(fault: zeep.exceptions.Fault) -> list[str]:
    """Local names of a fault's subcodes (``ActionNotSupported``...), whatever their form."""
    subcodes = fault.subcodes or []
    if not isinstance(subcodes, list):
        subcodes = [subcodes]
    names: list[str] = []
    for code in subcodes:
        text = code.text if isinstance(code, etree.QName) else str(code)
        names.append(text.rpartition("}")[2].rpartition(":")[2])
    return names


def _translate_fault(fault: zeep.exceptions.Fault, *, host: str, device: str, what: str) -> DeviceError:
    description = stringify_onvif_error(fault)
    subcodes = set(fault_subcodes(fault))
    if is_auth_error(fault):
        return DeviceAuthFailed(f"{what}: credentials refused ({description})", host=host, device=device)
    unsupported = DeviceUnsupported(f"{what}: not supported by the device", host=host, device=device)
    rejected = DeviceRequestRejected(f"{what}: refused ({description})", host=host, device=device)
    if subcodes & _UNSUPPORTED_SUBCODES:
        return unsupported
    if subcodes & _ARGUMENT_SUBCODES:
        return rejected
    if any(phrase in description.lower() for phrase in _UNSUPPORTED_PHRASES):
        return unsupported
    return rejected


def _translate_http_status(
    error: zeep.exceptions.TransportError, *, host: str, device: str, what: str
) -> DeviceError:
    status = error.status_code
    if status in _AUTH_HTTP_STATUSES:
        return DeviceAuthFailed(f"{what}: HTTP {status}", host=host, device=device)
    if status in _MISSING_HTTP_STATUSES:
        return DeviceUnsupported(f"{what}: HTTP {status}, no such service", host=host, device=device)
    if status in _BUSY_HTTP_STATUSES:
        return DeviceBusy(f"{what}: HTTP {status}", host=host, device=device)
    return DeviceBadResponse(f"{what}: HTTP {status} without a SOAP answer", host=host, device=device)


def translate_soap_error(error: BaseException, *, host: str, device: str, what: str) -> DeviceError | None:
    """The bridge error for a failed SOAP call, or None for an exception that is not expected
    from a SOAP exchange (a bug, which the caller lets propagate)."""
    if isinstance(error, zeep.exceptions.Fault):
        return _translate_fault(error, host=host, device=device, what=what)
    if isinstance(error, zeep.exceptions.TransportError):
        return _translate_http_status(error, host=host, device=device, what=what)
    transport_error = translate_transport_error(error, host=host, device=device, what=what)
    if transport_error is not None:
        return transport_error
    if isinstance(error, MalformedReply | aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return DeviceBadResponse(f"{what}: malformed response ({error})", host=host, device=device)
    return None


class SoapClient:
    """zeep service proxies for one device, signed or anonymous, created on first use.

    ``xaddrs`` maps a service name (``devicemgmt``, ``media``, ``ptz``, ``imaging``) to its URL;
    the session fills it in after normalising what the device advertised.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        catalog: WsdlCatalog,
        token: SkewedUsernameToken,
        device_url: str,
    ) -> None:
        self._transport = CheckedTransport(session=http)
        self._catalog = catalog
        self._token = token
        self.xaddrs: dict[str, str] = {"devicemgmt": device_url}
        self._proxies: dict[tuple[str, bool], AsyncServiceProxy] = {}

    def has_service(self, service: str) -> bool:
        """Whether the device advertised the service."""
        return service in self.xaddrs

    def set_xaddrs(self, xaddrs: Mapping[str, str]) -> None:
        """Replace the service addresses; proxies bound to old addresses are dropped."""
        self.xaddrs = dict(xaddrs)
        self._proxies.clear()

    async def proxy(self, service: str, *, signed: bool = True) -> AsyncServiceProxy:
        """The proxy of a service, bound to its XAddr (loads the WSDL once, off the loop)."""
        key = (service, signed)
        existing = self._proxies.get(key)
        if existing is not None:
            return existing
        document = await self._catalog.document(service)
        client = ZeepAsyncClient(
            wsdl=document,
            wsse=self._token if signed else None,
            transport=self._transport,
            settings=DEFAULT_SETTINGS,
            plugins=[WsAddressingIfMissingPlugin()],
        )
        binding = f"{{{SERVICES[service]['ns']}}}{SERVICES[service]['binding']}"
        proxy: AsyncServiceProxy = client.create_service(binding, self.xaddrs[service])
        self._proxies[key] = proxy
        return proxy

    async def call(self, service: str, operation: str, params: Mapping[str, Any], *, signed: bool) -> Any:
        """Run one operation; a reply zeep cannot digest comes out as :class:`MalformedReply`."""
        method = getattr(await self.proxy(service, signed=signed), operation)
        reset = _reply_received.set(False)
        try:
            return await method(**params)
        except (zeep.exceptions.Fault, zeep.exceptions.TransportError, MalformedReply):
            raise
        except _REPLY_PROCESSING_ERRORS as error:
            if not _reply_received.get():
                raise
            raise MalformedReply(f"{type(error).__name__}: {error}") from error
        finally:
            _reply_received.reset(reset)
