#!/usr/bin/python3
"""Simulated site cameras: a GStreamer RTSP server that loops one pre-encoded clip per mount.

Why this exists: the gateway's recorder, health checks and stream relays must be tested against a
real RTSP server speaking to real FFmpeg/PyAV clients, at the scale of a real site (32 cameras), on
a two-core machine.  Encoding 32 live 720p streams would eat the machine, so the clip is encoded
once (and cached on disk, keyed by its parameters), loaded into memory once, and every mount only
re-stamps and re-sends the same encoded samples: the serving loop does no encoding at all.

This script runs under the system Python with Debian's GStreamer bindings (python3-gi); it uses
only the standard library and ``gi`` so that it does not depend on the project's virtualenv.

Protocol (see ``sim/rtsp/__init__.py`` for the asyncio wrapper):

* once listening, one line on stdout:
  ``{"event": "ready", "port": P, "mounts": {"cam1": "rtsp://127.0.0.1:P/cam1", ...}}``
* stdin carries one JSON command per line, each answered by exactly one JSON line on stdout:
  ``stop``/``start``/``jump``/``sliced``/``quit`` (see ``ControlChannel``).  Malformed lines are
  answered with ``{"event": "error", ...}`` and otherwise ignored.
* end of stdin, ``quit``, SIGTERM and SIGINT all stop the server; the exit code is then 0.  Ending
  on end of stdin means a crashed parent never leaves an orphan server behind.

Timestamps: every mount runs its own pipeline (shared by all clients of that mount) whose appsrc
stamps the clip's samples with continuously increasing times, offsetting each loop by the clip
length.  The payloaders derive RTP time from *stream* time (``scale-rtptime=false``) while the
sinks pace on *running* time, so a ``jump`` is a new segment whose ``time`` moves the RTP clock
without making the sinks wait: readers see a timestamp discontinuity, the wire keeps its pace.
RTCP sender reports are shifted by the same amount (see ``StreamFeeder.on_sending_rtcp``) so that
clients mapping time through them keep the jump too.

Sliced mode sends each slice of a 4-slice encoding as its own picture (see ``slice_units``), so
FFmpeg/PyAV readers get several packets with the same DTS per frame, as from some real cameras.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import signal
import struct
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, GObject, Gst, GstApp, GstRtspServer

logger = logging.getLogger("sim.rtsp.gst_server")

# Bump when the encoding pipelines or the cache layout change, so stale cache files are ignored.
CACHE_FORMAT_VERSION = 3
CACHE_MAGIC = b"IVCSIMCLIP\n"

AUDIO_SAMPLE_RATE = 16000
AUDIO_FRAME_SAMPLES = 1024  # one AAC access unit
AUDIO_BITRATE = 32000
AAC_ENCODERS = ("avenc_aac", "voaacenc", "fdkaacenc")

# How far ahead of the pipeline clock a feeder queues samples per need-data call.  Larger batches
# cost fewer Python callbacks; smaller ones make jump/sliced switches take effect sooner.
FEED_AHEAD_NS = 200 * Gst.MSECOND

# RTCP sender report layout (RFC 3550 6.4.1): the 64-bit NTP timestamp follows header and SSRC.
RTCP_PACKET_TYPE_SR = 200
SR_NTP_OFFSET = 8
SR_MIN_SIZE = 28
RTCP_MIN_INTERVAL_NS = Gst.SECOND

SLICES_PER_FRAME = 4
H264_NAL_AUD = 9
H264_NAL_SLICE_TYPES = (1, 5)
# An access unit delimiter (primary_pic_type 7 = "any slice type"); see slice_units().
H264_AUD_NAL = b"\x00\x00\x00\x01\x09\xf0"


class CommandError(Exception):
    """A control line that cannot be carried out; reported as an error event."""


# --------------------------------------------------------------------------------------------
# Encoded clips and their on-disk cache
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VideoClipSpec:
    """Everything that determines the bytes of an encoded video clip (and so its cache key)."""

    width: int
    height: int
    fps: int
    seconds: int
    bitrate_kbps: int
    sliced: bool

    @property
    def frame_count(self) -> int:
        return self.fps * self.seconds


@dataclasses.dataclass(frozen=True)
class AudioClipSpec:
    """Everything that determines the bytes of an encoded audio clip (and so its cache key)."""

    seconds: int
    encoder: str


@dataclasses.dataclass(frozen=True)
class EncodedFrame:
    """One access unit of a clip: its timing inside the clip and the buffers pushed for it.

    ``units`` is one buffer for an ordinary access unit; the sliced variant carries one buffer per
    slice so that each is packetised (and marked) as if it were a whole frame.
    """

    pts_ns: int
    duration_ns: int
    keyframe: bool
    units: tuple[bytes, ...]


@dataclasses.dataclass(frozen=True)
class EncodedClip:
    """A loopable encoded clip: caps for the appsrc, frames, and the loop period."""

    caps: str
    frames: tuple[EncodedFrame, ...]
    duration_ns: int


def cache_key(spec: VideoClipSpec | AudioClipSpec) -> str:
    """Return a stable file-name-safe key for a clip spec.

    The GStreamer version is part of the key because a different x264/AAC build may emit
    different (but valid) bytes, and a cache must never mix them silently.
    """
    fields = dataclasses.asdict(spec)
    fields.update(kind=type(spec).__name__, version=CACHE_FORMAT_VERSION, gst=Gst.version_string())
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]
    return f"{type(spec).__name__.lower()}-{digest}.clip"


def write_clip(path: Path, clip: EncodedClip) -> None:
    """Write a clip atomically (temp file + rename) so concurrent runs never read half a file."""
    index = []
    payload = bytearray()
    for frame in clip.frames:
        index.append([frame.pts_ns, frame.duration_ns, frame.keyframe, [len(u) for u in frame.units]])
        for unit in frame.units:
            payload += unit
    header = json.dumps({"caps": clip.caps, "duration_ns": clip.duration_ns, "frames": index}).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(CACHE_MAGIC)
            out.write(struct.pack("<I", len(header)))
            out.write(header)
            out.write(payload)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def read_clip(path: Path) -> EncodedClip | None:
    """Read a cached clip, or return None when the file is missing or not one of ours."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if not data.startswith(CACHE_MAGIC):
        logger.warning("ignoring foreign cache file %s", path)
        return None
    offset = len(CACHE_MAGIC)
    (header_len,) = struct.unpack_from("<I", data, offset)
    offset += 4
    header = json.loads(data[offset : offset + header_len])
    offset += header_len
    frames = []
    for pts_ns, duration_ns, keyframe, sizes in header["frames"]:
        units = []
        for size in sizes:
            units.append(data[offset : offset + size])
            offset += size
        frames.append(EncodedFrame(pts_ns, duration_ns, keyframe, tuple(units)))
    if offset != len(data):
        logger.warning("ignoring truncated cache file %s", path)
        return None
    return EncodedClip(header["caps"], tuple(frames), header["duration_ns"])


