"""The emulated cloud's state, one dataclass per kind of object the iss API manages.

Records are plain mutable dataclasses: the store keeps them in memory for reads and writes
each changed one back to SQLite as a JSON document, so adding a field needs no migration
(missing keys take the field default when an older document is loaded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

# Device status values shared by AddDeviceData, DescribeDeviceData, ListDeviceInfo, GatewayDevice.
DEVICE_NOT_REGISTERED = 0
DEVICE_ONLINE = 1
DEVICE_OFFLINE = 2
DEVICE_DISABLED = 3

ACCESS_RTMP = 1
ACCESS_GB = 2
ACCESS_GATEWAY = 3
ACCESS_ISUP = 6

DEVICE_TYPE_IPC = 1
DEVICE_TYPE_NVR = 2

GATEWAY_OFFLINE = 0
GATEWAY_ONLINE = 1

PLAN_IN_USE = 1


@dataclass
class Organization:
    """A node of the organization tree; ``parent_ids`` is the comma-joined ancestor path ("0,100")."""

    KIND: ClassVar[str] = "organization"

    organization_id: str
    name: str
    parent_id: str
    parent_ids: str
    level: int

    @property
    def key(self) -> str:
        return self.organization_id


@dataclass
class Cluster:
    """A service node (DescribeDeviceRegion entry); its id is the ``ClusterId`` of AddUserDevice."""

    KIND: ClassVar[str] = "cluster"

    cluster_id: str
    label: str
    region: str

    @property
    def key(self) -> str:
        return self.cluster_id


@dataclass
class Gateway:
    """A viewdata access gateway; ``services`` are DescribeGatewayVersion entries (wire field names)."""

    KIND: ClassVar[str] = "gateway"

    gateway_id: str
    gw_id: str
    name: str
    description: str
    cluster_id: str
    status: int
    created_at: float
    secret: str
    services: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.gateway_id


@dataclass
class Device:
    """A device added with AddUserDevice.

    ``connection`` is the link state the platform sees (not registered / online / offline);
    the status clients read is "disabled" whenever ``enabled`` is false, else ``connection``.
    Keeping the two apart lets UpdateDeviceStatus enable a device without inventing its link state.
    """

    KIND: ClassVar[str] = "device"

    device_id: str
    code: str
    name: str
    access_protocol: int
    device_type: int
    organization_id: str
    cluster_id: str
    created_at: float
    transport_protocol: int = 0
    password: str = ""
    description: str = ""
    gateway_id: str = ""
    protocol_type: int = 0
    ip: str = ""
    port: int = 0
    username: str = ""
    sn_code: str = ""
    app_name: str = ""
    stream_name: str = ""
    manufacturer: str = ""
    enabled: bool = True
    connection: int = DEVICE_NOT_REGISTERED
    audio_switch: int = 1
    subscribe_switch: int = 1
    silent_frame_switch: int = 0

    @property
    def key(self) -> str:
        return self.device_id

    @property
    def status(self) -> int:
        return self.connection if self.enabled else DEVICE_DISABLED


@dataclass
class Channel:
    """A video channel of a device; ``index`` (1-based) matches channels reported again later.

    ``code_reported`` says whether ``code`` came from the device side (a ChannelCode such as an
    ONVIF video source token) or was made up by the platform (an IPC's automatic channel, a
    report without codes); a made-up code gives way to the first reported one at the same index.
    """

    KIND: ClassVar[str] = "channel"

    channel_id: str
    device_id: str
    index: int
    code: str
    name: str
    ptz_type: int = 0
    manufacturer: str = ""
    resolution: str = ""
    state: int = 0
    status: int = 0
    code_reported: bool = False

    @property
    def key(self) -> str:
        return self.channel_id


@dataclass
class ChannelReport:
    """Channels the device side declared, keyed by device id or by gateway address.

    The real platform learns a gateway device's channels from the gateway. Here they arrive as
    reports: from the gateway relay's answer to RefreshDeviceChannel, or declared by tests
    through the admin API for gateways that are not connected.
    """

    KIND: ClassVar[str] = "channel_report"

    report_key: str
    channels: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.report_key


@dataclass
class RecordTemplate:
    """A real-time cloud recording template (weekly ``TimeSections`` in wire form)."""

    KIND: ClassVar[str] = "record_template"

    template_id: str
    name: str
    time_sections: list[dict[str, Any]]

    @property
    def key(self) -> str:
        return self.template_id


@dataclass
class RecordPlan:
    """A real-time cloud recording plan; ``life_cycle`` is ``{"Transition", "Expiration"}``."""

    KIND: ClassVar[str] = "record_plan"

    plan_id: str
    name: str
    template_id: str
    describe: str
    stream_type: str
    life_cycle: dict[str, int]
    repair_mode: int
    channel_ids: list[str] = field(default_factory=list)
    status: int = PLAN_IN_USE

    @property
    def key(self) -> str:
        return self.plan_id


@dataclass
class BackupTemplate:
    """A recording upload template: device-recording sections, upload sections, speed."""

    KIND: ClassVar[str] = "backup_template"

    template_id: str
    name: str
    time_sections: list[dict[str, Any]]
    dev_time_sections: list[dict[str, Any]]
    scale: int
    created_at: float
    updated_at: float

    @property
    def key(self) -> str:
        return self.template_id


@dataclass
class BackupPlan:
    """A recording upload plan."""

    KIND: ClassVar[str] = "backup_plan"

    plan_id: str
    name: str
    template_id: str
    describe: str
    life_cycle: dict[str, int]
    created_at: float
    updated_at: float
    channel_ids: list[str] = field(default_factory=list)
    status: int = PLAN_IN_USE

    @property
    def key(self) -> str:
        return self.plan_id


Record = (
    Organization
    | Cluster
    | Gateway
    | Device
    | Channel
    | ChannelReport
    | RecordTemplate
    | RecordPlan
    | BackupTemplate
    | BackupPlan
)

RECORD_TYPES: tuple[type[Any], ...] = (
    Organization,
    Cluster,
    Gateway,
    Device,
    Channel,
    ChannelReport,
    RecordTemplate,
    RecordPlan,
    BackupTemplate,
    BackupPlan,
)
