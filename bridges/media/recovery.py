"""Start-up recovery: put on the index every segment file the last run left unindexed.

After a crash (or a kill, or a power cut) the disk can hold segment files the index does not
know: the one that was open, cut off mid-fragment, and possibly one closed just before the crash
whose index row was never committed.  The disk is the truth, so ``recover`` walks it (off the
event loop), and for each unknown file:

1. cuts it back to its last complete ``moof`` + ``mdat`` (``fmp4.scan_fragments``): the writer
   flushes a fragment at most every second, so at most that much is lost;
2. checks that PyAV can read every packet and decode the first and last keyframes, and takes
   the end time from the last packet (the start comes from the file name);
3. enters it in the index as ``recovered`` - or, if nothing playable is left, moves it to
   ``<recordings>/.quarantine/`` with a warning.  Nothing is ever deleted here.

A channel that needed recovering also gets a gap from its last recorded moment to now: the
recording was interrupted by the unclean stop.

Run it before the recorders start: it must not look at files a writer still holds (the layout
gives no way to tell an open file from a crashed one, as with Frigate's "skip files in use").

Walks are pruned by the day/hour folders: only folders at or after the channel's newest indexed
segment are read, unless ``full_scan`` asks to rebuild the whole index from the disk.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final, Protocol

import av

from .events import RecordingGap, SegmentInfo
from .fmp4 import scan_fragments
from .segment_path import (
    SEGMENT_SUFFIX,
    SegmentName,
    day_and_hour,
    decode_channel,
    decode_segment_path,
    is_day_directory,
    is_hour_directory,
)

logger = logging.getLogger(__name__)

QUARANTINE_DIRECTORY: Final = ".quarantine"
INTERRUPTED_REASON: Final = "recording interrupted: the gateway did not shut down cleanly"


class SegmentUnplayable(Exception):
    """Nothing playable could be salvaged from a segment file."""


class SegmentCatalog(Protocol):
    """The part of the recording index recovery needs (``gateway.recordings.RecordingIndex``)."""

    async def latest_segment(self, channel: str) -> tuple[float, float] | None:
        """(start, end) of the channel's newest indexed segment, if any."""
        ...

    async def indexed_paths(self, channel: str, since: float) -> set[Path]:
        """Paths of the channel's indexed segments that start at or after ``since``."""
        ...

    async def add_segment(self, segment: SegmentInfo) -> bool: ...

    async def add_gap(self, gap: RecordingGap) -> None: ...


@dataclass(frozen=True, slots=True)
class SegmentProbe:
    """What reading a segment file back told us."""

    codec: str
    has_audio: bool
    duration: float
    video_packets: int
    first_packet_is_keyframe: bool


@dataclass(frozen=True, slots=True)
class QuarantinedFile:
    original: Path
    moved_to: Path
    problem: str


@dataclass(slots=True)
class RecoveryReport:
    """What one recovery pass did, for the start-up log line and for tests."""

    recovered: list[SegmentInfo] = field(default_factory=list)
    quarantined: list[QuarantinedFile] = field(default_factory=list)
    gaps: list[RecordingGap] = field(default_factory=list)
    trimmed_bytes: int = 0
    skipped_names: list[Path] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Salvage:
    segment: SegmentInfo | None
    trimmed_bytes: int = 0
    quarantined: QuarantinedFile | None = None


async def recover(
    recordings_dir: Path,
    catalog: SegmentCatalog,
    *,
    clock: Callable[[], float] = time.time,
    full_scan: bool = False,
) -> RecoveryReport:
    """Index every segment file under ``recordings_dir`` the catalog does not know yet."""
    report = RecoveryReport()
    channels = await asyncio.to_thread(list_channel_directories, recordings_dir)
    for channel, channel_dir in channels:
        await _recover_channel(recordings_dir, channel, channel_dir, catalog, report, clock, full_scan)
    logger.info(
        "recovery: %d segment(s) recovered, %d quarantined, %d byte(s) of cut-off fragments trimmed",
        len(report.recovered),
        len(report.quarantined),
        report.trimmed_bytes,
    )
    return report