def run_to_eos(description: str) -> list[Gst.Sample]:
    """Run a finite encoding pipeline ending in ``appsink name=sink`` and collect its samples."""
    pipeline = Gst.parse_launch(description)
    sink = pipeline.get_by_name("sink")
    samples: list[Gst.Sample] = []
    pipeline.set_state(Gst.State.PLAYING)
    try:
        while (sample := sink.pull_sample()) is not None:
            samples.append(sample)
        message = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
        if message is not None:
            error, debug = message.parse_error()
            raise RuntimeError(f"encoding failed: {error.message} ({debug})")
    finally:
        pipeline.set_state(Gst.State.NULL)
    if not samples:
        raise RuntimeError(f"encoding produced no samples: {description}")
    return samples


def sample_bytes(sample: Gst.Sample) -> bytes:
    buffer = sample.get_buffer()
    data: bytes = buffer.extract_dup(0, buffer.get_size())
    return data


def split_annexb(access_unit: bytes) -> list[bytes]:
    """Split an Annex-B access unit into NAL units, each keeping a 4-byte start code."""
    starts = []
    index = access_unit.find(b"\x00\x00\x01")
    while index != -1:
        starts.append(index + 3)
        index = access_unit.find(b"\x00\x00\x01", index + 3)
    units = []
    for position, start in enumerate(starts):
        end = starts[position + 1] - 3 if position + 1 < len(starts) else len(access_unit)
        body = (
            access_unit[start:end].rstrip(b"\x00") if position + 1 < len(starts) else access_unit[start:end]
        )
        units.append(b"\x00\x00\x00\x01" + body)
    return units


