"""RecordingIndex (gateway/recordings.py) on a real StateStore: rows in, questions answered."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridges.media.events import RecordingGap, SegmentInfo
from bridges.media.segment_path import SegmentName
from gateway.recordings import RecordingIndex, Span, merge_spans
from gateway.store import MIGRATIONS

T0 = 1_795_257_000.0


def segment(
    root: Path, channel: str, start: float, end: float, size: int = 1000, **extra: object
) -> SegmentInfo:
    path = root / SegmentName.at(channel, start).relative_path()
    return SegmentInfo(channel, path, start, end, size, "h264", False, **extra)  # type: ignore[arg-type]


async def test_migration_2_creates_segments_and_gaps(recording_index: RecordingIndex) -> None:
    store = recording_index._store
    assert await store.schema_version() == len(MIGRATIONS) >= 2
    tables = {row[0] for row in await store.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"segments", "gaps"} <= tables


async def test_segments_round_trip_with_paths_relative_to_the_recordings_dir(
    recording_index: RecordingIndex, recordings_dir: Path
) -> None:
    info = segment(recordings_dir, "cam1", T0, T0 + 60, dropped_packets=3, recovered=True)
    assert await recording_index.add_segment(info)
    assert not await recording_index.add_segment(info)  # the same file twice: ignored
    (row,) = await recording_index.segments_between("cam1", T0, T0 + 1)
    assert (row.path, row.start, row.end, row.dropped, row.state, row.pins) == (
        info.path,
        T0,
        T0 + 60,
        3,
        "recovered",
        0,
    )
    stored = await recording_index._store.fetchone("SELECT path FROM segments")
    assert stored is not None and not stored["path"].startswith("/")
    with pytest.raises(ValueError, match="not under the recordings directory"):
        await recording_index.add_segment(segment(Path("/elsewhere"), "cam1", T0, T0 + 1))


async def test_timeline_merges_adjacent_segments_and_clips_to_the_window(
    recording_index: RecordingIndex, recordings_dir: Path
) -> None:
    spans = [(0, 60), (60.0004, 120), (120.3, 180), (200, 260), (259, 300)]  # touching, near, hole, overlap
    for start, end in spans:
        await recording_index.add_segment(segment(recordings_dir, "cam1", T0 + start, T0 + end))
    await recording_index.add_segment(segment(recordings_dir, "cam2", T0, T0 + 1000))

    timeline = await recording_index.timeline("cam1", T0 + 30, T0 + 280)
    assert timeline == [Span(T0 + 30, T0 + 180), Span(T0 + 200, T0 + 280)]
    strict = await recording_index.timeline("cam1", T0, T0 + 400, tolerance=0.1)
    assert [(round(s.start - T0, 4), round(s.end - T0, 4)) for s in strict] == [
        (0, 120),
        (120.3, 180),
        (200, 300),
    ]
    assert await recording_index.timeline("cam1", T0 + 400, T0 + 500) == []


async def test_segments_between_and_bytes_between_count_overlaps(
    recording_index: RecordingIndex, recordings_dir: Path
) -> None:
    for index in range(5):
        await recording_index.add_segment(
            segment(recordings_dir, "cam1", T0 + 60 * index, T0 + 60 * (index + 1), size=100 * (index + 1))
        )
    await recording_index.add_segment(segment(recordings_dir, "cam2", T0, T0 + 60, size=7))

    found = await recording_index.segments_between("cam1", T0 + 59, T0 + 121)
    assert [row.start - T0 for row in found] == [0, 60, 120]
    assert await recording_index.segments_between("cam1", T0 + 60, T0 + 120) == found[1:2]  # half-open
    assert await recording_index.bytes_between("cam1", T0 + 59, T0 + 121) == 100 + 200 + 300
    assert await recording_index.bytes_between(None, T0, T0 + 30) == 100 + 7
    assert await recording_index.latest_segment("cam1") == (T0 + 240, T0 + 300)
    assert await recording_index.latest_segment("nope") is None
    assert await recording_index.indexed_paths("cam1", T0 + 180) == {
        row.path for row in await recording_index.segments_between("cam1", T0 + 180, T0 + 300)
    }


async def test_gaps_are_facts_with_reasons(recording_index: RecordingIndex) -> None:
    await recording_index.add_gap(RecordingGap("cam1", T0 + 10, T0 + 13, "the stream ended"))
    await recording_index.add_gap(RecordingGap("cam1", T0 + 100, T0 + 100, "zero-length"))
    await recording_index.add_gap(RecordingGap("cam2", T0 + 10, T0 + 20, "other channel"))
    gaps = await recording_index.gaps_between("cam1", T0, T0 + 50)
    assert gaps == [RecordingGap("cam1", T0 + 10, T0 + 13, "the stream ended")]


async def test_protection_and_pins_for_retention_and_export(
    recording_index: RecordingIndex, recordings_dir: Path
) -> None:
    await recording_index.add_segment(segment(recordings_dir, "cam1", T0, T0 + 60))
    await recording_index.add_segment(segment(recordings_dir, "cam1", T0 + 60, T0 + 120))
    first, second = await recording_index.segments_between("cam1", T0, T0 + 120)

    assert await recording_index.set_protected([first.id], True) == 1
    assert await recording_index.pin([first.id, second.id]) == 2
    assert await recording_index.pin([second.id]) == 1
    assert await recording_index.unpin([second.id, second.id, second.id]) == 2  # never below zero
    first, second = await recording_index.segments_between("cam1", T0, T0 + 120)
    assert (first.protected, first.pins, second.protected, second.pins) == (True, 1, False, 0)


def test_merge_spans_ignores_empty_and_out_of_window_intervals() -> None:
    assert merge_spans([(5, 5), (0, 1), (2, 3)], 1, 10, 0.5) == [Span(2, 3)]
