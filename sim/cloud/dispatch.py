"""The one table of iss actions: every action name of the spec appears here, and only here.

Each action is one of:

* **emulated** — a handler and its parameter schema in ``sim.cloud.actions``;
* **forwarded** — a command the cloud relays to the device's gateway (PTZ, presets, streams,
  local recordings, snapshots): answered by the emulator's forwarder hook when one is set (the
  gateway relay of ``sim.cloud.relay`` by default, which applies the schema given here first),
  else ``UnsupportedOperation``;
* **not emulated** — a real action outside the gateway's scope: ``UnsupportedOperation``.

``region_required`` mirrors the "Region" column of spec README section 9.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .actions import backup_plans, device_control, devices, gateways, organizations, record_plans
from .actions.context import Handler
from .control import ask_gateway_for_channels
from .schema import Params, Schema
from .state import EmulatorState

# Async work an emulated action needs before its store transaction (e.g. asking a gateway).
Prepare = Callable[[EmulatorState, Params], Awaitable[None]]

REGIONS = frozenset({"ap-beijing", "ap-chongqing", "ap-guangzhou", "ap-shanghai"})


class Route(enum.Enum):
    EMULATED = "emulated"
    FORWARDED = "forwarded"
    NOT_EMULATED = "not emulated"


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """How the emulator answers one action."""

    route: Route
    region_required: bool = False
    handler: Handler | None = None
    schema: Schema | None = None
    prepare: Prepare | None = None


def emulated(
    handler: Handler, schema: Schema, *, region_required: bool = False, prepare: Prepare | None = None
) -> ActionSpec:
    return ActionSpec(Route.EMULATED, region_required, handler, schema, prepare)


def forwarded(schema: Schema, *, region_required: bool = False) -> ActionSpec:
    return ActionSpec(Route.FORWARDED, region_required, schema=schema)


def not_emulated(*, region_required: bool = False) -> ActionSpec:
    return ActionSpec(Route.NOT_EMULATED, region_required)


ACTIONS: Mapping[str, ActionSpec] = MappingProxyType(
    {
        # Service configuration
        "DescribeDomainRegion": not_emulated(),
        "DescribeCNAME": not_emulated(),
        "DeleteDomain": not_emulated(),
        "DescribeDomain": not_emulated(),
        "AddStreamAuth": not_emulated(),
        "DescribeStreamAuth": not_emulated(),
        # Organization management
        "AddOrganization": not_emulated(),
        "DeleteOrganization": not_emulated(),
        "UpdateOrganization": not_emulated(),
        "DescribeOrganization": emulated(
            organizations.describe_organization, organizations.DESCRIBE_ORGANIZATION
        ),
        # Device management
        "DescribeDeviceRegion": emulated(devices.describe_device_region, devices.DESCRIBE_DEVICE_REGION),
        "AddUserDevice": emulated(devices.add_user_device, devices.ADD_USER_DEVICE, region_required=True),
        "DeleteUserDevice": emulated(
            devices.delete_user_device, devices.DELETE_USER_DEVICE, region_required=True
        ),
        "UpdateUserDevice": emulated(
            devices.update_user_device, devices.UPDATE_USER_DEVICE, region_required=True
        ),
        "DescribeUserDevice": emulated(devices.describe_user_device, devices.DESCRIBE_USER_DEVICE),
        "ListDevices": emulated(devices.list_devices, devices.LIST_DEVICES),
        "DescribeDeviceChannel": emulated(devices.describe_device_channel, devices.DESCRIBE_DEVICE_CHANNEL),
        "RefreshDeviceChannel": emulated(
            devices.refresh_device_channel,
            devices.REFRESH_DEVICE_CHANNEL,
            region_required=True,
            prepare=ask_gateway_for_channels,
        ),
        "UpdateDeviceStatus": emulated(
            devices.update_device_status, devices.UPDATE_DEVICE_STATUS, region_required=True
        ),
        "BatchOperateDevice": not_emulated(region_required=True),
        "UpdateDeviceOrganization": not_emulated(),
        # Device control (relayed to the device's gateway)
        "ControlDevicePTZ": forwarded(device_control.CONTROL_DEVICE_PTZ, region_required=True),
        "ControlDevicePreset": forwarded(device_control.CONTROL_DEVICE_PRESET, region_required=True),
        "DescribeDevicePreset": forwarded(device_control.DESCRIBE_DEVICE_PRESET, region_required=True),
        "CallISAPI": not_emulated(region_required=True),
        # Live preview
        "ControlDeviceStream": forwarded(device_control.CONTROL_DEVICE_STREAM),
        "SetForbidPlayChannels": not_emulated(),
        "QueryForbidPlayChannelList": not_emulated(),
        # Recording playback
        "DescribeRecordFile": not_emulated(region_required=True),
        "DescribeRecordPlaybackUrl": not_emulated(region_required=True),
        "DescribeVideoDownloadUrl": not_emulated(region_required=True),
        "ControlRecordTimeline": forwarded(device_control.CONTROL_RECORD_TIMELINE, region_required=True),
        "PlayRecord": forwarded(device_control.PLAY_RECORD),
        "ControlRecord": forwarded(device_control.CONTROL_RECORD, region_required=True),
        "DescribeRecordSlice": not_emulated(region_required=True),
        "CreateVideoDownloadTask": forwarded(device_control.CREATE_VIDEO_DOWNLOAD_TASK, region_required=True),
        # Recording plans
        "AddRecordPlan": emulated(record_plans.add_record_plan, record_plans.ADD_RECORD_PLAN),
        "DeleteRecordPlan": emulated(record_plans.delete_record_plan, record_plans.DELETE_RECORD_PLAN),
        "UpdateRecordPlan": emulated(record_plans.update_record_plan, record_plans.UPDATE_RECORD_PLAN),
        "DescribeRecordPlan": emulated(record_plans.describe_record_plan, record_plans.DESCRIBE_RECORD_PLAN),
        "ListRecordPlanDevices": emulated(
            record_plans.list_record_plan_devices, record_plans.LIST_RECORD_PLAN_DEVICES
        ),
        "ListRecordPlanChannels": emulated(
            record_plans.list_record_plan_channels, record_plans.LIST_RECORD_PLAN_CHANNELS
        ),
        "ListOrganizationChannelNumbers": emulated(
            record_plans.list_organization_channel_numbers, record_plans.LIST_ORGANIZATION_CHANNEL_NUMBERS
        ),
        "ListRecordPlans": emulated(record_plans.list_record_plans, record_plans.LIST_RECORD_PLANS),
        "AddRecordBackupPlan": emulated(
            backup_plans.add_record_backup_plan, backup_plans.ADD_RECORD_BACKUP_PLAN
        ),
        "DeleteRecordBackupPlan": emulated(
            backup_plans.delete_record_backup_plan, backup_plans.DELETE_RECORD_BACKUP_PLAN
        ),
        "UpdateRecordBackupPlan": emulated(
            backup_plans.update_record_backup_plan, backup_plans.UPDATE_RECORD_BACKUP_PLAN
        ),
        "DescribeRecordBackupPlan": emulated(
            backup_plans.describe_record_backup_plan, backup_plans.DESCRIBE_RECORD_BACKUP_PLAN
        ),
        "ListRecordBackupPlanDevices": emulated(
            backup_plans.list_record_backup_plan_devices, backup_plans.LIST_RECORD_BACKUP_PLAN_DEVICES
        ),
        "ListRecordBackupPlans": emulated(
            backup_plans.list_record_backup_plans, backup_plans.LIST_RECORD_BACKUP_PLANS
        ),
        "ListOrganizationChannels": emulated(
            record_plans.list_organization_channels, record_plans.LIST_ORGANIZATION_CHANNELS
        ),
        # Recording templates
        "AddRecordTemplate": emulated(record_plans.add_record_template, record_plans.ADD_RECORD_TEMPLATE),
        "DeleteRecordTemplate": emulated(
            record_plans.delete_record_template, record_plans.DELETE_RECORD_TEMPLATE
        ),
        "UpdateRecordTemplate": emulated(
            record_plans.update_record_template, record_plans.UPDATE_RECORD_TEMPLATE
        ),
        "DescribeRecordTemplate": emulated(
            record_plans.describe_record_template, record_plans.DESCRIBE_RECORD_TEMPLATE
        ),
        "ListRecordTemplates": emulated(
            record_plans.list_record_templates, record_plans.LIST_RECORD_TEMPLATES
        ),
        "AddRecordBackupTemplate": emulated(
            backup_plans.add_record_backup_template, backup_plans.ADD_RECORD_BACKUP_TEMPLATE
        ),
        "DeleteRecordBackupTemplate": emulated(
            backup_plans.delete_record_backup_template, backup_plans.DELETE_RECORD_BACKUP_TEMPLATE
        ),
        "UpdateRecordBackupTemplate": emulated(
            backup_plans.update_record_backup_template, backup_plans.UPDATE_RECORD_BACKUP_TEMPLATE
        ),
        "DescribeRecordBackupTemplate": emulated(
            backup_plans.describe_record_backup_template, backup_plans.DESCRIBE_RECORD_BACKUP_TEMPLATE
        ),
        "ListRecordBackupTemplates": emulated(
            backup_plans.list_record_backup_templates, backup_plans.LIST_RECORD_BACKUP_TEMPLATES
        ),
        # Recording tasks
        "AddRecordRetrieveTask": not_emulated(),
        "DeleteRecordRetrieveTask": not_emulated(),
        "DescribeRecordRetrieveTask": not_emulated(),
        "ListRecordRetrieveTasks": not_emulated(),
        "BatchDeleteVideoDownloadTask": not_emulated(),
        "ListVideoDownloadTask": not_emulated(),
        # AI analysis
        "AddAITask": not_emulated(),
        "DeleteAITask": not_emulated(),
        "UpdateAITask": not_emulated(),
        "UpdateAITaskStatus": not_emulated(),
        "DescribeAITaskResult": not_emulated(),
        "DescribeAITask": not_emulated(),
        "ListAITasks": not_emulated(),
        # Viewdata access gateway
        "ListGateways": emulated(gateways.list_gateways, gateways.LIST_GATEWAYS),
        "DescribeGateway": emulated(gateways.describe_gateway, gateways.DESCRIBE_GATEWAY),
        "UpdateGateway": emulated(gateways.update_gateway, gateways.UPDATE_GATEWAY),
        "DeleteGateway": not_emulated(region_required=True),
        "ListGatewayDevices": emulated(gateways.list_gateway_devices, gateways.LIST_GATEWAY_DEVICES),
        "DescribeGatewayVersion": emulated(
            gateways.describe_gateway_version, gateways.DESCRIBE_GATEWAY_VERSION
        ),
        "DescribeGatewayProtocol": emulated(
            gateways.describe_gateway_protocol, gateways.DESCRIBE_GATEWAY_PROTOCOL
        ),
        "DescribeGatewayMonitor": emulated(
            gateways.describe_gateway_monitor, gateways.DESCRIBE_GATEWAY_MONITOR
        ),
        "UpgradeGateway": not_emulated(region_required=True),
        # Task management
        "DescribeTask": not_emulated(),
        "ListSubTasks": not_emulated(),
        "ListTasks": not_emulated(),
        "DeleteTask": not_emulated(),
        # O&M queries
        "DescribeVideoBitRate": not_emulated(),
        "DescribeGBDeviceAddr": not_emulated(),
        # Image snapshot
        "ControlDeviceSnapshot": forwarded(device_control.CONTROL_DEVICE_SNAPSHOT, region_required=True),
        "ListDeviceSnapshots": forwarded(device_control.LIST_DEVICE_SNAPSHOTS),
    }
)
