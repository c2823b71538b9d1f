"""Parsed ONVIF WSDL documents, loaded once per process in a worker thread.

zeep parses a WSDL and its imported schemas synchronously (file reads plus tens of milliseconds
of CPU per document). Done on the event loop that would stall every other camera, and done per
session it would repeat the same work for every device. onvif-zeep-async has a module cache
(``onvif.client._cached_document``) that loads off the loop, but two sessions opening at the same
moment both miss it and both parse. :class:`WsdlCatalog` does the load in a worker thread under
a thread lock, so a burst of sessions at start-up parses each document exactly once and the event
loop only awaits.

The documents are immutable once loaded and are derived from files shipped inside the onvif
package, so one catalog can serve the whole process; :func:`shared_wsdl_catalog` returns that
instance and a caller that wants its own (a test counting loads) passes one in.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import onvif
from onvif.client import DocumentWithDeferredLoad
from onvif.definition import SERVICES
from onvif.settings import DEFAULT_SETTINGS
from onvif.transport import ASYNC_TRANSPORT
from onvif.types import FastDateTime, ForgivingTime
from zeep.wsdl import Document

_LOGGER = logging.getLogger(__name__)

BUNDLED_WSDL_DIR = Path(onvif.__file__).resolve().parent / "wsdl"
"""The WSDL and XSD files onvif-zeep-async ships; never fetched from the network."""

_XSD_NAMESPACE = "http://www.w3.org/2001/XMLSchema"


def _parse_document(path: Path) -> Document:
    """Parse one WSDL the way onvif-zeep-async does (blocking).

    The library swaps zeep's xs:dateTime and xs:time types for forgiving ones before loading,
    because cameras send dates such as ``2024-08-17T00:61:16Z``; we keep that behaviour.
    """
    url = str(path)
    document = DocumentWithDeferredLoad(url, ASYNC_TRANSPORT, settings=DEFAULT_SETTINGS)
    schema = document.types.documents.get_by_namespace(_XSD_NAMESPACE, False)[0]
    schema.register_type(FastDateTime._default_qname, FastDateTime(is_global=True))
    schema.register_type(ForgivingTime._default_qname, ForgivingTime(is_global=True))
    document.types.add_documents([None], url)
    document.original_load(url)
    loaded: Document = document
    return loaded


class WsdlCatalog:
    """The parsed WSDL document of each ONVIF service, loaded on first use."""

    def __init__(self, wsdl_dir: Path = BUNDLED_WSDL_DIR) -> None:
        self._wsdl_dir = wsdl_dir
        self._documents: dict[str, Document] = {}
        self._load_lock = threading.Lock()
        self.loads = 0
        """How many documents were parsed (for tests that check the cache works)."""

    async def document(self, service: str) -> Document:
        """The document of a service named as in ``onvif.definition.SERVICES`` (``ptz``...)."""
        cached = self._documents.get(service)
        if cached is not None:
            return cached
        return await asyncio.to_thread(self._load, service)

    def _load(self, service: str) -> Document:
        """Runs in a worker thread; the lock makes concurrent first uses wait for one parse."""
        with self._load_lock:
            cached = self._documents.get(service)
            if cached is not None:
                return cached
            path = self._wsdl_dir / SERVICES[service]["wsdl"]
            document = _parse_document(path)
            self._documents[service] = document
            self.loads += 1
            _LOGGER.debug("parsed WSDL %s for the %s service", path.name, service)
            return document


_SHARED_CATALOG = WsdlCatalog()


def shared_wsdl_catalog() -> WsdlCatalog:
    """The process-wide catalog of the bundled WSDLs (immutable data, safe to share)."""
    return _SHARED_CATALOG