async def _recover_channel(
    root: Path,
    channel: str,
    channel_dir: Path,
    catalog: SegmentCatalog,
    report: RecoveryReport,
    clock: Callable[[], float],
    full_scan: bool,
) -> None:
    latest = await catalog.latest_segment(channel)
    since = None if full_scan or latest is None else latest[0]
    files, skipped = await asyncio.to_thread(list_segment_files, channel_dir, since)
    report.skipped_names.extend(skipped)
    known = await catalog.indexed_paths(channel, since if since is not None else 0.0)
    unknown = [(path, name) for path, name in files if path not in known]
    if not unknown:
        return
    last_recorded = latest[1] if latest is not None else None
    for path, name in unknown:
        salvage = await asyncio.to_thread(salvage_or_quarantine, root, path, name)
        report.trimmed_bytes += salvage.trimmed_bytes
        if salvage.quarantined is not None:
            report.quarantined.append(salvage.quarantined)
        if salvage.segment is not None:
            await catalog.add_segment(salvage.segment)
            report.recovered.append(salvage.segment)
            end = salvage.segment.end
            last_recorded = end if last_recorded is None else max(last_recorded, end)
    # The newest file was never indexed: it was open when the gateway stopped, so recording was
    # interrupted then (a rebuild that only finds older files says nothing about that).
    now = clock()
    if unknown[-1][0] == files[-1][0] and last_recorded is not None and now > last_recorded:
        gap = RecordingGap(channel, last_recorded, now, INTERRUPTED_REASON)
        await catalog.add_gap(gap)
        report.gaps.append(gap)


def list_channel_directories(root: Path) -> list[tuple[str, Path]]:
    """(channel, directory) for each channel folder; dot-folders (the quarantine) are skipped."""
    if not root.is_dir():
        return []
    found = []
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                found.append((decode_channel(entry.name), Path(entry.path)))
            except ValueError:
                logger.warning("recovery: %s is not a channel folder; left alone", entry.path)
    return sorted(found)


def list_segment_files(
    channel_dir: Path, since: float | None
) -> tuple[list[tuple[Path, SegmentName]], list[Path]]:
    """Segment files of one channel starting at or after ``since`` (all when None), oldest first.

    Also returns the ``.mp4`` files whose names do not decode, which are reported, not touched.
    """
    floor_day, floor_hour = day_and_hour(since) if since is not None else ("", "")
    found: list[tuple[Path, SegmentName]] = []
    skipped: list[Path] = []
    for day in _sorted_subdirectories(channel_dir, is_day_directory):
        if day.name < floor_day:
            continue
        for hour in _sorted_subdirectories(day, is_hour_directory):
            if day.name == floor_day and hour.name < floor_hour:
                continue
            for path in sorted(hour.glob(f"*{SEGMENT_SUFFIX}")):
                relative = PurePosixPath(channel_dir.name, day.name, hour.name, path.name)
                try:
                    name = decode_segment_path(relative)
                except ValueError:
                    logger.warning("recovery: %s does not follow the segment naming; left alone", path)
                    skipped.append(path)
                    continue
                if since is None or name.start >= since:
                    found.append((path, name))
    return found, skipped


def _sorted_subdirectories(directory: Path, accept: Callable[[str], bool]) -> list[Path]:
    with os.scandir(directory) as entries:
        return sorted(
            Path(entry.path)
            for entry in entries
            if accept(entry.name) and entry.is_dir(follow_symlinks=False)
        )


def salvage_or_quarantine(root: Path, path: Path, name: SegmentName) -> _Salvage:
    """Salvage one file; move it aside if nothing in it can be played.

    Never raises for one file's trouble: a file that can be neither salvaged nor moved is left
    where it is, with an error logged, and the next start-up tries again.
    """
    try:
        size_before = path.stat().st_size
        segment = salvage_segment(path, name)
    except (SegmentUnplayable, OSError) as error:
        return _move_aside(root, path, name, str(error))
    return _Salvage(segment, trimmed_bytes=size_before - segment.bytes)


def _move_aside(root: Path, path: Path, name: SegmentName, problem: str) -> _Salvage:
    try:
        moved_to = quarantine(root, path)
    except OSError:
        logger.exception(
            "channel %s: %s is unplayable (%s) and cannot be moved aside", name.channel, path, problem
        )
        return _Salvage(None)
    logger.warning("channel %s: %s is unplayable (%s); moved to %s", name.channel, path, problem, moved_to)
    return _Salvage(None, quarantined=QuarantinedFile(path, moved_to, problem))


