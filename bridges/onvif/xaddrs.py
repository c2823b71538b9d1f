"""Service addresses (XAddrs) as devices print them, and as we use them.

A device advertises where its services live in GetServices or GetCapabilities. What it prints is
often wrong for us: the LAN address behind a NAT or port forward, a hostname we cannot resolve,
or a malformed ``http://host:port:port/path`` (seen on several firmwares,
home-assistant/core#92603). We reached the device service on a known scheme/host/port, so we keep
only the path and query of each XAddr and put them behind that origin. This assumes one origin
per device, which holds for the cameras and NVRs we target.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from onvif.definition import SERVICES
from onvif.util import normalize_url

from .models import DeviceAddress

SERVICE_BY_NAMESPACE: Mapping[str, str] = {
    definition["ns"]: name
    for name, definition in SERVICES.items()
    if name in ("devicemgmt", "media", "ptz", "imaging")
}
"""The services a camera session uses, by WSDL namespace (GetServices reports namespaces)."""

CAPABILITY_SERVICES: Mapping[str, str] = {
    "Device": "devicemgmt",
    "Media": "media",
    "PTZ": "ptz",
    "Imaging": "imaging",
}
"""GetCapabilities categories mapped to service names."""


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def rebase_xaddr(xaddr: str, address: DeviceAddress) -> str | None:
    """The advertised service path behind the origin we reached the device on.

    Returns None when the XAddr has no usable path (the service cannot be located).
    """
    try:
        parts = urlsplit(xaddr.strip())
    except ValueError:
        return None
    if not parts.path or parts.path == "/":
        return None
    scheme = "https" if address.https else "http"
    netloc = f"{_host_for_url(address.host)}:{address.port}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, ""))


def repair_url(url: str) -> str:
    """A URL with a doubled port (``host:80:80``) repaired; anything else unchanged.

    Used for URLs we do not rebase (stream and snapshot URIs may legitimately sit on another
    port or host than the ONVIF service).
    """
    return normalize_url(url.strip()) or url.strip()


def xaddrs_from_services(services: Iterable[Any], address: DeviceAddress) -> dict[str, str]:
    """Service name -> URL from a GetServices answer; entries without a usable XAddr are skipped."""
    found: dict[str, str] = {}
    for service in services or ():
        name = SERVICE_BY_NAMESPACE.get(getattr(service, "Namespace", None) or "")
        xaddr = getattr(service, "XAddr", None)
        url = rebase_xaddr(xaddr, address) if name and isinstance(xaddr, str) else None
        if name and url:
            found[name] = url
    return found


def xaddrs_from_capabilities(capabilities: Any, address: DeviceAddress) -> dict[str, str]:
    """Service name -> URL from a GetCapabilities answer (older devices without GetServices)."""
    found: dict[str, str] = {}
    for category, name in CAPABILITY_SERVICES.items():
        capability = getattr(capabilities, category, None)
        xaddr = getattr(capability, "XAddr", None)
        url = rebase_xaddr(xaddr, address) if isinstance(xaddr, str) else None
        if url:
            found[name] = url
    return found
