"""Independent checks of recorded files: FFmpeg's own tools and a full PyAV decode.

The recorder's code is not used here (except where a test says so), so a bug in it cannot hide
in the check.
"""

from __future__ import annotations

import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import av

TOOL_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class DecodedFile:
    """What decoding every packet of a file found."""

    video_frames: int
    audio_frames: int
    video_duration: float
    first_video_packet_keyframe: bool
    codecs: tuple[str, ...]


def ffprobe_complaints(path: Path) -> str:
    """What ``ffprobe -v error`` prints about a file: nothing for a sound one."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", str(path)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=False,
    )
    return (result.stdout + result.stderr).strip()


def ffmpeg_decode_complaints(path: Path) -> str:
    """What ``ffmpeg -v error`` prints while decoding every frame: nothing for a sound file."""
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=False,
    )
    return (result.stdout + result.stderr).strip() or (
        "" if result.returncode == 0 else f"exit {result.returncode}"
    )


def decode_with_pyav(path: Path) -> DecodedFile:
    """Decode every frame of every stream; raises if PyAV cannot."""
    video_frames = audio_frames = 0
    first_keyframe: bool | None = None
    first_dts: float | None = None
    last_end = 0.0
    with av.open(str(path)) as container:
        codecs = tuple(stream.codec_context.codec.canonical_name for stream in container.streams)
        for packet in container.demux():
            if packet.dts is None:
                continue
            if packet.stream.type == "video":
                if first_keyframe is None:
                    first_keyframe = packet.is_keyframe
                seconds = float(packet.dts * packet.time_base)
                first_dts = seconds if first_dts is None else first_dts
                last_end = seconds + float((packet.duration or 0) * packet.time_base)
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame):
                    video_frames += 1
                else:
                    audio_frames += 1
    return DecodedFile(
        video_frames, audio_frames, last_end - (first_dts or 0.0), bool(first_keyframe), codecs
    )


def assert_sound(path: Path) -> DecodedFile:
    """The file plays: FFmpeg's probe and decode are silent and PyAV decodes it from a keyframe."""
    assert ffprobe_complaints(path) == "", f"{path}: ffprobe: {ffprobe_complaints(path)}"
    assert ffmpeg_decode_complaints(path) == "", f"{path}: ffmpeg: {ffmpeg_decode_complaints(path)}"
    decoded = decode_with_pyav(path)
    assert decoded.video_frames > 0, f"{path}: no video frame"
    assert decoded.first_video_packet_keyframe, f"{path}: first video packet is not a keyframe"
    return decoded


def top_level_boxes(path: Path) -> list[tuple[str, int, int]]:
    """(type, offset, size) of each top-level box of a complete MP4 (a deliberately tiny parser)."""
    data = path.read_bytes()
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            (size,) = struct.unpack(">Q", data[offset + 8 : offset + 16])
        boxes.append((kind.decode("latin-1"), offset, size))
        offset += size
    return boxes