def slice_units(access_unit: bytes) -> tuple[bytes, ...]:
    """Cut a sliced access unit into one buffer per slice, each looking like its own picture.

    Why the delimiters: FFmpeg's RTSP demuxer runs the H.264 parser, which glues slices back into
    one picture by ``first_mb_in_slice`` regardless of RTP marker bits.  An access unit delimiter
    before each slice ends the parser's current picture there, so each slice leaves the demuxer
    as its own packet carrying the frame's (same) RTP timestamp: duplicate DTS, as some cameras
    produce.  Parameter sets and SEI stay in front of the first slice.
    """
    buffers: list[bytes] = []
    prefix = b""
    for nal in split_annexb(access_unit):
        nal_type = nal[4] & 0x1F
        if nal_type == H264_NAL_AUD:
            continue
        if nal_type in H264_NAL_SLICE_TYPES:
            buffers.append(H264_AUD_NAL + prefix + nal)
            prefix = b""
        else:
            prefix += nal
    if not buffers:
        raise RuntimeError("access unit without slices")
    return tuple(buffers)


def encode_video(spec: VideoClipSpec) -> EncodedClip:
    """Encode the test pattern once: scrolling colour bars plus a clock, 1 s GOP, no B-frames.

    Scrolling bars keep the encoder busy enough to reach its target bitrate (a bouncing ball on
    black would not), so the wire carries what a real camera would.
    """
    x264_options = f"slices={SLICES_PER_FRAME}" if spec.sliced else "slices=1"
    description = (
        f"videotestsrc pattern=smpte horizontal-speed=2 num-buffers={spec.frame_count} ! "
        f"video/x-raw,format=I420,width={spec.width},height={spec.height},framerate={spec.fps}/1 ! "
        'timeoverlay halignment=left valignment=top font-desc="Sans 20" ! '
        f"x264enc tune=zerolatency speed-preset=veryfast threads=1 bitrate={spec.bitrate_kbps} "
        f'key-int-max={spec.fps} bframes=0 option-string="{x264_options}" ! '
        "h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au ! "
        "appsink name=sink sync=false"
    )
    samples = run_to_eos(description)
    frame_ns = Gst.SECOND // spec.fps
    frames = []
    for index, sample in enumerate(samples):
        data = sample_bytes(sample)
        keyframe = not sample.get_buffer().has_flags(Gst.BufferFlags.DELTA_UNIT)
        units = slice_units(data) if spec.sliced else (data,)
        frames.append(EncodedFrame(index * frame_ns, frame_ns, keyframe, units))
    if not frames[0].keyframe:
        raise RuntimeError("encoded clip does not start with a keyframe")
    caps = samples[0].get_caps().copy()
    if spec.sliced:
        caps.set_value("alignment", "nal")
    return EncodedClip(caps.to_string(), tuple(frames), len(frames) * frame_ns)


def find_aac_encoder() -> str:
    for name in AAC_ENCODERS:
        if Gst.ElementFactory.find(name) is not None:
            return name
    raise RuntimeError(f"no AAC encoder available (tried {', '.join(AAC_ENCODERS)})")


