"""Segment paths: encode/decode round-trips, densely (hypothesis is not in the environment).

Times cover the edges of the layout (epoch, day/hour/year turns, leap days, 2038, year 9999) and
400 seeded random instants; channel ids cover characters that would break a path.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import PurePosixPath

import pytest

from bridges.media.segment_path import (
    SegmentName,
    decode_channel,
    decode_segment_path,
    encode_channel,
    encode_segment_path,
)

EDGE_INSTANTS_MS = [
    0,
    1,
    999,
    1000,
    59_999,
    3_599_999,
    3_600_000,
    86_399_999,
    86_400_000,
    int(datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=UTC).timestamp() * 1000),
    int(datetime(2026, 11, 21, 10, 15, 30, 250000, tzinfo=UTC).timestamp() * 1000),
    int(datetime(2026, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp() * 1000),
    2**31 * 1000 - 1,
    2**31 * 1000,
    int(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp() * 1000),
]
RANDOM_INSTANTS_MS = random.Random(20261121).sample(range(253402300799999), 400)
CHANNELS = [
    "cam1",
    "a",
    "channel-01_main",
    "gw:device/ch:1",
    "..",
    ".",
    ".hidden",
    "with space",
    "100%",
    "%41",
    "通道一",
    "tab\tand\nnewline",
    "~user@host+=,",
]


@pytest.mark.parametrize("start_ms", EDGE_INSTANTS_MS + RANDOM_INSTANTS_MS)
def test_time_round_trips_through_the_path(start_ms: int) -> None:
    name = SegmentName("cam1", start_ms)
    path = encode_segment_path(name)
    assert decode_segment_path(path) == name
    assert encode_segment_path(decode_segment_path(path)) == path
    moment = datetime.fromtimestamp(start_ms // 1000, tz=UTC)
    assert path.parts[1:3] == (f"{moment:%Y-%m-%d}", f"{moment:%H}")


@pytest.mark.parametrize("channel", CHANNELS)
def test_channel_round_trips_as_one_safe_component(channel: str) -> None:
    component = encode_channel(channel)
    assert "/" not in component and "\0" not in component
    assert not component.startswith(".")
    assert decode_channel(component) == channel
    path = encode_segment_path(SegmentName(channel, 1_795_257_330_250))
    assert len(path.parts) == 4
    assert decode_segment_path(path) == SegmentName(channel, 1_795_257_330_250)


def test_example_layout() -> None:
    name = SegmentName.at("cam1", datetime(2026, 11, 21, 10, 15, 30, 250000, tzinfo=UTC).timestamp())
    assert encode_segment_path(name) == PurePosixPath("cam1/2026-11-21/10/20261121T101530.250Z.mp4")
    assert name.start == pytest.approx(1795256130.25)


@pytest.mark.parametrize(
    "seconds", [0.0004, 0.0005, 0.0015, 1795257330.2504, 1795257330.2506, 1795257330.9996]
)
def test_float_starts_round_to_the_nearest_millisecond(seconds: float) -> None:
    name = SegmentName.at("cam1", seconds)
    assert abs(name.start - seconds) <= 0.0005 + 1e-9
    assert decode_segment_path(encode_segment_path(name)).start == name.start


@pytest.mark.parametrize(
    "path",
    [
        "cam1/2026-11-21/10/20261121T111530.250Z.mp4",  # hour folder disagrees
        "cam1/2026-11-22/10/20261121T101530.250Z.mp4",  # day folder disagrees
        "cam1/2026-11-21/10/20261121T101530.25Z.mp4",  # two-digit milliseconds
        "cam1/2026-11-21/10/20261121T101530.250.mp4",  # no Z
        "cam1/2026-11-21/10/20261121T101530.250Z.mkv",
        "cam1/2026-02-30/10/20260230T101530.250Z.mp4",  # no such day
        "cam1/2026-11-21/24/20261121T241530.250Z.mp4",
        "%61/2026-11-21/10/20261121T101530.250Z.mp4",  # "a" encoded non-canonically
        "./2026-11-21/10/20261121T101530.250Z.mp4",
        "cam1/10/20261121T101530.250Z.mp4",
        "x/cam1/2026-11-21/10/20261121T101530.250Z.mp4",
    ],
)
def test_paths_that_are_not_segments_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        decode_segment_path(PurePosixPath(path))


@pytest.mark.parametrize("start_ms", [-1, 253402300800000])
def test_times_outside_the_layout_are_refused(start_ms: int) -> None:
    with pytest.raises(ValueError):
        encode_segment_path(SegmentName("cam1", start_ms))


def test_empty_and_overlong_channels_are_refused() -> None:
    with pytest.raises(ValueError):
        encode_channel("")
    with pytest.raises(ValueError):
        encode_channel("x" * 256)
