"""Device control (PTZ, presets, streams, local recordings, snapshots): the parameter schemas.

These actions are forwarded to the device's gateway, which validates values fully (PTZ command
names, speed and preset ranges, time order) and answers with the documented codes. The platform
checks only what it must to route the command: the declared names, that the required ones are
present and that each has its JSON type; a forwarder (the gateway relay) applies these schemas
before sending anything.
"""

from __future__ import annotations

from .. import schema as s
from ..schema import Schema

INVALID_CHANNEL_ID = "InvalidParameterValue.InvalidChannelId"

_CHANNEL_ID = s.string(True, empty=INVALID_CHANNEL_ID)

CONTROL_DEVICE_PTZ: Schema = {"ChannelId": _CHANNEL_ID, "Type": s.string(True), "Speed": s.integer(True)}
CONTROL_DEVICE_PRESET: Schema = {"ChannelId": _CHANNEL_ID, "Cmd": s.string(True), "Index": s.integer(True)}
DESCRIBE_DEVICE_PRESET: Schema = {"ChannelId": _CHANNEL_ID}
CONTROL_DEVICE_STREAM: Schema = {
    "ChannelId": _CHANNEL_ID,
    "StreamType": s.string(),
    "Resolution": s.string(),
    "IsInternal": s.boolean(),
}
CONTROL_RECORD_TIMELINE: Schema = {"ChannelId": _CHANNEL_ID, "Start": s.integer(True), "End": s.integer(True)}
PLAY_RECORD: Schema = {
    "ChannelId": _CHANNEL_ID,
    "Start": s.integer(True),
    "End": s.integer(True),
    "StreamType": s.integer(),
    "Resolution": s.string(),
    "IsInternal": s.boolean(),
}
CONTROL_RECORD: Schema = {
    "ChannelId": _CHANNEL_ID,
    "Session": s.string(True),
    "ControlAction": s.string(True),
    "Position": s.integer(),
    "Scale": s.Param(s.Kind.FLOAT),
}
CREATE_VIDEO_DOWNLOAD_TASK: Schema = {
    "ChannelId": _CHANNEL_ID,
    "BeginTime": s.integer(True),
    "EndTime": s.integer(True),
    "Scale": s.integer(),
    "Expire": s.integer(),
    "FileType": s.integer(),
    "CompletionPolicy": s.integer(),
}
LIST_DEVICE_SNAPSHOTS: Schema = {
    "ChannelId": _CHANNEL_ID,
    "DeviceId": s.string(),
    "Start": s.integer(),
    "End": s.integer(),
    "PageNumber": s.integer(),
    "PageSize": s.integer(),
}
CONTROL_DEVICE_SNAPSHOT: Schema = {
    "ChannelId": _CHANNEL_ID,
    "SnapNum": s.integer(True),
    "Interval": s.integer(True),
    "Expire": s.integer(),
}