def encode_audio(spec: AudioClipSpec) -> EncodedClip:
    """Encode a quiet beep as AAC-LC; frames are re-stamped back to back from zero.

    The encoder's own timestamps include priming delay; re-stamping by frame count keeps every
    loop exactly ``frames * 1024 / rate`` long, so loops join without gap or overlap.
    """
    frame_count = spec.seconds * AUDIO_SAMPLE_RATE // AUDIO_FRAME_SAMPLES
    description = (
        f"audiotestsrc wave=sine freq=440 volume=0.2 samplesperbuffer={AUDIO_FRAME_SAMPLES} "
        f"num-buffers={frame_count + 2} ! "
        f"audio/x-raw,rate={AUDIO_SAMPLE_RATE},channels=1 ! audioconvert ! audioresample ! "
        f"{spec.encoder} bitrate={AUDIO_BITRATE} ! aacparse ! audio/mpeg,stream-format=raw ! "
        "appsink name=sink sync=false"
    )
    samples = run_to_eos(description)[:frame_count]
    frame_ns = Gst.util_uint64_scale(AUDIO_FRAME_SAMPLES, Gst.SECOND, AUDIO_SAMPLE_RATE)
    frames = tuple(
        EncodedFrame(
            Gst.util_uint64_scale(index * AUDIO_FRAME_SAMPLES, Gst.SECOND, AUDIO_SAMPLE_RATE),
            frame_ns,
            True,
            (sample_bytes(sample),),
        )
        for index, sample in enumerate(samples)
    )
    duration_ns = Gst.util_uint64_scale(len(frames) * AUDIO_FRAME_SAMPLES, Gst.SECOND, AUDIO_SAMPLE_RATE)
    return EncodedClip(samples[0].get_caps().to_string(), frames, duration_ns)


class ClipCache:
    """Encodes each clip spec at most once per cache directory and keeps loaded clips in memory."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._loaded: dict[VideoClipSpec | AudioClipSpec, LoadedClip] = {}
        # Feeders look clips up from streaming threads; the control thread may be loading one.
        self._lock = threading.Lock()

    def get(self, spec: VideoClipSpec | AudioClipSpec) -> LoadedClip:
        with self._lock:
            loaded = self._loaded.get(spec)
            if loaded is None:
                loaded = LoadedClip(self._load_or_encode(spec))
                self._loaded[spec] = loaded
            return loaded

    def _load_or_encode(self, spec: VideoClipSpec | AudioClipSpec) -> EncodedClip:
        path = self._directory / cache_key(spec)
        clip = read_clip(path)
        if clip is not None:
            logger.info("loaded cached clip %s (%s)", path.name, spec)
            return clip
        logger.info("encoding clip %s", spec)
        clip = encode_video(spec) if isinstance(spec, VideoClipSpec) else encode_audio(spec)
        write_clip(path, clip)
        return clip


class LoadedClip:
    """A clip turned into GStreamer buffers once; serving only makes shallow, re-stamped copies."""

    def __init__(self, clip: EncodedClip) -> None:
        self.caps = Gst.Caps.from_string(clip.caps)
        self.duration_ns = clip.duration_ns
        self.frames = clip.frames
        self.buffers = tuple(tuple(self._wrap(frame, unit) for unit in frame.units) for frame in clip.frames)

    @staticmethod
    def _wrap(frame: EncodedFrame, unit: bytes) -> Gst.Buffer:
        buffer = Gst.Buffer.new_wrapped(unit)
        buffer.duration = frame.duration_ns
        if not frame.keyframe:
            buffer.set_flags(Gst.BufferFlags.DELTA_UNIT)
        # Each buffer is a whole picture as far as the payloader knows.  In NAL alignment (the
        # sliced variant) rtph264pay sets the RTP marker from this flag: one marker per slice.
        buffer.set_flags(Gst.BufferFlags.MARKER)
        return buffer


# --------------------------------------------------------------------------------------------
# Serving: one feeder per appsrc, one mount state per mount
# --------------------------------------------------------------------------------------------


class MountState:
    """Per-mount knobs shared by the mount's pipelines (control thread writes, feeders read)."""

    def __init__(self, name: str, sliced: bool) -> None:
        self.name = name
        self.sliced = sliced
        self.jump_ns = 0
        self.running = True


