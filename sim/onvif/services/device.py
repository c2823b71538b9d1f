"""Device management service (ver10, ``/onvif/device_service``).

Answers the calls a client makes while setting a device up: identity, clock, where the other
services live (GetCapabilities for old clients, GetServices for new ones), scopes and network
interfaces. Events are deliberately not advertised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from lxml import etree

from ..model import DateTimeSource, Quirk
from ..soap import (
    INVALID_UTF8_PLACEHOLDER,
    NS_TDS,
    TDS,
    TT,
    FaultCode,
    SoapFault,
    invalid_arg,
    invalid_args,
)
from ..state import DEVICE_PATH, DeviceState, ServiceAddresses
from ..xmlvalues import child, children, parse_xs_bool, required_text, xs_bool
from .base import OnvifService, OperationHandler

_LOGGER = logging.getLogger(__name__)

ONVIF_VERSION = (2, 60)
_CATEGORIES = ("Analytics", "Device", "Events", "Imaging", "Media", "PTZ")


def _date_time(name: str, epoch_seconds: float) -> etree._Element:
    """A tt:DateTime (Time before Date, as the schema orders them)."""
    moment = datetime.fromtimestamp(int(epoch_seconds), UTC)
    return TT(
        name,
        TT.Time(TT.Hour(str(moment.hour)), TT.Minute(str(moment.minute)), TT.Second(str(moment.second))),
        TT.Date(TT.Year(str(moment.year)), TT.Month(str(moment.month)), TT.Day(str(moment.day))),
    )


def _parse_utc(element: etree._Element) -> float:
    """Epoch seconds of a tt:DateTime; a date that cannot exist is ``ter:InvalidDateTime``."""
    time, date = child(element, "Time"), child(element, "Date")
    if time is None or date is None:
        raise invalid_arg("InvalidDateTime", "UTCDateTime needs Time and Date")
    try:
        moment = datetime(
            int(required_text(date, "Year")),
            int(required_text(date, "Month")),
            int(required_text(date, "Day")),
            int(required_text(time, "Hour")),
            int(required_text(time, "Minute")),
            int(required_text(time, "Second")),
            tzinfo=UTC,
        )
    except ValueError as error:
        raise invalid_arg("InvalidDateTime", f"invalid date/time: {error}") from None
    return moment.timestamp()


class DeviceService:
    """The device management endpoint; knows the other services so it can advertise them."""

    name = "device"
    path = DEVICE_PATH
    namespace = NS_TDS
    version = ONVIF_VERSION

    def __init__(
        self,
        state: DeviceState,
        addresses: ServiceAddresses,
        other_services: Sequence[OnvifService],
    ) -> None:
        self._state = state
        self._addresses = addresses
        self._other_services = tuple(other_services)

    def operations(self) -> Mapping[str, OperationHandler]:
        """Device management operations; GetNetworkInterfaces vanishes under ``no_network_interfaces``."""
        handlers: dict[str, OperationHandler] = {
            "GetDeviceInformation": self.get_device_information,
            "GetSystemDateAndTime": self.get_system_date_and_time,
            "SetSystemDateAndTime": self.set_system_date_and_time,
            "GetCapabilities": self.get_capabilities,
            "GetServices": self.get_services,
            "GetServiceCapabilities": self.get_service_capabilities,
            "GetScopes": self.get_scopes,
            "GetNetworkInterfaces": self.get_network_interfaces,
            "GetHostname": self.get_hostname,
        }
        if self._state.description.has_quirk(Quirk.NO_NETWORK_INTERFACES):
            del handlers["GetNetworkInterfaces"]
        return handlers

    def capabilities(self) -> etree._Element:
        """tds:DeviceServiceCapabilities: attributes only, nothing optional claimed."""
        return TDS.Capabilities(
            TDS.Network(IPFilter="false", ZeroConfiguration="false", IPVersion6="false", DynDNS="false"),
            TDS.Security(UsernameToken="true", HttpDigest="true"),
            TDS.System(DiscoveryResolve="true", DiscoveryBye="true", RemoteDiscovery="false"),
        )

    def get_device_information(self, _request: etree._Element) -> etree._Element:
        """Identity; the ``bad_utf8`` quirk appends bytes that are not UTF-8 to Model."""
        description = self._state.description
        model = description.model
        if description.has_quirk(Quirk.BAD_UTF8):
            model += INVALID_UTF8_PLACEHOLDER
        return TDS.GetDeviceInformationResponse(
            TDS.Manufacturer(description.manufacturer),
            TDS.Model(model),
            TDS.FirmwareVersion(description.firmware_version),
            TDS.SerialNumber(description.serial_number),
            TDS.HardwareId(description.hardware_id),
        )

    def get_system_date_and_time(self, _request: etree._Element) -> etree._Element:
        """The device clock in UTC (skew included); local time equals UTC (TZ ``UTC0``)."""
        now = self._state.device_time()
        return TDS.GetSystemDateAndTimeResponse(
            TDS.SystemDateAndTime(
                TT.DateTimeType(self._state.date_time_source.value),
                TT.DaylightSavings("false"),
                TT.TimeZone(TT.TZ("UTC0")),
                _date_time("UTCDateTime", now),
                _date_time("LocalDateTime", now),
            )
        )

    def set_system_date_and_time(self, request: etree._Element) -> etree._Element:
        """Manual time sets the clock (curing skew); NTP only switches the reported type."""
        source_text = required_text(request, "DateTimeType")
        try:
            source = DateTimeSource(source_text)
        except ValueError:
            raise invalid_arg("InvalidDateTime", f"unknown DateTimeType {source_text!r}") from None
        parse_xs_bool(required_text(request, "DaylightSavings"))
        utc = child(request, "UTCDateTime")
        if source is DateTimeSource.MANUAL:
            if utc is None:
                raise invalid_arg("InvalidDateTime", "Manual time needs UTCDateTime")
            self._state.clock_offset_s = _parse_utc(utc) - self._state.wall_clock()
            _LOGGER.info(
                "device %s clock set manually, offset now %.0f s",
                self._state.description.name,
                self._state.clock_offset_s,
            )
        self._state.date_time_source = source
        return TDS.SetSystemDateAndTimeResponse()

    def _xaddr(self, service_name: str) -> str | None:
        for service in (self, *self._other_services):
            if service.name == service_name:
                return self._addresses.xaddr(service.path)
        return None

    def _requested_categories(self, request: etree._Element) -> set[str]:
        requested = {(c.text or "").strip() for c in children(request, "Category")}
        if not requested or "All" in requested:
            return set(_CATEGORIES)
        unknown = requested - set(_CATEGORIES)
        if unknown:
            raise invalid_args(f"unknown capability category {sorted(unknown)}")
        return requested

    def get_capabilities(self, request: etree._Element) -> etree._Element:
        """tt:Capabilities for the requested categories, in schema order (no Events)."""
        wanted = self._requested_categories(request)
        builders: dict[str, Callable[[], etree._Element | None]] = {
            "Device": self._device_capabilities,
            "Imaging": lambda: self._xaddr_capability("Imaging", "imaging"),
            "Media": self._media_capabilities,
            "PTZ": lambda: self._xaddr_capability("PTZ", "ptz"),
        }
        parts = [builders[name]() for name in _CATEGORIES if name in wanted and name in builders]
        present = [part for part in parts if part is not None]
        if not present:
            raise SoapFault(
                FaultCode.RECEIVER,
                ("ActionNotSupported", "NoSuchService"),
                "the device has no service in the requested categories",
            )
        return TDS.GetCapabilitiesResponse(TDS.Capabilities(*present))

    def _device_capabilities(self) -> etree._Element:
        major, minor = ONVIF_VERSION
        return TT.Device(
            TT.XAddr(self._addresses.xaddr(DEVICE_PATH)),
            TT.Network(
                TT.IPFilter("false"),
                TT.ZeroConfiguration("false"),
                TT.IPVersion6("false"),
                TT.DynDNS("false"),
            ),
            TT.System(
                TT.DiscoveryResolve("true"),
                TT.DiscoveryBye("true"),
                TT.RemoteDiscovery("false"),
                TT.SystemBackup("false"),
                TT.SystemLogging("false"),
                TT.FirmwareUpgrade("false"),
                TT.SupportedVersions(TT.Major(str(major)), TT.Minor(str(minor))),
            ),
            TT.IO(TT.InputConnectors("0"), TT.RelayOutputs("0")),
            TT.Security(
                *(
                    TT(name, "false")
                    for name in (
                        "TLS1.1",
                        "TLS1.2",
                        "OnboardKeyGeneration",
                        "AccessPolicyConfig",
                        "X.509Token",
                        "SAMLToken",
                        "KerberosToken",
                        "RELToken",
                    )
                )
            ),
        )

    def _media_capabilities(self) -> etree._Element | None:
        xaddr = self._xaddr("media")
        if xaddr is None:
            return None
        return TT.Media(
            TT.XAddr(xaddr),
            TT.StreamingCapabilities(TT.RTPMulticast("false"), TT.RTP_TCP("true"), TT.RTP_RTSP_TCP("true")),
        )

    def _xaddr_capability(self, tag: str, service_name: str) -> etree._Element | None:
        xaddr = self._xaddr(service_name)
        return None if xaddr is None else TT(tag, TT.XAddr(xaddr))

    def get_services(self, request: etree._Element) -> etree._Element:
        """Every service with namespace, XAddr, version and, on request, its capabilities."""
        include = parse_xs_bool(required_text(request, "IncludeCapability"))
        entries = []
        for service in (self, *self._other_services):
            major, minor = service.version
            parts: list[etree._Element] = [
                TDS.Namespace(service.namespace),
                TDS.XAddr(self._addresses.xaddr(service.path)),
            ]
            if include:
                parts.append(TDS.Capabilities(service.capabilities()))
            parts.append(TDS.Version(TT.Major(str(major)), TT.Minor(str(minor))))
            entries.append(TDS.Service(*parts))
        return TDS.GetServicesResponse(*entries)

    def get_service_capabilities(self, _request: etree._Element) -> etree._Element:
        """The device service's own capabilities."""
        return TDS.GetServiceCapabilitiesResponse(self.capabilities())

    def get_scopes(self, _request: etree._Element) -> etree._Element:
        """Fixed scopes from the description (type, profile, hardware, name, location, MAC)."""
        return TDS.GetScopesResponse(
            *(
                TDS.Scopes(TT.ScopeDef("Fixed"), TT.ScopeItem(scope))
                for scope in self._state.description.scopes
            )
        )

    def get_network_interfaces(self, _request: etree._Element) -> etree._Element:
        """One enabled wired interface carrying the device's MAC and listening address."""
        return TDS.GetNetworkInterfacesResponse(
            TDS.NetworkInterfaces(
                TT.Enabled("true"),
                TT.Info(TT.Name("eth0"), TT.HwAddress(self._state.description.mac_address), TT.MTU("1500")),
                TT.IPv4(
                    TT.Enabled("true"),
                    TT.Config(
                        TT.Manual(TT.Address(self._addresses.host), TT.PrefixLength("8")),
                        TT.DHCP("false"),
                    ),
                ),
                token="eth0",
            )
        )

    def get_hostname(self, _request: etree._Element) -> etree._Element:
        """The device name as its hostname."""
        hostname = "".join(c if c.isalnum() or c == "-" else "-" for c in self._state.description.name)
        return TDS.GetHostnameResponse(
            TDS.HostnameInformation(TT.FromDHCP(xs_bool(False)), TT.Name(hostname or "device"))
        )
