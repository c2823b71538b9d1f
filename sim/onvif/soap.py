"""SOAP 1.2 envelopes and faults as ONVIF devices send them.

ONVIF fault codes are nested: a SOAP code (Sender, Receiver), then one or more ``ter:`` subcodes
(for example ``ter:InvalidArgVal`` / ``ter:NoToken``). zeep turns such a reply into a ``Fault``
whose ``subcodes`` the onvif library's ``is_auth_error`` inspects, so the subcodes must be QNames
resolvable through namespace declarations on the envelope. Following the SOAP 1.2 HTTP binding,
Sender faults travel with HTTP 400 and Receiver faults with HTTP 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lxml import etree
from lxml.builder import ElementMaker

NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS_TT = "http://www.onvif.org/ver10/schema"
NS_TDS = "http://www.onvif.org/ver10/device/wsdl"
NS_TRT = "http://www.onvif.org/ver10/media/wsdl"
NS_TPTZ = "http://www.onvif.org/ver20/ptz/wsdl"
NS_TIMG = "http://www.onvif.org/ver20/imaging/wsdl"
NS_TER = "http://www.onvif.org/ver10/error"
NS_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS_WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
NS_EVENTS = "http://www.onvif.org/ver10/events/wsdl"

RESPONSE_NSMAP = {
    "env": NS_SOAP12,
    "ter": NS_TER,
    "tt": NS_TT,
    "tds": NS_TDS,
    "trt": NS_TRT,
    "tptz": NS_TPTZ,
    "timg": NS_TIMG,
}

TT = ElementMaker(namespace=NS_TT)
TDS = ElementMaker(namespace=NS_TDS)
TRT = ElementMaker(namespace=NS_TRT)
TPTZ = ElementMaker(namespace=NS_TPTZ)
TIMG = ElementMaker(namespace=NS_TIMG)
_ENV = ElementMaker(namespace=NS_SOAP12)

SOAP_CONTENT_TYPE = "application/soap+xml; charset=utf-8"

INVALID_UTF8_PLACEHOLDER = "\ue000"
"""A private-use character that ``envelope_bytes`` replaces with bytes that are not UTF-8.

lxml refuses to serialise invalid text, so a handler that must emit broken bytes (the
``bad_utf8`` quirk) writes this placeholder and the serialiser splices the bad bytes in.
"""
_INVALID_UTF8_PLACEHOLDER_BYTES = INVALID_UTF8_PLACEHOLDER.encode("utf-8")
_INVALID_UTF8_BYTES = b"\xff\xfe"


class FaultCode(StrEnum):
    """The SOAP 1.2 top-level fault codes the simulator uses."""

    SENDER = "Sender"
    RECEIVER = "Receiver"
    VERSION_MISMATCH = "VersionMismatch"


class SoapFault(Exception):
    """An ONVIF fault to send back instead of a response; raised by handlers and the auth check."""

    def __init__(self, code: FaultCode, subcodes: tuple[str, ...], reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.subcodes = subcodes
        self.reason = reason

    @property
    def http_status(self) -> int:
        """400 for the client's fault, 500 for the device's (SOAP 1.2 HTTP binding)."""
        return 500 if self.code is FaultCode.RECEIVER else 400


def not_authorized() -> SoapFault:
    """WS-Security rejected the request (``ter:NotAuthorized``)."""
    return SoapFault(FaultCode.SENDER, ("NotAuthorized",), "Sender not Authorized")


def action_not_supported(what: str) -> SoapFault:
    """The operation is optional and this device does not implement it.

    The reason text contains "Action Not Implemented", the phrase clients such as Home
    Assistant look for when deciding to fall back (e.g. from Stop to a zero-velocity move).
    """
    return SoapFault(FaultCode.RECEIVER, ("ActionNotSupported",), f"Optional Action Not Implemented: {what}")


def invalid_arg(subcode: str, reason: str) -> SoapFault:
    """An argument names something that does not exist or is out of range."""
    return SoapFault(FaultCode.SENDER, ("InvalidArgVal", subcode), reason)


def invalid_args(reason: str) -> SoapFault:
    """A required argument is missing or unparsable."""
    return SoapFault(FaultCode.SENDER, ("InvalidArgs",), reason)


@dataclass(frozen=True)
class SoapRequest:
    """A parsed request: the operation element of the Body and the optional Header."""

    operation: etree.QName
    body: etree._Element
    header: etree._Element | None


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)


def parse_request(payload: bytes) -> SoapRequest:
    """Parse a SOAP 1.2 request; anything else becomes the fault a device would send."""
    try:
        root = etree.fromstring(payload, parser=_PARSER)
    except etree.XMLSyntaxError as error:
        raise SoapFault(FaultCode.SENDER, ("WellFormed",), f"XML not well-formed: {error}") from error
    if root.tag == f"{{{NS_SOAP11}}}Envelope":
        raise SoapFault(FaultCode.VERSION_MISMATCH, (), "SOAP 1.2 envelope expected")
    if root.tag != f"{{{NS_SOAP12}}}Envelope":
        raise SoapFault(FaultCode.SENDER, ("WellFormed",), "root element is not a SOAP Envelope")
    body = root.find(f"{{{NS_SOAP12}}}Body")
    operation = None if body is None else next((c for c in body if isinstance(c.tag, str)), None)
    if operation is None:
        raise SoapFault(FaultCode.SENDER, ("InvalidArgs",), "SOAP Body holds no operation")
    return SoapRequest(
        operation=etree.QName(operation),
        body=operation,
        header=root.find(f"{{{NS_SOAP12}}}Header"),
    )


def _envelope(payload: etree._Element) -> etree._Element:
    envelope = etree.Element(f"{{{NS_SOAP12}}}Envelope", nsmap=RESPONSE_NSMAP)
    body = etree.SubElement(envelope, f"{{{NS_SOAP12}}}Body")
    body.append(payload)
    return envelope


def envelope_bytes(payload: etree._Element) -> bytes:
    """Serialise a response element inside a SOAP 1.2 envelope (UTF-8 with declaration)."""
    serialized: bytes = etree.tostring(_envelope(payload), xml_declaration=True, encoding="UTF-8")
    return serialized.replace(_INVALID_UTF8_PLACEHOLDER_BYTES, _INVALID_UTF8_BYTES)


def _subcode_chain(subcodes: tuple[str, ...]) -> list[etree._Element]:
    """Nest ``Subcode/Value`` elements innermost-last, as SOAP 1.2 requires."""
    if not subcodes:
        return []
    first, *rest = subcodes
    return [_ENV.Subcode(_ENV.Value(f"ter:{first}"), *_subcode_chain(tuple(rest)))]


def fault_bytes(fault: SoapFault) -> bytes:
    """Serialise a fault envelope."""
    payload = _ENV.Fault(
        _ENV.Code(_ENV.Value(f"env:{fault.code.value}"), *_subcode_chain(fault.subcodes)),
        _ENV.Reason(_ENV.Text(fault.reason, {"{http://www.w3.org/XML/1998/namespace}lang": "en"})),
    )
    return envelope_bytes(payload)