def salvage_segment(path: Path, name: SegmentName) -> SegmentInfo:
    """Cut a segment file back to its last complete fragment, verify it and describe it.

    Raises SegmentUnplayable when no complete fragment is left or PyAV cannot read it back.
    Also used by the writer when closing a segment fails (full disk): whatever reached the disk
    is kept and indexed.
    """
    scan = scan_fragments(path)
    if not scan.has_header or scan.fragments == 0:
        raise SegmentUnplayable(scan.problem or "no complete fragment")
    if scan.needs_trim:
        logger.warning(
            "channel %s: %s ends in a cut-off fragment (%s); trimming %d byte(s)",
            name.channel,
            path,
            scan.problem,
            scan.trailing_bytes,
        )
        os.truncate(path, scan.playable_bytes)
    probe = probe_segment(path)
    return SegmentInfo(
        channel=name.channel,
        path=path,
        start=name.start,
        end=name.start + probe.duration,
        bytes=scan.playable_bytes,
        codec=probe.codec,
        has_audio=probe.has_audio,
        recovered=True,
    )


def probe_segment(path: Path) -> SegmentProbe:
    """Read every packet of a segment and decode its first and last keyframes.

    Decoding two pictures (not all of them) keeps start-up cheap with many channels while still
    proving the codec configuration and the file's end are sound.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise SegmentUnplayable("no video stream")
            video = container.streams.video[0]
            return _read_packets(container, video)
    except av.FFmpegError as error:
        raise SegmentUnplayable(f"PyAV cannot read it: {error}") from error


def _read_packets(container: av.container.InputContainer, video: av.VideoStream) -> SegmentProbe:
    time_bases = {stream.index: float(stream.time_base or 0) for stream in container.streams}
    first_start: float | None = None
    last_end = 0.0
    video_packets = 0
    keyframes: list[av.Packet[Any]] = []
    first_is_keyframe = False
    for packet in container.demux():
        if packet.dts is None:
            continue
        time_base = time_bases[packet.stream_index]
        start = packet.dts * time_base
        first_start = start if first_start is None else min(first_start, start)
        last_end = max(last_end, (packet.dts + (packet.duration or 0)) * time_base)
        if packet.stream_index == video.index:
            if video_packets == 0:
                first_is_keyframe = packet.is_keyframe
            video_packets += 1
            if packet.is_keyframe:
                keyframes = [keyframes[0], packet] if keyframes else [packet]
    if not keyframes:
        raise SegmentUnplayable("no video keyframe")
    _decode_keyframes(video, keyframes)
    return SegmentProbe(
        codec=video.codec_context.codec.canonical_name,
        has_audio=bool(container.streams.audio),
        duration=max(0.0, last_end - (first_start or 0.0)),
        video_packets=video_packets,
        first_packet_is_keyframe=first_is_keyframe,
    )


def _decode_keyframes(video: av.VideoStream, keyframes: list[av.Packet[Any]]) -> None:
    decoder = video.codec_context
    pictures = 0
    for packet in keyframes:
        pictures += len(decoder.decode(packet))
    pictures += len(decoder.decode(None))
    if pictures == 0:
        raise SegmentUnplayable("the keyframes decode to no picture")


def quarantine(root: Path, path: Path) -> Path:
    """Move a file under ``<root>/.quarantine/``, keeping its relative path; never overwrite."""
    try:
        relative = path.relative_to(root)
    except ValueError:
        relative = Path(path.name)
    target = root / QUARANTINE_DIRECTORY / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    candidate, counter = target, 0
    while candidate.exists():
        counter += 1
        candidate = target.with_name(f"{target.name}.{counter}")
    os.replace(path, candidate)
    return candidate


__all__ = [
    "INTERRUPTED_REASON",
    "QUARANTINE_DIRECTORY",
    "QuarantinedFile",
    "RecoveryReport",
    "SegmentCatalog",
    "SegmentProbe",
    "SegmentUnplayable",
    "list_channel_directories",
    "list_segment_files",
    "probe_segment",
    "quarantine",
    "recover",
    "salvage_or_quarantine",
    "salvage_segment",
]
