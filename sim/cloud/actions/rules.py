"""Value rules several action groups share: name and id formats, times, lifecycles, paging.

Each rule takes the error codes to raise as arguments, because the spec gives the same rule
different codes in different actions (e.g. a bad plan name is ``IllegalName`` for a real-time
plan and ``InvalidName`` for an upload plan).
"""

from __future__ import annotations

import itertools
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from gateway.iss.errors import IssError

from .. import schema as s

# The platform is in China; the spec's time strings carry no zone, its ISO examples use +08:00.
PLATFORM_TZ = timezone(timedelta(hours=8))
APP_ID = 1300000000

_CJK = "\u3400-\u4dbf\u4e00-\u9fff"
# Plan, template and gateway names: Chinese characters, English letters, digits, "_" and "-".
PLAIN_NAME = re.compile(rf"[{_CJK}A-Za-z0-9_-]+")
# Device names additionally allow spaces and Chinese or English parentheses.
DEVICE_NAME = re.compile(rf"[{_CJK}A-Za-z0-9_\- ()（）]+")
# Descriptions of plans: as plain names; empty is allowed.
PLAIN_TEXT = re.compile(rf"[{_CJK}A-Za-z0-9_-]*")
# Device, channel, gateway and cluster ids: UUID-shaped, five alphanumeric groups.
ENTITY_ID = re.compile(r"[0-9A-Za-z]+(?:-[0-9A-Za-z]+){4}")
# Plan and template ids: hex or UUID-shaped strings.
OPAQUE_ID = re.compile(r"[0-9A-Za-z-]{1,64}")
ORGANIZATION_ID = re.compile(r"[0-9]{1,20}")
STREAM_TYPE = re.compile(r"[A-Za-z0-9_-]+")
HH_MM_SS = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])")
MIN_SECTION_SECONDS = 600

T = TypeVar("T")


def new_uuid() -> str:
    return str(uuid.uuid4())


def new_hex_id() -> str:
    return uuid.uuid4().hex


def new_secret() -> str:
    return secrets.token_hex(16)


def local_time(timestamp: float) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in platform time, the format of CreateAt/UpdateAt."""
    return datetime.fromtimestamp(timestamp, PLATFORM_TZ).strftime("%Y-%m-%d %H:%M:%S")


def iso_time(timestamp: float) -> str:
    """ISO 8601 with the platform offset, as the gateway examples return ``CreatedAt``."""
    return datetime.fromtimestamp(int(timestamp), PLATFORM_TZ).isoformat()


# -- time sections ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimeSectionCodes:
    """The codes one action family uses for RecordTemplateTimeSections violations."""

    day: str
    time_format: str
    order: str
    too_short: str = "InvalidParameterValue.TimeLessThanTenMinutes"
    overlap: str = "InvalidParameter.InvalidTimeSection"


@dataclass(frozen=True, slots=True)
class TimeSection:
    day_of_week: int
    start: int
    end: int

    @property
    def seconds(self) -> int:
        return self.end - self.start


def time_section_param(shape_code: str) -> s.Param:
    """Schema of one RecordTemplateTimeSections element; shape errors raise ``shape_code``."""
    fields = {
        "DayOfWeek": s.integer(True, missing=shape_code, wrong_type=shape_code),
        "StartTime": s.string(True, missing=shape_code, wrong_type=shape_code),
        "EndTime": s.string(True, missing=shape_code, wrong_type=shape_code),
    }
    return s.obj(fields, wrong_type=shape_code)


def _seconds_of_day(value: str, code: str) -> int:
    match = HH_MM_SS.fullmatch(value)
    if match is None:
        raise IssError(code, f"{value!r} is not a time of day in HH:MM:SS.")
    hours, minutes, seconds = (int(part) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def parse_time_sections(sections: Sequence[dict[str, Any]], codes: TimeSectionCodes) -> list[TimeSection]:
    """Check weekly sections (day 1-7, HH:MM:SS, start < end, ≥ 10 min, no overlap) and parse them."""
    parsed: list[TimeSection] = []
    for section in sections:
        day = section["DayOfWeek"]
        if not 1 <= day <= 7:
            raise IssError(codes.day, f"DayOfWeek {day} is outside 1-7.")
        start = _seconds_of_day(section["StartTime"], codes.time_format)
        end = _seconds_of_day(section["EndTime"], codes.time_format)
        if start >= end:
            raise IssError(
                codes.order, f"StartTime {section['StartTime']} is not before EndTime {section['EndTime']}."
            )
        if end - start < MIN_SECTION_SECONDS:
            raise IssError(codes.too_short, "A time section must last at least 10 minutes.")
        parsed.append(TimeSection(day, start, end))
    ordered = sorted(parsed, key=lambda item: (item.day_of_week, item.start))
    for earlier, later in itertools.pairwise(ordered):
        if earlier.day_of_week == later.day_of_week and later.start < earlier.end:
            raise IssError(codes.overlap, f"Time sections overlap on day {later.day_of_week}.")
    return parsed


def wire_sections(sections: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep only the three documented members, in the documented order."""
    return [
        {"DayOfWeek": item["DayOfWeek"], "StartTime": item["StartTime"], "EndTime": item["EndTime"]}
        for item in sections
    ]


# -- lifecycle ----------------------------------------------------------------------------

LIFE_CYCLE_PARAM = s.obj(
    {
        "Transition": s.integer(
            True,
            missing="InvalidParameter.InvalidLifeRuleParam",
            wrong_type="InvalidParameter.InvalidLifeRuleParam",
        ),
        "Expiration": s.integer(
            True,
            missing="InvalidParameter.InvalidLifeRuleParam",
            wrong_type="InvalidParameter.InvalidLifeRuleParam",
        ),
    },
    wrong_type="InvalidParameter.InvalidLifeRuleParam",
    missing="MissingParameter.MissingLifeRuleParam",
)


def check_life_cycle(life_cycle: dict[str, int], repair_mode: int = 0) -> dict[str, int]:
    """Hot storage 1-3650 days; cold 0 or ≥ 60 with hot + cold ≤ 3650; ≥ 3 hot days with back-fill."""
    transition, expiration = life_cycle["Transition"], life_cycle["Expiration"]
    if not 1 <= transition <= 3650:
        raise IssError("InvalidParameterValue.InvalidTransitionRange")
    if expiration < 0 or (expiration != 0 and expiration < 60) or transition + expiration > 3650:
        raise IssError("InvalidParameterValue.InvalidExpirationRange")
    if repair_mode == 1 and transition < 3:
        raise IssError("InvalidParameterValue.LimitRepairTransition")
    return {"Transition": transition, "Expiration": expiration}


# -- paging -------------------------------------------------------------------------------


def page(items: Sequence[T], page_number: int, page_size: int) -> list[T]:
    """The 1-based ``page_number``-th slice of ``items``."""
    start = (page_number - 1) * page_size
    return list(items[start : start + page_size])


def contains(haystack: str, needle: str) -> bool:
    """The fuzzy match the list filters use: case-insensitive substring."""
    return needle.casefold() in haystack.casefold()


# -- gateway protocols (DescribeGatewayProtocol example; AddUserDevice accepts 1-4) -------------

GATEWAY_PROTOCOL_LABELS: dict[int, str] = {1: "海康SDK", 2: "大华SDK", 3: "宇视SDK", 4: "Onvif", 5: "GB28181"}
GATEWAY_DEVICE_PROTOCOLS = frozenset({1, 2, 3, 4})
GATEWAY_PROTOCOL_TYPE_CODE = "10001"
