"""Helpers for tests that drive the simulated ONVIF devices.

* :class:`FakeMonotonicClock`: the clock PTZ and focus motion read; tests advance it.
* :func:`camera_description` / :func:`nvr_description`: ready-made device descriptions.
* :func:`onvif_client`: an ``ONVIFCamera`` from onvif-zeep-async, set up like Home Assistant does.
* :func:`post_soap` / :func:`security_header`: hand-made requests for what the library hides
  (replays, stale tokens, malformed envelopes).
* :func:`digest_authorization`: a minimal RFC 7616 client for the snapshot endpoint.
* :class:`OnvifResponseChecker`: re-parses a recorded response with zeep in strict mode and
  validates it against the XML schemas shipped with the library.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import os
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import av
import onvif
from lxml import etree
from onvif import ONVIFCamera
from onvif.client import ONVIFService
from onvif.definition import SERVICES
from onvif.transport import ASYNC_TRANSPORT
from zeep.plugins import HistoryPlugin
from zeep.settings import Settings
from zeep.wsdl import Document

from sim.onvif import ChannelDescription, DeviceDescription, DeviceKind, OnvifDeviceServer, Resolution
from sim.onvif.http_auth import parse_auth_params

WSDL_DIR = Path(onvif.__file__).resolve().parent / "wsdl"
USERNAME = "admin"
PASSWORD = "Pa55-word"
NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS_WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_PASSWORD_DIGEST_TYPE = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
)
_XS = "http://www.w3.org/2001/XMLSchema"


class FakeMonotonicClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.now += seconds


def rtsp_url(device: str, channel: int, stream: str) -> str:
    """A stream URL as the site's RTSP server would hand it over (never dialled in these tests)."""
    return f"rtsp://127.0.0.1:8554/{device}/ch{channel}/{stream}"


def camera_description(**overrides: Any) -> DeviceDescription:
    """A PTZ camera with one 1080p channel."""
    channel = ChannelDescription(
        video_source_token="VideoSource_1",
        main_stream_uri=rtsp_url("cam1", 1, "main"),
        sub_stream_uri=rtsp_url("cam1", 1, "sub"),
        main_resolution=Resolution(1920, 1080),
        sub_resolution=Resolution(640, 360),
        framerate=25,
        has_ptz=True,
    )
    description = DeviceDescription(
        kind=DeviceKind.CAMERA,
        name="Gate Camera",
        manufacturer="Acme Vision",
        model="AV-PTZ-200",
        firmware_version="V5.7.3 build 240110",
        serial_number="AV200-0001",
        mac_address="02:00:5e:00:00:01",
        hardware_id="88",
        username=USERNAME,
        password=PASSWORD,
        channels=(channel,),
    )
    return replace(description, **overrides)


def nvr_description(channel_count: int = 4, **overrides: Any) -> DeviceDescription:
    """An NVR whose last channel is a fixed camera (no PTZ) and the rest PTZ domes."""
    channels = tuple(
        ChannelDescription(
            video_source_token=f"VideoSource_{n}",
            main_stream_uri=rtsp_url("nvr1", n, "main"),
            sub_stream_uri=rtsp_url("nvr1", n, "sub"),
            main_resolution=Resolution(1280, 720),
            sub_resolution=Resolution(352, 288),
            framerate=15,
            has_ptz=n != channel_count,
        )
        for n in range(1, channel_count + 1)
    )
    description = DeviceDescription(
        kind=DeviceKind.NVR,
        name="Yard NVR",
        manufacturer="Acme Vision",
        model="AV-NVR-8",
        firmware_version="V4.1.0",
        serial_number="NVR8-0042",
        mac_address="02:00:5e:00:00:42",
        hardware_id="NVR8",
        username=USERNAME,
        password=PASSWORD,
        channels=channels,
    )
    return replace(description, **overrides)


@asynccontextmanager
async def onvif_client(
    device: OnvifDeviceServer,
    *,
    password: str = PASSWORD,
    adjust_time: bool = False,
    encrypt: bool = True,
    update_xaddrs: bool = True,
) -> AsyncIterator[ONVIFCamera]:
    """An ``ONVIFCamera`` for the device with its XAddrs resolved; closed on exit."""
    camera = ONVIFCamera(
        device.host,
        device.port,
        USERNAME,
        password,
        str(WSDL_DIR),
        encrypt=encrypt,
        no_cache=True,
        adjust_time=adjust_time,
    )
    try:
        if update_xaddrs:
            await camera.update_xaddrs()
        yield camera
    finally:
        await camera.close()


def security_header(password: str, created: datetime, nonce: bytes, username: str = USERNAME) -> str:
    """A WS-Security header with a PasswordDigest UsernameToken, built by hand."""
    created_text = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = base64.b64encode(
        hashlib.sha1(nonce + created_text.encode() + password.encode()).digest()
    ).decode()
    return (
        f'<wsse:Security xmlns:wsse="{NS_WSSE}" xmlns:wsu="{NS_WSU}"><wsse:UsernameToken>'
        f"<wsse:Username>{username}</wsse:Username>"
        f'<wsse:Password Type="{_PASSWORD_DIGEST_TYPE}">{digest}</wsse:Password>'
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
        f"<wsu:Created>{created_text}</wsu:Created>"
        "</wsse:UsernameToken></wsse:Security>"
    )