class StreamFeeder:
    """Feeds one appsrc of one pipeline from a clip, looping it with increasing timestamps.

    Runs in the appsrc's streaming thread (need-data).  Pacing comes from the RTSP server's sinks,
    which synchronise on running time; the feeder only keeps ``FEED_AHEAD_NS`` queued.
    """

    def __init__(
        self,
        appsrc: GstApp.AppSrc,
        clip_for: Callable[[], LoadedClip],
        mount: MountState,
        timeline: PipelineTimeline,
    ) -> None:
        self._appsrc = appsrc
        self._clip_for = clip_for
        self._mount = mount
        self._timeline = timeline
        self._clip = clip_for()
        self._frame_index = 0
        self._loop_start_ns = 0
        self._applied_jump_ns = 0
        # (running time from which it applies, jump) for the RTCP rewrite; newest last.
        self._jump_history: list[tuple[int, int]] = [(0, 0)]
        self._pending_caps_or_segment = False
        appsrc.set_caps(self._clip.caps)
        appsrc.connect("need-data", self._on_need_data)

    def _on_need_data(self, appsrc: GstApp.AppSrc, _length: int) -> None:
        base_ns = self._timeline.base_ns(appsrc)
        first_pts = None
        while True:
            self._switch_clip_at_keyframe()
            frame = self._clip.frames[self._frame_index]
            pts = base_ns + self._loop_start_ns + frame.pts_ns
            if first_pts is None:
                first_pts = pts
            elif pts - first_pts >= FEED_AHEAD_NS:
                return
            if self._push_frame(pts) != Gst.FlowReturn.OK:
                return
            self._advance()

    def _switch_clip_at_keyframe(self) -> None:
        """Swap sliced/plain variants only at a keyframe so the decoder never sees a half GOP."""
        if not self._clip.frames[self._frame_index].keyframe:
            return
        wanted = self._clip_for()
        if wanted is not self._clip:
            self._clip = wanted
            self._pending_caps_or_segment = True

    def _push_frame(self, pts: int) -> Gst.FlowReturn:
        jump_ns = self._mount.jump_ns
        if jump_ns != self._applied_jump_ns:
            self._applied_jump_ns = jump_ns
            self._jump_history = [*self._jump_history[-7:], (pts, jump_ns)]
            self._pending_caps_or_segment = True
        result = Gst.FlowReturn.OK
        for template in self._clip.buffers[self._frame_index]:
            buffer = template.copy()
            buffer.pts = pts
            buffer.dts = pts
            if self._pending_caps_or_segment:
                self._pending_caps_or_segment = False
                sample = Gst.Sample.new(buffer, self._clip.caps, self._segment(), None)
                result = self._appsrc.push_sample(sample)
            else:
                result = self._appsrc.push_buffer(buffer)
            if result != Gst.FlowReturn.OK:
                break
        return result

    def _segment(self) -> Gst.Segment:
        """A segment whose stream time (hence RTP time) is running time plus the mount's jump.

        Running time (what the sinks pace on) stays equal to pts.  Segment times are unsigned,
        which is why the control channel keeps a mount's total jump at zero or above.
        """
        segment = Gst.Segment()
        segment.init(Gst.Format.TIME)
        segment.time = self._applied_jump_ns
        return segment

    def on_sending_rtcp(self, _session: GObject.Object, buffer: Gst.Buffer, _early: bool) -> bool:
        """Shift the sender report's wallclock by the jump in force, as a leaping camera would.

        Without this, clients that map RTP time through sender reports (FFmpeg does when a
        session has more than one stream) would undo the jump at the next report.  The report's
        RTP time is extrapolated from the last packet sent, so the jump to use is the one in force
        at the current running time, not the one most recently commanded.
        """
        jump_ns = self._jump_at(self._appsrc.get_current_running_time())
        if jump_ns == 0 or buffer.get_size() < SR_MIN_SIZE:
            return False
        header = buffer.extract_dup(0, SR_NTP_OFFSET + 8)
        if header[1] != RTCP_PACKET_TYPE_SR:
            return False
        (ntp,) = struct.unpack_from(">Q", header, SR_NTP_OFFSET)
        shifted = (ntp + (jump_ns << 32) // Gst.SECOND) % (1 << 64)
        buffer.fill(SR_NTP_OFFSET, struct.pack(">Q", shifted))
        return False

    def _jump_at(self, running_time_ns: int) -> int:
        applicable = [jump for since, jump in self._jump_history if since <= running_time_ns]
        return applicable[-1] if applicable else 0

    def _advance(self) -> None:
        self._frame_index += 1
        if self._frame_index == len(self._clip.frames):
            self._frame_index = 0
            self._loop_start_ns += self._clip.duration_ns


class PipelineTimeline:
    """The running time at which a pipeline's first sample is stamped, shared by its streams.

    Stamping from the pipeline's current running time (rather than zero) avoids a burst of
    "late" samples when a shared pipeline starts playing some time after it was built.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._base_ns: int | None = None

    def base_ns(self, element: Gst.Element) -> int:
        with self._lock:
            if self._base_ns is None:
                now = element.get_current_running_time()
                self._base_ns = now if now != Gst.CLOCK_TIME_NONE else 0
            return self._base_ns


def pipeline_description(with_audio: bool) -> str:
    """The per-mount launch line; ``scale-rtptime=false`` makes RTP time follow stream time."""
    appsrc = "appsrc is-live=true format=time do-timestamp=false handle-segment-change=true max-bytes=0"
    video = f"{appsrc} name=video ! rtph264pay name=pay0 pt=96 config-interval=-1 scale-rtptime=false"
    if not with_audio:
        return f"( {video} )"
    audio = f"{appsrc} name=audio ! rtpmp4gpay name=pay1 pt=97 scale-rtptime=false"
    return f"( {video} {audio} )"


class Mount:
    """One camera path: its factory (while started), its state, and its live media."""

    def __init__(
        self, state: MountState, clips: ClipCache, video: VideoClipSpec, audio: AudioClipSpec | None
    ) -> None:
        self.state = state
        self._clips = clips
        self._video = video
        self._audio = audio
        self.medias: set[GstRtspServer.RTSPMedia] = set()

    def make_factory(self) -> GstRtspServer.RTSPMediaFactory:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(pipeline_description(self._audio is not None))
        factory.set_shared(True)
        factory.connect("media-configure", self._on_media_configure)
        return factory

    def video_clip(self) -> LoadedClip:
        return self._clips.get(dataclasses.replace(self._video, sliced=self.state.sliced))

    def set_sliced(self, on: bool) -> None:
        """Choose the variant; the clip is loaded here so no streaming thread waits for an encoder."""
        self._clips.get(dataclasses.replace(self._video, sliced=on))
        self.state.sliced = on

    def release_pipelines(self) -> None:
        for media in list(self.medias):
            media.unprepare()

    def preload(self) -> None:
        """Encode/load what this mount will serve, so no client waits for an encoder."""
        self.video_clip()
        if self._audio is not None:
            self._clips.get(self._audio)

    def _on_media_configure(
        self, _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia
    ) -> None:
        element = media.get_element()
        timeline = PipelineTimeline()
        feeders = [StreamFeeder(element.get_by_name("video"), self.video_clip, self.state, timeline)]
        if self._audio is not None:
            audio_clip = self._clips.get(self._audio)
            feeders.append(
                StreamFeeder(element.get_by_name("audio"), lambda: audio_clip, self.state, timeline)
            )
        # The feeders live as long as the media: keep them on it, drop them when it goes away.
        self.medias.add(media)
        media.connect("prepared", self._on_media_prepared, feeders)
        media.connect("unprepared", self._on_media_unprepared, feeders)
        logger.info("mount %s: new pipeline", self.state.name)

    @staticmethod
    def _on_media_prepared(media: GstRtspServer.RTSPMedia, feeders: list[StreamFeeder]) -> None:
        """Hook each RTP session's sender reports (sessions exist only once the media is prepared).

        Reports go out every second (RTP's default is 5 s) so that clients settle their
        timestamp mapping, and see a jump's effect on it, within a short test.
        """
        for index, feeder in enumerate(feeders):
            session = media.get_stream(index).get_rtpsession()
            session.set_property("rtcp-min-interval", RTCP_MIN_INTERVAL_NS)
            session.connect("on-sending-rtcp", feeder.on_sending_rtcp)

    def _on_media_unprepared(self, media: GstRtspServer.RTSPMedia, _feeders: list[StreamFeeder]) -> None:
        self.medias.discard(media)
        logger.info("mount %s: pipeline released", self.state.name)


class SimulatedCameraServer:
    """Owns the RTSP server, the mounts and the control channel."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._args = args
        self._clips = ClipCache(Path(args.cache_dir))
        video = VideoClipSpec(args.width, args.height, args.fps, args.clip_seconds, args.bitrate_kbps, False)
        audio = AudioClipSpec(args.clip_seconds, find_aac_encoder()) if args.audio else None
        self.mounts = {
            name: Mount(MountState(name, name in args.sliced), self._clips, video, audio)
            for name in args.mounts
        }
        self._server = GstRtspServer.RTSPServer()
        self._server.set_address(args.host)
        self._server.set_service(str(args.port))
        self.port = 0

    def start(self) -> None:
        for mount in self.mounts.values():
            mount.preload()
        points = self._server.get_mount_points()
        for name, mount in self.mounts.items():
            points.add_factory(f"/{name}", mount.make_factory())
        if self._server.attach(None) == 0:
            raise RuntimeError(f"cannot listen on {self._args.host}:{self._args.port}")
        self.port = self._server.get_bound_port()

    def url(self, name: str) -> str:
        host = self._args.host if ":" not in self._args.host else f"[{self._args.host}]"
        return f"rtsp://{host}:{self.port}/{name}"

    def stop_mount(self, name: str) -> None:
        """Unpublish the mount and drop every client that plays it: new DESCRIBEs get 404."""
        mount = self.mounts[name]
        if not mount.state.running:
            return
        mount.state.running = False
        self._server.get_mount_points().remove_factory(f"/{name}")
        for client in self._server.client_filter(None):
            if self._client_plays(client, mount):
                client.close()
        mount.release_pipelines()
        logger.info("mount %s: stopped", name)

    def start_mount(self, name: str) -> None:
        mount = self.mounts[name]
        if mount.state.running:
            return
        mount.state.running = True
        self._server.get_mount_points().add_factory(f"/{name}", mount.make_factory())
        logger.info("mount %s: started", name)

    def set_sliced(self, name: str, on: bool) -> None:
        self.mounts[name].set_sliced(on)
        logger.info("mount %s: sliced %s", name, "on" if on else "off")

    def jump(self, name: str, seconds: float) -> None:
        """Move the mount's RTP clock; backward steps are fine while the total stays >= 0."""
        state = self.mounts[name].state
        total = state.jump_ns + round(seconds * Gst.SECOND)
        if total < 0:
            raise CommandError(f"a mount's timestamps cannot go below their start (total jump {total} ns)")
        state.jump_ns = total
        logger.info("mount %s: timestamps jump by %.3f s", name, seconds)

    def shutdown(self) -> None:
        """Drop every client, then stop every pipeline, so no streaming thread outlives main()."""
        for client in self._server.client_filter(None):
            client.close()
        for mount in self.mounts.values():
            mount.release_pipelines()

    @staticmethod
    def _client_plays(client: GstRtspServer.RTSPClient, mount: Mount) -> bool:
        for session in client.session_filter(None):
            for session_media in session.filter(None):
                if session_media.get_media() in mount.medias:
                    return True
        return False


# --------------------------------------------------------------------------------------------
# Control channel (stdin/stdout, JSON lines)
# --------------------------------------------------------------------------------------------


class ControlChannel:
    """Reads JSON commands from stdin in the main loop and writes one JSON reply per command."""

    def __init__(self, server: SimulatedCameraServer, loop: GLib.MainLoop) -> None:
        self._server = server
        self._loop = loop
        self._pending = b""
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "stop": self._stop,
            "start": self._start,
            "jump": self._jump,
            "sliced": self._sliced,
            "quit": self._quit,
        }

    def watch(self) -> None:
        GLib.io_add_watch(
            sys.stdin.fileno(),
            GLib.PRIORITY_DEFAULT,
            GLib.IOCondition.IN | GLib.IOCondition.HUP,
            self._on_stdin,
        )

    def _on_stdin(self, fd: int, _condition: GLib.IOCondition) -> bool:
        chunk = os.read(fd, 65536)
        if not chunk:
            logger.info("stdin closed: shutting down")
            self._loop.quit()
            return False
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            if line.strip():
                emit(self.handle(line))
        return True

    def handle(self, line: bytes) -> dict[str, Any]:
        try:
            command = json.loads(line)
            if not isinstance(command, dict):
                raise CommandError("a command must be a JSON object")
            name = command.get("cmd")
            handler = self._handlers.get(name) if isinstance(name, str) else None
            if handler is None:
                raise CommandError(f"unknown cmd {name!r}")
            reply = handler(command)
        except (ValueError, CommandError) as error:
            return {"event": "error", "error": str(error), "line": line.decode(errors="replace")[:200]}
        return {"event": "ok", "cmd": name, **reply}

    def _mount(self, command: dict[str, Any]) -> str:
        mount = command.get("mount")
        if mount not in self._server.mounts:
            raise CommandError(f"unknown mount {mount!r}")
        return str(mount)

    def _stop(self, command: dict[str, Any]) -> dict[str, Any]:
        mount = self._mount(command)
        self._server.stop_mount(mount)
        return {"mount": mount}

    def _start(self, command: dict[str, Any]) -> dict[str, Any]:
        mount = self._mount(command)
        self._server.start_mount(mount)
        return {"mount": mount}

    def _jump(self, command: dict[str, Any]) -> dict[str, Any]:
        mount = self._mount(command)
        seconds = command.get("seconds")
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or abs(seconds) > 10 * 365 * 86400
        ):
            raise CommandError("seconds must be a number")
        self._server.jump(mount, float(seconds))
        return {"mount": mount, "seconds": seconds}

    def _sliced(self, command: dict[str, Any]) -> dict[str, Any]:
        mount = self._mount(command)
        on = command.get("on")
        if not isinstance(on, bool):
            raise CommandError("on must be true or false")
        self._server.set_sliced(mount, on)
        return {"mount": mount, "on": on}

    def _quit(self, _command: dict[str, Any]) -> dict[str, Any]:
        self._loop.quit()
        return {}


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def mount_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if not name.replace("_", "").replace("-", "").isalnum():
            raise argparse.ArgumentTypeError(f"bad mount name {name!r}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError("duplicate mount names")
    return names


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--mounts", type=mount_list, required=True, help="comma-separated mount names")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--bitrate-kbps", type=int, default=1000)
    parser.add_argument("--clip-seconds", type=int, default=4, help="loop length (whole GOPs of 1 s)")
    parser.add_argument("--audio", action="store_true", help="add an AAC audio stream")
    parser.add_argument("--cache-dir", required=True, help="where encoded clips are kept between runs")
    parser.add_argument("--sliced", type=mount_list, default=[], help="mounts starting in sliced mode")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(list(argv) if argv is not None else None)
    unknown = set(args.sliced) - set(args.mounts)
    if unknown:
        parser.error(f"--sliced names unknown mounts: {', '.join(sorted(unknown))}")
    if min(args.width, args.height, args.fps, args.clip_seconds, args.bitrate_kbps) <= 0:
        parser.error("sizes, rates and lengths must be positive")
    return args


def main(argv: Iterable[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    Gst.init(None)
    loop = GLib.MainLoop()
    server = SimulatedCameraServer(args)
    server.start()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, _quit_on_signal, loop)
    ControlChannel(server, loop).watch()
    emit(
        {"event": "ready", "port": server.port, "mounts": {name: server.url(name) for name in server.mounts}}
    )
    loop.run()
    server.shutdown()
    logger.info("stopped")
    return 0


def _quit_on_signal(loop: GLib.MainLoop) -> bool:
    loop.quit()
    return False  # GLib.SOURCE_REMOVE


if __name__ == "__main__":
    sys.exit(main())
