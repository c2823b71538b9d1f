"""``SegmentWriter``: stream-copy one connection's packets into crash-safe fragmented MP4 segments.

No transcoding: packets from the camera are muxed as they are (video, and audio when MP4 can
carry it).  Each segment is a fragmented MP4 (``empty_moov`` then ``moof`` + ``mdat`` pairs)
whose fragments are cut at every keyframe and at least every ``fragment_seconds`` and written
through to the kernel at once (``flush_packets``): a crash or SIGKILL loses at most the open
fragment, and ``recovery`` cuts the file back to the last complete one.

Rules, after MediaMTX's segment/part model:

* a segment starts only on a video keyframe; a new one is started at the first keyframe once
  ``segment_seconds`` have been written; the file is created when its first packet is written,
  so there are no empty files;
* timestamps are rebased per segment: every file starts at 0;
* DTS problems are handled per stream by ``TrackTimeline``: repeated DTS on H.264/HEVC video are
  slices of one picture sent as separate packets (x264 ``slices=N`` on some cameras) and are
  merged back into one access unit (nothing of the picture is lost); other repeats and small
  steps back are dropped and counted; leaps either way are rebased across without cutting the
  segment (see ``timestamps.py``).  The muxer never sees a non-increasing DTS;
* wall-clock times: the recorder tells the writer which clock time the connection's media time
  zero was (``set_media_anchor``); the first segment starts there, later ones are carried
  forward by media time, so consecutive segments of one connection meet exactly.  If media
  time and the clock drift apart by more than ``max_clock_drift_seconds`` (a camera clock
  running fast or slow), the next segment re-anchors on the clock.

A writer lives for one connection attempt; ``close()`` ends it (the recorder starts a fresh one
after a reconnect, as the stream's parameters may have changed).  Hooks run on the caller's
thread: ``on_segment_opened(SegmentOpened)`` when a file's first packet is on disk and
``on_segment_closed(SegmentInfo)`` when it is closed and synced.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import av

from .events import SegmentInfo, SegmentOpened
from .recovery import SegmentUnplayable, salvage_segment
from .segment_path import SegmentName
from .timestamps import TrackTimeline

logger = logging.getLogger(__name__)

# Audio codecs the MP4 muxer can carry without transcoding (G.711 is not among them).
MP4_AUDIO_CODECS: Final = frozenset({"aac", "mp3", "opus", "flac", "alac", "ac3", "eac3"})
MOVFLAGS: Final = "frag_keyframe+empty_moov+default_base_moof"
# H.264 / HEVC access unit delimiter NAL types: stripped from slices merged into one picture.
_AUD_NAL_TYPE: Final = {"h264": 9, "hevc": 35}
_START_CODE: Final = b"\x00\x00\x01"
DEFAULT_FRAME_RATE: Final = 25
# Muxer errors that mean the disk, not the packet, is at fault: they end the attempt.
DISK_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EROFS, errno.EBADF})


@dataclass(frozen=True, slots=True)
class WriterSettings:
    """How segments are cut and how timestamps are repaired."""

    # Length of one file; the cut waits for the first keyframe after it.
    segment_seconds: float = 60.0
    # Longest fragment (0, 1]: at most this much of the open file is lost in a crash.
    fragment_seconds: float = 0.5
    # A DTS step larger than this (either way) is a discontinuity, rebased across.
    timestamp_jump_seconds: float = 5.0
    # A step back up to this is a stale packet, dropped; beyond it, a discontinuity.
    backward_tolerance_seconds: float = 0.5
    # Media time may drift this far from the clock before a new segment re-anchors on it.
    max_clock_drift_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.segment_seconds <= 0:
            raise ValueError("segment_seconds must be positive")
        if not 0 < self.fragment_seconds <= 1:
            raise ValueError("fragment_seconds must be in (0, 1]: a crash loses at most one fragment")
        if self.timestamp_jump_seconds <= 0 or self.backward_tolerance_seconds < 0:
            raise ValueError("timestamp thresholds must be positive")
        if self.max_clock_drift_seconds <= 0:
            raise ValueError("max_clock_drift_seconds must be positive")

    def mux_options(self) -> dict[str, str]:
        """Options of the MP4 muxer: fragmented, fragments written through as they complete."""
        return {
            "movflags": MOVFLAGS,
            "frag_duration": str(round(self.fragment_seconds * 1_000_000)),
            "flush_packets": "1",
        }


SegmentOpenedHook = Callable[[SegmentOpened], None]
SegmentClosedHook = Callable[[SegmentInfo], None]


class _Track:
    """One input stream: its timeline, and (video) the packet held back for slice merging."""

    __slots__ = (
        "index",
        "is_video",
        "mergeable_codec",
        "pending",
        "pending_offset",
        "pending_out",
        "source",
        "ticks_per_second",
        "time_base",
        "timeline",
        "untimed",
    )

    def __init__(self, source: av.stream.Stream, settings: WriterSettings) -> None:
        self.source = source
        self.index = source.index
        self.is_video = source.type == "video"
        self.time_base: Fraction = source.time_base or Fraction(1, 90000)
        self.ticks_per_second = float(1 / self.time_base)
        codec = codec_name(source)
        self.mergeable_codec = codec if self.is_video and codec in _AUD_NAL_TYPE else ""
        self.timeline = TrackTimeline(
            ticks_per_second=self.ticks_per_second,
            default_step=_default_step(source, self.ticks_per_second),
            jump_seconds=settings.timestamp_jump_seconds,
            backward_tolerance_seconds=settings.backward_tolerance_seconds,
        )
        self.pending: av.Packet[Any] | None = None
        self.untimed: av.Packet[Any] | None = None
        self.pending_out = 0
        self.pending_offset = 0


class _OpenSegment:
    """The segment being written: its container, where each track's time zero is, counters."""

    __slots__ = (
        "bases",
        "container",
        "dropped",
        "ends",
        "first_written",
        "jumps_at_open",
        "merged",
        "name",
        "outputs",
        "packets",
        "path",
        "start",
        "video_base",
    )

    def __init__(self, name: SegmentName, path: Path, container: av.container.OutputContainer) -> None:
        self.name = name
        self.path = path
        self.start = name.start
        self.container = container
        self.outputs: dict[int, av.stream.Stream] = {}
        self.bases: dict[int, int] = {}
        self.ends: dict[int, int] = {}
        self.video_base = 0
        self.packets = 0
        self.first_written = False
        self.dropped = 0
        self.merged = 0
        self.jumps_at_open = 0


