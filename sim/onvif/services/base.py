"""What the server needs from each ONVIF service: where it lives and which operations it answers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from lxml import etree

OperationHandler = Callable[[etree._Element], etree._Element]
"""Takes the request's operation element, returns the response element (or raises SoapFault)."""


class OnvifService(Protocol):
    """One SOAP endpoint of the device."""

    @property
    def name(self) -> str:
        """Short name used in request counter keys, e.g. ``ptz`` in ``ptz.GetStatus``."""
        ...

    @property
    def path(self) -> str:
        """HTTP path of the endpoint."""
        ...

    @property
    def namespace(self) -> str:
        """WSDL target namespace; requests for operations of another namespace are refused."""
        ...

    @property
    def version(self) -> tuple[int, int]:
        """ONVIF version (major, minor) GetServices reports for this service."""
        ...

    def capabilities(self) -> etree._Element:
        """The service's own ``Capabilities`` element (GetServiceCapabilities, GetServices)."""
        ...

    def operations(self) -> Mapping[str, OperationHandler]:
        """Implemented operations by local name; anything missing answers ActionNotSupported."""
        ...
