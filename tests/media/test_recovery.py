"""Start-up recovery on hand-made damage: cut-off fragments, header-only files, junk, known files.

Segment files come from ``SegmentWriter`` on the local clip (one 6 s segment, 0.5 s fragments);
the expected cut points come from a separate box walker in ``media_checks``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import av
import pytest

from bridges.media.events import SegmentInfo
from bridges.media.fmp4 import scan_fragments
from bridges.media.recovery import INTERRUPTED_REASON, QUARANTINE_DIRECTORY, recover
from bridges.media.segment_path import SegmentName
from bridges.media.writer import SegmentWriter, WriterSettings
from gateway.recordings import RecordingIndex

from .media_checks import assert_sound, decode_with_pyav, top_level_boxes

NOW = 1_795_300_000.0
START = 1_795_257_330.25


@pytest.fixture(scope="module")
def complete_segment(synthetic_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One closed 6 s segment (ftyp, moov, ~12 moof+mdat pairs, mfra)."""
    root = tmp_path_factory.mktemp("written")
    closed: list[SegmentInfo] = []
    with av.open(str(synthetic_clip)) as container:
        writer = SegmentWriter(
            "cam1",
            root,
            video=container.streams.video[0],
            audio=container.streams.audio[0],
            settings=WriterSettings(fragment_seconds=0.5),
            on_segment_closed=closed.append,
        )
        for packet in container.demux():
            writer.write(packet)
        writer.close()
    assert len(closed) == 1
    return closed[0].path


def place(source: Path, root: Path, channel: str = "cam1", start: float = START) -> Path:
    """Copy a segment into the layout under a chosen name, as if a crashed writer had left it."""
    target = root / SegmentName.at(channel, start).relative_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def mdat_ends(path: Path) -> list[int]:
    return [offset + size for kind, offset, size in top_level_boxes(path) if kind == "mdat"]


def box_offsets(path: Path, kind: str) -> list[int]:
    return [offset for box_kind, offset, _ in top_level_boxes(path) if box_kind == kind]


def cut_points(segment: Path) -> dict[str, tuple[int, int]]:
    """Where to cut the file (bytes kept) -> how many bytes recovery must keep."""
    ends = mdat_ends(segment)
    moofs = box_offsets(segment, "moof")
    last_moof = moofs[-1]
    return {
        "inside the last mdat": (ends[-1] - 100, ends[-2]),
        "inside a moof": (last_moof + 20, ends[-2]),
        "after a moof, before its mdat": (box_offsets(segment, "mdat")[-1], ends[-2]),
        "inside an mdat header": (box_offsets(segment, "mdat")[-1] + 4, ends[-2]),
        "in the middle, mid-mdat": (ends[4] + 300, ends[4]),
    }


@pytest.mark.parametrize(
    "where",
    ["inside the last mdat", "inside a moof", "after a moof, before its mdat", "inside an mdat header",
     "in the middle, mid-mdat"],
)  # fmt: skip
async def test_a_cut_off_segment_is_trimmed_to_its_last_complete_fragment_and_indexed(
    complete_segment: Path, recordings_dir: Path, recording_index: RecordingIndex, where: str
) -> None:
    cut, expected = cut_points(complete_segment)[where]
    path = place(complete_segment, recordings_dir)
    os.truncate(path, cut)

    report = await recover(recordings_dir, recording_index, clock=lambda: NOW)

    assert path.stat().st_size == expected
    assert report.trimmed_bytes == cut - expected
    decoded = assert_sound(path)
    (segment,) = await recording_index.segments_between("cam1", 0, NOW)
    assert (segment.path, segment.state, segment.start, segment.bytes) == (path, "recovered", START, expected)
    assert segment.duration == pytest.approx(decoded.video_duration, abs=0.08)
    assert report.recovered[0].recovered and report.quarantined == []
    gaps = await recording_index.gaps_between("cam1", 0, NOW + 1)
    assert [(gap.start, gap.end, gap.reason) for gap in gaps] == [(segment.end, NOW, INTERRUPTED_REASON)]