class SegmentWriter:
    """Writes one connection's packets into a series of segment files for one channel."""

    def __init__(
        self,
        channel: str,
        recordings_dir: Path,
        *,
        video: av.VideoStream,
        audio: av.AudioStream | None = None,
        settings: WriterSettings | None = None,
        on_segment_opened: SegmentOpenedHook | None = None,
        on_segment_closed: SegmentClosedHook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.channel = channel
        self._root = recordings_dir
        self._settings = settings or WriterSettings()
        self._mux_options = self._settings.mux_options()
        self._on_opened = on_segment_opened
        self._on_closed = on_segment_closed
        self._clock = clock
        self._video = _Track(video, self._settings)
        self._tracks: dict[int, _Track] = {video.index: self._video}
        if audio is not None:
            self._tracks[audio.index] = _Track(audio, self._settings)
        self._segment_ticks = round(self._settings.segment_seconds * self._video.ticks_per_second)
        self._segment: _OpenSegment | None = None
        self._previous: tuple[float, int] | None = None  # (start, video base) of the last segment
        self._media_anchor: float | None = None
        self._closed = False
        self._audio_refusal_logged = False
        self.last_write = time.monotonic()
        self.segments_closed = 0
        self.packets_written = 0

    @property
    def has_audio(self) -> bool:
        return len(self._tracks) > 1

    @property
    def sources(self) -> list[av.stream.Stream]:
        """The input streams this writer records (demux only these)."""
        return [track.source for track in self._tracks.values()]

    @property
    def current_path(self) -> Path | None:
        """The file being written, once its first packet is on disk."""
        segment = self._segment
        return segment.path if segment is not None and segment.first_written else None

    def set_media_anchor(self, wall_time_of_media_zero: float) -> None:
        """Tell the writer which wall-clock time the input's media time zero corresponds to.

        Without it the first segment starts at the clock reading when its keyframe is written,
        which is late by whatever the demuxer buffered while probing the stream (about a second
        with FFmpeg's defaults).  The recorder measures the anchor as packets start arriving live.
        """
        self._media_anchor = wall_time_of_media_zero

    def write(self, packet: av.Packet[Any], arrival: float | None = None) -> None:
        """Take one demuxed packet (any stream; unknown streams and flush packets are ignored).

        ``arrival`` is when it was read (``time.monotonic()``; read now if not given).

        Raises what the muxer raises for I/O failures (full disk); the caller then closes the
        writer, which salvages what reached the disk.
        """
        track = self._tracks.get(packet.stream_index)
        if track is None:
            return
        dts = packet.dts
        if dts is None:
            self._hold_untimed(track, packet)
            return
        now = time.monotonic() if arrival is None else arrival
        if track.untimed is not None:
            self._resolve_untimed(track, packet, dts, now)
        self._take(track, packet, dts, now)

    def _take(self, track: _Track, packet: av.Packet[Any], dts: int, now: float) -> None:
        if track.is_video:
            self._take_video(track, packet, dts, now)
            return
        output = track.timeline.place(dts, now)
        if output is None:
            self._count_drop()
        else:
            self._mux(track, packet, output, output - dts, now)

    def _hold_untimed(self, track: _Track, packet: av.Packet[Any]) -> None:
        """Keep a stream's first packet if it has no timestamp, to date it from the next one.

        FFmpeg's RTSP demuxer hands out the first video packet of a session - the keyframe
        the session starts on - without DTS or PTS; dropping it would lose a whole GOP.
        Later untimed packets (and the flush packets at the end) carry nothing to record.
        """
        if track.timeline.last_input is None and track.untimed is None and packet.size:
            track.untimed = packet

    def _resolve_untimed(self, track: _Track, following: av.Packet[Any], next_dts: int, now: float) -> None:
        """Date the held untimed packet one frame before the packet that follows it - or at the
        same time when both are keyframe slices of an H.264/HEVC picture sent as separate packets
        (so that they are merged back into one picture)."""
        untimed, track.untimed = track.untimed, None
        assert untimed is not None
        same_picture = track.mergeable_codec and untimed.is_keyframe and following.is_keyframe
        guessed = next_dts if same_picture else next_dts - (untimed.duration or track.timeline.step)
        untimed.dts = guessed
        untimed.pts = guessed
        self._take(track, untimed, guessed, now)

    def close(self) -> SegmentInfo | None:
        """Write what is held back, close the open segment and report it; idempotent."""
        if self._closed:
            return None
        self._closed = True
        try:
            for track in self._tracks.values():
                if track.pending is not None:
                    pending, track.pending = track.pending, None
                    self._mux(track, pending, track.pending_out, track.pending_offset, time.monotonic())
        finally:
            info = self._close_segment()
        return info

    # -- video: slice merging and segment cuts -------------------------------------------------

    def _take_video(self, track: _Track, packet: av.Packet[Any], dts: int, now: float) -> None:
        pending = track.pending
        if pending is not None and dts == track.timeline.last_input:
            self._merge_slice(track, pending, packet)
            return
        output = track.timeline.place(dts, now)
        if output is None:
            self._count_drop()
            return
        if pending is not None:
            self._mux(track, pending, track.pending_out, track.pending_offset, now)
        if packet.is_keyframe and self._due_for_cut(output):
            self._cut(output)
        track.pending = packet
        track.pending_out = output
        track.pending_offset = output - dts

    def _merge_slice(self, track: _Track, pending: av.Packet[Any], packet: av.Packet[Any]) -> None:
        """Join a packet repeating the held-back packet's DTS to it: one picture, many slices."""
        if not track.mergeable_codec:
            self._count_drop()
            return
        merged = av.Packet(bytes(pending) + strip_leading_aud(bytes(packet), track.mergeable_codec))
        merged.time_base = track.time_base
        merged.dts = pending.dts
        merged.pts = pending.pts
        merged.duration = pending.duration
        merged.is_keyframe = pending.is_keyframe or packet.is_keyframe
        track.pending = merged
        if self._segment is not None:
            self._segment.merged += 1

    def _due_for_cut(self, video_output: int) -> bool:
        segment = self._segment
        return segment is None or video_output - segment.video_base >= self._segment_ticks

    def _cut(self, video_output: int) -> None:
        """Close the current segment (if any) and open the next, starting at this keyframe."""
        if self._segment is not None:
            self._close_segment()
        self._segment = self._open_segment(video_output)

    def _segment_start(self, video_output: int) -> float:
        """Wall-clock start: from the media anchor (or the clock) for a connection's first
        segment, carried forward by media time after that."""
        now = self._clock()
        if self._previous is None:
            if self._media_anchor is None:
                return now
            # Measured moments ago on this clock: no drift to check, and ``now`` may be late by
            # however much the demuxer buffered while probing.
            return self._media_anchor + video_output / self._video.ticks_per_second
        previous_start, previous_base = self._previous
        expected = previous_start + (video_output - previous_base) / self._video.ticks_per_second
        if abs(expected - now) > self._settings.max_clock_drift_seconds:
            logger.warning(
                "channel %s: media time and clock differ by %.3f s; re-anchoring on the clock",
                self.channel,
                expected - now,
            )
            return now
        return expected

    def _open_segment(self, video_output: int) -> _OpenSegment:
        name = SegmentName.at(self.channel, self._segment_start(video_output))
        path = self._root / name.relative_path()
        while path.exists():  # two segments within one millisecond (a very fast reconnect)
            name = SegmentName(name.channel, name.start_ms + 1)
            path = self._root / name.relative_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        # PyAV creates the file on the first mux, so a segment that never gets a packet leaves none.
        container = av.open(str(path), "w", format="mp4", options=self._mux_options)
        segment = _OpenSegment(name, path, container)
        segment.video_base = video_output
        video_seconds = video_output * self._video.time_base
        for index, track in self._tracks.items():
            segment.outputs[index] = container.add_stream_from_template(track.source)
            segment.bases[index] = video_output if track.is_video else round(video_seconds / track.time_base)
            segment.ends[index] = 0
        segment.jumps_at_open = self._total_jumps()
        self._previous = (segment.start, video_output)
        return segment

    # -- muxing ----------------------------------------------------------------------------------

    def _mux(self, track: _Track, packet: av.Packet[Any], output: int, offset: int, now: float) -> None:
        """Write one packet into the open segment, in segment time; before the first keyframe or
        before the segment's start (audio around a cut) the packet has nowhere to go."""
        segment = self._segment
        if segment is None:
            return
        base = segment.bases[track.index]
        dts = output - base
        if dts < 0:
            return
        pts = packet.pts
        packet.dts = dts
        packet.pts = dts if pts is None else pts + offset - base
        end = dts + (packet.duration or track.timeline.step)
        packet.stream = segment.outputs[track.index]
        try:
            segment.container.mux(packet)
        except ValueError as error:  # PyAV's ArgumentError: the muxer refused this packet
            segment.dropped += 1
            logger.debug("channel %s: muxer refused a packet: %s", self.channel, error)
            return
        except av.FFmpegError as error:
            if track.is_video or error.errno in DISK_ERRNOS:
                raise
            self._refuse_audio(segment, error)
            return
        segment.ends[track.index] = max(segment.ends[track.index], end)
        segment.packets += 1
        self.packets_written += 1
        self.last_write = now
        if not segment.first_written:
            segment.first_written = True
            logger.info("channel %s: segment %s opened", self.channel, segment.path)
            if self._on_opened is not None:
                self._on_opened(SegmentOpened(self.channel, segment.path, segment.start))

    def _refuse_audio(self, segment: _OpenSegment, error: av.FFmpegError) -> None:
        """Audio the muxer cannot take (a bitstream MP4 does not accept) costs the audio, never
        the video: the packet is dropped and counted, and the first refusal logged."""
        segment.dropped += 1
        if not self._audio_refusal_logged:
            self._audio_refusal_logged = True
            logger.warning(
                "channel %s: the muxer refuses audio packets (%s); dropping them",
                self.channel,
                error.strerror,
            )

    def _count_drop(self) -> None:
        if self._segment is not None:
            self._segment.dropped += 1

    def _total_jumps(self) -> int:
        return sum(track.timeline.jumps for track in self._tracks.values())

    # -- closing ---------------------------------------------------------------------------------

    def _close_segment(self) -> SegmentInfo | None:
        segment, self._segment = self._segment, None
        if segment is None:
            return None
        if not segment.first_written:
            _discard_unstarted(segment.container)
            return None
        try:
            segment.container.close()
            _sync_file(segment.path)
        except (av.FFmpegError, OSError):
            logger.exception(
                "channel %s: closing %s failed; salvaging what reached the disk", self.channel, segment.path
            )
            info = self._salvage(segment)
        else:
            info = self._describe(segment)
        if info is not None:
            self.segments_closed += 1
            logger.info(
                "channel %s: segment %s closed (%.3f s, %d bytes, %d dropped, %d merged, %d jumps)",
                self.channel,
                info.path,
                info.duration,
                info.bytes,
                info.dropped_packets,
                info.merged_packets,
                info.timestamp_jumps,
            )
            if self._on_closed is not None:
                self._on_closed(info)
        return info

    def _describe(self, segment: _OpenSegment) -> SegmentInfo:
        # Video sets the segment's span: audio runs a little ahead of video on many cameras, and
        # measuring by it would make consecutive segments overlap by that much.
        duration = segment.ends[self._video.index] / self._video.ticks_per_second or max(
            segment.ends[index] / track.ticks_per_second for index, track in self._tracks.items()
        )
        return SegmentInfo(
            channel=self.channel,
            path=segment.path,
            start=segment.start,
            end=segment.start + duration,
            bytes=segment.path.stat().st_size,
            codec=codec_name(self._video.source),
            has_audio=self.has_audio,
            dropped_packets=segment.dropped,
            merged_packets=segment.merged,
            timestamp_jumps=self._total_jumps() - segment.jumps_at_open,
        )

    def _salvage(self, segment: _OpenSegment) -> SegmentInfo | None:
        try:
            return salvage_segment(segment.path, segment.name)
        except (SegmentUnplayable, OSError) as error:
            logger.error(
                "channel %s: nothing salvageable in %s now (%s); start-up recovery will look again",
                self.channel,
                segment.path,
                error,
            )
            return None


def codec_name(stream: av.stream.Stream) -> str:
    """The codec's canonical name ("mp3", not the decoder's "mp3float"), as the index stores it."""
    context = stream.codec_context
    codec = context.codec if context is not None else None
    return codec.canonical_name if codec is not None else (context.name if context is not None else "")


def strip_leading_aud(data: bytes, codec: str) -> bytes:
    """``data`` (Annex B) without a leading access unit delimiter NAL, if it starts with one.

    A slice sent as its own packet carries a delimiter; inside a merged picture a second
    delimiter would wrongly announce a new access unit to strict decoders.
    """
    if data.startswith(b"\x00" + _START_CODE):
        header = len(_START_CODE) + 1
    elif data.startswith(_START_CODE):
        header = len(_START_CODE)
    else:
        return data
    if len(data) <= header or _nal_type(data[header], codec) != _AUD_NAL_TYPE[codec]:
        return data
    following = data.find(_START_CODE, header + 1)
    if following < 0:
        return b""
    if data[following - 1] == 0:
        following -= 1  # keep the four-byte form of the next start code
    return data[following:]


def _nal_type(first_header_byte: int, codec: str) -> int:
    return first_header_byte & 0x1F if codec == "h264" else (first_header_byte >> 1) & 0x3F


def _default_step(source: av.stream.Stream, ticks_per_second: float) -> int:
    """One frame (video) or one audio frame, in ticks: the step used to rebase across a leap."""
    if source.type == "video":
        rate = source.average_rate or source.guessed_rate or DEFAULT_FRAME_RATE
        return max(1, round(ticks_per_second / float(rate)))
    context = source.codec_context
    samples = getattr(context, "frame_size", 0) or 1024
    sample_rate = getattr(context, "sample_rate", 0) or 8000
    return max(1, round(ticks_per_second * samples / sample_rate))


def _discard_unstarted(container: av.container.OutputContainer) -> None:
    """Close a container no packet reached: PyAV never opened its file, so nothing is written."""
    try:
        container.close()
    except (av.FFmpegError, OSError):
        logger.debug("closing an unused output container failed", exc_info=True)


def _sync_file(path: Path) -> None:
    """fsync the closed file before it is indexed: the index must not outlive the data on a power cut."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


__all__ = ["MP4_AUDIO_CODECS", "SegmentWriter", "WriterSettings", "codec_name", "strip_leading_aud"]
