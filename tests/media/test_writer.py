"""SegmentWriter on a local clip: cuts, rebasing, DTS repair, no empty files, the wall clock.

The input is a real H.264 + MP3 MPEG-TS file (made by ffmpeg, see ``synthetic_clip``) demuxed by
PyAV exactly as the recorder demuxes RTSP; the tests bend its timestamps the way cameras do.
Fast (no network), so the edge cases live here; ``test_recorder.py`` covers the same paths
against the real RTSP server.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av
import pytest

from bridges.media.events import SegmentInfo, SegmentOpened
from bridges.media.segment_path import decode_segment_path
from bridges.media.writer import SegmentWriter, WriterSettings, strip_leading_aud

from .conftest import SYNTHETIC_FPS, SYNTHETIC_GOP, SYNTHETIC_SECONDS
from .media_checks import assert_sound

WALL_START = 1_795_257_000.0
FRAMES = SYNTHETIC_SECONDS * SYNTHETIC_FPS


class MediaClock:
    """A wall clock that follows the media being fed (optionally running fast), for determinism."""

    def __init__(self, rate: float = 1.0) -> None:
        self.rate = rate
        self.media = 0.0

    def __call__(self) -> float:
        return WALL_START + self.media * self.rate


class Recording:
    """A writer over ``recordings_dir`` with its events collected."""

    def __init__(
        self, recordings_dir: Path, container: av.container.InputContainer, settings: WriterSettings
    ) -> None:
        self.opened: list[SegmentOpened] = []
        self.closed: list[SegmentInfo] = []
        self.clock = MediaClock()
        self.container = container
        self.writer = SegmentWriter(
            "cam1",
            recordings_dir,
            video=container.streams.video[0],
            audio=container.streams.audio[0],
            settings=settings,
            on_segment_opened=self.opened.append,
            on_segment_closed=self.closed.append,
            clock=self.clock,
        )
        self._first_dts: float | None = None

    def feed(self, packets: list[av.Packet[Any]]) -> None:
        for packet in packets:
            if packet.dts is not None:
                seconds = float(packet.dts * packet.time_base)
                self._first_dts = seconds if self._first_dts is None else self._first_dts
                self.clock.media = seconds - self._first_dts
            self.writer.write(packet)

    def finish(self) -> list[SegmentInfo]:
        self.writer.close()
        return self.closed


@contextmanager
def clip_packets(clip: Path) -> Iterator[tuple[av.container.InputContainer, list[av.Packet[Any]]]]:
    with av.open(str(clip)) as container:
        yield container, [packet for packet in container.demux() if packet.size]


def copy_packet(packet: av.Packet[Any], dts: int | None) -> av.Packet[Any]:
    """A new packet with the same data and stream, re-stamped (as a camera might resend it)."""
    copy = av.Packet(bytes(packet))
    copy.stream = packet.stream
    copy.time_base = packet.time_base
    copy.dts = dts
    copy.pts = dts
    copy.duration = packet.duration
    copy.is_keyframe = packet.is_keyframe
    return copy


def dts_of(packet: av.Packet[Any]) -> int:
    assert packet.dts is not None  # every packet of the clip is timed
    return packet.dts


def total_video_frames(segments: list[SegmentInfo]) -> int:
    return sum(assert_sound(segment.path).video_frames for segment in segments)


def test_segments_cut_on_keyframes_rebased_to_zero_and_contiguous(
    synthetic_clip: Path, tmp_path: Path
) -> None:
    with clip_packets(synthetic_clip) as (container, packets):
        recording = Recording(tmp_path, container, WriterSettings(segment_seconds=2.0))
        recording.feed(packets)
        segments = recording.finish()

    gop_seconds = SYNTHETIC_GOP / SYNTHETIC_FPS
    assert len(segments) == 3
    assert [event.path for event in recording.opened] == [segment.path for segment in segments]
    for segment in segments[:-1]:
        assert 2.0 <= segment.duration < 2.0 + gop_seconds + 1e-6
    assert sum(segment.duration for segment in segments) == pytest.approx(SYNTHETIC_SECONDS, abs=0.05)
    for earlier, later in itertools.pairwise(segments):
        assert later.start == pytest.approx(earlier.end, abs=0.001)
    assert segments[0].start == pytest.approx(WALL_START, abs=0.001)
    for segment in segments:
        decoded = assert_sound(segment.path)
        assert decoded.codecs == ("h264", "mp3") and segment.has_audio and segment.codec == "h264"
        assert decoded.video_duration == pytest.approx(segment.duration, abs=0.001)
        assert segment.bytes == segment.path.stat().st_size
        name = decode_segment_path(segment.path.relative_to(tmp_path))
        assert (name.channel, name.start) == ("cam1", segment.start)
        with av.open(str(segment.path)) as written:
            first = next(packet for packet in written.demux(video=0) if packet.dts is not None)
            assert first.dts == 0 and first.is_keyframe
    assert total_video_frames(segments) == FRAMES


def test_no_file_is_created_before_the_first_keyframe(synthetic_clip: Path, tmp_path: Path) -> None:
    with clip_packets(synthetic_clip) as (container, packets):
        recording = Recording(tmp_path, container, WriterSettings())
        video = [packet for packet in packets if packet.stream.type == "video"]
        recording.feed([packet for packet in video[1:SYNTHETIC_GOP]])  # the first GOP minus its keyframe
        assert recording.finish() == []
    assert recording.opened == []
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []


def test_an_untimed_first_keyframe_is_dated_from_the_next_packet_and_kept(
    synthetic_clip: Path, tmp_path: Path
) -> None:
    """FFmpeg's RTSP demuxer gives a session's first video packet no timestamps."""
    with clip_packets(synthetic_clip) as (container, packets):
        first_video = next(index for index, packet in enumerate(packets) if packet.stream.type == "video")
        packets[first_video] = copy_packet(packets[first_video], None)
        recording = Recording(tmp_path, container, WriterSettings())
        recording.feed(packets)
        segments = recording.finish()
    assert len(segments) == 1
    assert total_video_frames(segments) == FRAMES


def test_repeated_and_stale_packets_are_dropped_and_counted(synthetic_clip: Path, tmp_path: Path) -> None:
    with clip_packets(synthetic_clip) as (container, packets):
        disturbed: list[av.Packet[Any]] = []
        inserted = 0
        audio_seen = video_seen = 0
        for packet in packets:
            disturbed.append(packet)
            if packet.stream.type == "audio":
                audio_seen += 1
                if audio_seen % 10 == 0:  # the same audio frame twice
                    disturbed.append(copy_packet(packet, packet.dts))
                    inserted += 1
            else:
                video_seen += 1
                if video_seen % 25 == 0:  # a picture from 0.2 s ago, sent again
                    stale = next(
                        p
                        for p in reversed(disturbed[:-1])
                        if p.stream.type == "video" and dts_of(p) <= dts_of(packet) - 18_000
                    )
                    disturbed.append(copy_packet(stale, stale.dts))
                    inserted += 1
        recording = Recording(tmp_path, container, WriterSettings(segment_seconds=3.0))
        recording.feed(disturbed)
        segments = recording.finish()
    assert inserted > 10
    assert sum(segment.dropped_packets for segment in segments) == inserted
    assert sum(segment.timestamp_jumps for segment in segments) == 0
    assert total_video_frames(segments) == FRAMES


def test_timestamp_leaps_are_rebased_without_cutting_the_segment(
    synthetic_clip: Path, tmp_path: Path
) -> None:
    leap = 100 * 90_000
    with clip_packets(synthetic_clip) as (container, packets):
        first = dts_of(packets[0])
        for packet in packets:
            if 2 * 90_000 <= dts_of(packet) - first < 4 * 90_000:  # 100 s ahead for two seconds, then back
                packet.dts = dts_of(packet) + leap
                packet.pts = packet.dts
        recording = Recording(tmp_path, container, WriterSettings())
        recording.clock = MediaClock()
        recording.feed(packets)
        segments = recording.finish()
    assert len(segments) == 1
    (segment,) = segments
    assert segment.timestamp_jumps == 4  # forward and back, on video and on audio
    assert segment.duration == pytest.approx(SYNTHETIC_SECONDS, abs=0.1)
    assert total_video_frames(segments) == FRAMES


def test_media_time_drifting_from_the_clock_re_anchors_the_next_segment(
    synthetic_clip: Path, tmp_path: Path
) -> None:
    with clip_packets(synthetic_clip) as (container, packets):
        recording = Recording(
            tmp_path, container, WriterSettings(segment_seconds=1.0, max_clock_drift_seconds=0.3)
        )
        recording.writer._clock = recording.clock = MediaClock(rate=1.2)  # the camera runs 20 % slow
        recording.feed(packets)
        segments = recording.finish()
    # While the drift stays under 0.3 s segments follow media time; past it a start jumps ahead.
    steps = [later.start - earlier.end for earlier, later in itertools.pairwise(segments)]
    assert min(steps) == pytest.approx(0.0, abs=0.001)
    assert max(steps) > 0.3
    assert all(step > -0.001 for step in steps)


@pytest.mark.parametrize(
    ("data", "codec", "expected"),
    [
        (b"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x41\x9a", "h264", b"\x00\x00\x00\x01\x41\x9a"),
        (b"\x00\x00\x01\x09\xf0\x00\x00\x01\x41\x9a", "h264", b"\x00\x00\x01\x41\x9a"),
        (b"\x00\x00\x00\x01\x41\x9a", "h264", b"\x00\x00\x00\x01\x41\x9a"),  # no delimiter
        (b"\x00\x00\x00\x01\x09\xf0", "h264", b""),  # a delimiter alone
        (
            b"\x00\x00\x00\x01\x46\x01\x50\x00\x00\x00\x01\x02\x01\xd0",
            "hevc",
            b"\x00\x00\x00\x01\x02\x01\xd0",
        ),
        (b"\x01\x02\x03", "h264", b"\x01\x02\x03"),  # not Annex B
    ],
)
def test_strip_leading_aud(data: bytes, codec: str, expected: bytes) -> None:
    assert strip_leading_aud(data, codec) == expected