def soap_envelope(body: str, header: str = "", envelope_ns: str = NS_SOAP12) -> bytes:
    """A request envelope around raw body XML."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{envelope_ns}">'
        f"<soap:Header>{header}</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode()


async def post_soap(url: str, payload: bytes) -> tuple[int, bytes]:
    """POST a SOAP 1.2 request and return status and raw body."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=payload, headers={"Content-Type": "application/soap+xml"}) as response,
    ):
        return response.status, await response.read()


def fault_subcodes(body: bytes) -> list[str]:
    """The ``ter:`` subcode local names of a raw SOAP fault response."""
    root = etree.fromstring(body)
    values = root.findall(f".//{{{NS_SOAP12}}}Subcode/{{{NS_SOAP12}}}Value")
    return [(value.text or "").split(":")[-1] for value in values]


def zeep_fault_subcodes(fault: Any) -> list[str]:
    """The subcode local names of a ``zeep.exceptions.Fault``."""
    return [etree.QName(code).localname for code in (fault.subcodes or [])]


def decode_jpeg(data: bytes) -> tuple[int, int]:
    """Decode JPEG bytes with PyAV's MJPEG decoder; returns (width, height) of the picture."""
    decoder = av.CodecContext.create("mjpeg", "r")
    frames = decoder.decode(av.Packet(data))
    assert len(frames) == 1, "a JPEG must decode to exactly one picture"
    return frames[0].width, frames[0].height


def digest_authorization(challenge: str, method: str, uri: str, username: str, password: str) -> str:
    """Answer one ``Digest`` challenge (MD5, qop=auth) the RFC 7616 way."""
    params = parse_auth_params(challenge.partition(" ")[2])
    cnonce, nc = os.urandom(8).hex(), "00000001"
    ha1 = hashlib.md5(f"{username}:{params['realm']}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    response = hashlib.md5(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return (
        f'Digest username="{username}", realm="{params["realm"]}", nonce="{params["nonce"]}", '
        f'uri="{uri}", qop=auth, nc={nc}, cnonce="{cnonce}", response="{response}", '
        f'opaque="{params.get("opaque", "")}", algorithm=MD5'
    )


def record_responses(service: ONVIFService) -> HistoryPlugin:
    """Make an onvif-zeep-async service keep the last response envelope it parsed."""
    assert service.zeep_client is not None
    plugins = service.zeep_client.plugins
    plugins[:] = [plugin for plugin in plugins if not isinstance(plugin, HistoryPlugin)]
    history = HistoryPlugin()  # type: ignore[no-untyped-call]
    plugins.append(history)
    return history


def _embedded_schema(wsdl_path: Path) -> etree.XMLSchema:
    """The xs:schema inside a WSDL, with the WSDL root's prefixes so its QName values resolve."""
    wsdl = etree.parse(str(wsdl_path))
    embedded = wsdl.find(f".//{{{_XS}}}schema")
    assert embedded is not None
    schema = etree.Element(
        embedded.tag, attrib=dict(embedded.attrib), nsmap={**wsdl.getroot().nsmap, **embedded.nsmap}
    )
    schema.extend(copy.deepcopy(node) for node in embedded)
    schema_tree = etree.ElementTree(schema)
    schema.base = str(wsdl_path)
    return etree.XMLSchema(schema_tree)


class OnvifResponseChecker:
    """Strict zeep parsing plus XML Schema validation of recorded responses (blocking to build)."""

    SERVICE_NAMES = ("devicemgmt", "media", "ptz", "imaging")

    def __init__(self) -> None:
        strict = Settings(strict=True)
        self._documents: dict[str, Document] = {}
        self._schemas: dict[str, etree.XMLSchema] = {}
        for name in self.SERVICE_NAMES:
            path = WSDL_DIR / SERVICES[name]["wsdl"]
            self._documents[name] = Document(str(path), ASYNC_TRANSPORT, settings=strict)
            self._schemas[name] = _embedded_schema(path)

    def check(self, service_name: str, operation: str, envelope: etree._Element) -> list[str]:
        """Problems found in the response envelope; empty means it is clean."""
        binding_qname = f"{{{SERVICES[service_name]['ns']}}}{SERVICES[service_name]['binding']}"
        binding = self._documents[service_name].bindings[binding_qname]
        problems: list[str] = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                binding.get(operation).process_reply(envelope)  # type: ignore[no-untyped-call]
            except Exception as error:  # noqa: BLE001 - any parse failure is the finding
                problems.append(f"strict zeep: {type(error).__name__}: {error}")
        problems.extend(f"warning: {warning.message}" for warning in caught)
        body = envelope.find(f"{{{NS_SOAP12}}}Body")
        assert body is not None
        payload = body[0]
        schema = self._schemas[service_name]
        if not schema.validate(payload):
            problems.extend(f"schema: {entry.message}" for entry in schema.error_log)
        return problems