async def test_a_complete_unindexed_segment_is_indexed_untouched_and_only_once(
    complete_segment: Path, recordings_dir: Path, recording_index: RecordingIndex
) -> None:
    path = place(complete_segment, recordings_dir)
    report = await recover(recordings_dir, recording_index, clock=lambda: NOW)
    assert report.trimmed_bytes == 0 and len(report.recovered) == 1
    assert path.read_bytes() == complete_segment.read_bytes()
    assert report.recovered[0].duration == pytest.approx(
        decode_with_pyav(complete_segment).video_duration, abs=0.08
    )

    again = await recover(recordings_dir, recording_index, clock=lambda: NOW + 10)
    assert again.recovered == [] and again.quarantined == [] and again.gaps == []
    assert len(await recording_index.segments_between("cam1", 0, NOW)) == 1


async def test_unplayable_files_are_moved_aside_never_deleted(
    complete_segment: Path, recordings_dir: Path, recording_index: RecordingIndex
) -> None:
    moov_end = next(
        offset + size for kind, offset, size in top_level_boxes(complete_segment) if kind == "moov"
    )
    header_only = place(complete_segment, recordings_dir, start=START)
    os.truncate(header_only, moov_end)
    junk = place(complete_segment, recordings_dir, start=START + 60)
    junk.write_bytes(b"not an mp4 at all, just junk" * 10)
    empty = place(complete_segment, recordings_dir, start=START + 120)
    empty.write_bytes(b"")
    originals = {path: path.read_bytes() for path in (header_only, junk, empty)}

    report = await recover(recordings_dir, recording_index, clock=lambda: NOW)

    assert report.recovered == []
    assert {item.original for item in report.quarantined} == set(originals)
    for item in report.quarantined:
        assert not item.original.exists()
        assert item.moved_to == recordings_dir / QUARANTINE_DIRECTORY / item.original.relative_to(
            recordings_dir
        )
        assert item.moved_to.read_bytes() == originals[item.original]
    assert await recording_index.segments_between("cam1", 0, NOW) == []
    # The quarantine is not mistaken for a channel on the next start.
    assert (await recover(recordings_dir, recording_index, clock=lambda: NOW)).quarantined == []


async def test_only_files_at_or_after_the_newest_indexed_segment_are_examined(
    complete_segment: Path, recordings_dir: Path, recording_index: RecordingIndex
) -> None:
    older = place(complete_segment, recordings_dir, start=START - 7200)  # two hours earlier, unindexed
    indexed = place(complete_segment, recordings_dir, start=START)
    info = decode_with_pyav(indexed)
    await recording_index.add_segment(
        SegmentInfo("cam1", indexed, START, START + info.video_duration, indexed.stat().st_size, "h264", True)
    )
    newer = place(complete_segment, recordings_dir, start=START + 10)

    report = await recover(recordings_dir, recording_index, clock=lambda: NOW)
    assert [segment.path for segment in report.recovered] == [newer]

    full = await recover(recordings_dir, recording_index, clock=lambda: NOW, full_scan=True)
    assert [segment.path for segment in full.recovered] == [older]


async def test_full_scan_rebuilds_the_index_from_names_and_probing(
    complete_segment: Path, recordings_dir: Path, recording_index: RecordingIndex
) -> None:
    layout = {("cam1", START), ("cam1", START + 3600), ("gw:nvr/ch 2", START + 86_400)}
    for channel, start in layout:
        place(complete_segment, recordings_dir, channel=channel, start=start)
    stray = recordings_dir / "cam1" / "notes.txt"
    stray.write_text("left alone")
    misnamed = recordings_dir / "cam1" / "2026-11-21" / "10" / "clip.mp4"
    shutil.copyfile(complete_segment, misnamed)

    report = await recover(recordings_dir, recording_index, clock=lambda: NOW, full_scan=True)

    assert {(segment.channel, segment.start) for segment in report.recovered} == {
        (channel, round(start, 3)) for channel, start in layout
    }
    assert report.skipped_names == [misnamed]
    assert stray.exists() and misnamed.exists()
    spans = await recording_index.timeline("gw:nvr/ch 2", 0, START + 10**6)
    assert len(spans) == 1 and spans[0].start == START + 86_400


def test_scan_of_a_complete_segment_needs_no_trim(complete_segment: Path) -> None:
    scan = scan_fragments(complete_segment)
    assert scan.has_header and not scan.needs_trim and scan.problem == ""
    assert scan.fragments == len(box_offsets(complete_segment, "moof")) >= 10
    assert top_level_boxes(complete_segment)[-1][0] == "mfra"  # a clean close writes the index
