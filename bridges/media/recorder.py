"""Recording channels: one worker thread per channel, supervised, and a pool the daemon drives.

``ChannelRecorder`` owns one thread and its stop event.  The thread loops over *attempts* (as
MediaMTX's recorder over its instances): open the RTSP URL with PyAV over TCP, demux, feed a
fresh ``SegmentWriter``; when the attempt ends - the camera went away, the stream stalled, the
disk failed - the writer closes its segment, the thread logs once, waits out the backoff
(1 s x5, 5 s x5, 10 s x10, then 60 s; injectable) and tries again.  Backoff starts over after an
attempt that wrote something.

Why threads, not a process per stream: PyAV releases the GIL in demux and mux, and a thread
cost about 0.7 CPU-seconds per stream-minute against about 1.1 for a process per stream when
the recorder was designed; threads also share one index hand-off with no IPC.  With the read
batching below, ``bench/recording.py`` measures this recorder at about 0.75 of the CPU that one
``ffmpeg -c copy`` process per stream needs for the same streams.

Watchdog, two mechanisms for one rule ("restart a channel when nothing was written for
``watchdog_seconds``"): PyAV's read timeout makes reads that return no packet fail (a server
that keeps the TCP connection open but sends nothing, or only RTCP; see ``_open`` for why each
read gets half the period), and the demux loop restarts the attempt when packets do arrive but
none has been written for that long (no keyframe ever comes, or every DTS is refused).  The
socket I/O timeout (FFmpeg's ``timeout`` option) bounds each connect/read as well, so a dead
server cannot hang a thread.

Every interruption becomes a ``RecordingGap`` fact (start = the end of the last written media,
end = the start of the next segment, reason = what ended the attempt), reported once the
recording resumes or, if it never does, when the recorder is stopped.

``stop()`` is "signal, then wait for done": the stop event is set; the thread sees it within a
read batch (0.2 s) on a live stream, closes its current segment cleanly and exits.  PyAV offers
no way to abort a read from another thread, so on a camera that has gone silent the thread only
notices at its read timeout (half of ``watchdog_seconds``); ``stop`` waits
``stop_timeout_seconds`` at most, and a segment still open when the process exits is salvaged by
start-up recovery.

``RecorderPool`` owns many recorders for the asyncio daemon.  Hooks run on worker threads; the
pool hands each event to the loop with ``loop.call_soon_threadsafe`` into a queue that one owned
task drains into ``RecordingEvents`` (the indexer), in order.  The event loop never touches PyAV.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import urlsplit, urlunsplit

import av

from .events import RecordingEvent, RecordingEvents, RecordingGap, SegmentInfo, SegmentOpened
from .writer import DISK_ERRNOS, MP4_AUDIO_CODECS, SegmentWriter, WriterSettings, codec_name

logger = logging.getLogger(__name__)

DEFAULT_BACKOFF: Final[tuple[float, ...]] = (1.0,) * 5 + (5.0,) * 5 + (10.0,) * 10 + (60.0,)
# A packet the demuxer took this long to return was read off the wire, not out of its buffer.
LIVE_PACKET_WAIT_SECONDS: Final = 0.005
# How long packets are watched after they start arriving live, to anchor media time on the clock.
ANCHOR_WINDOW_SECONDS: Final = 0.5
MAX_PROBE_BUFFER_PACKETS: Final = 2000


@dataclass(frozen=True, slots=True)
class RecorderSettings:
    """How channels are recorded; the writer's part is nested (segment length, fragments...)."""

    writer: WriterSettings = field(default_factory=WriterSettings)
    # Pauses between attempts; the n-th consecutive failure waits backoff[n-1], the last repeats.
    backoff: tuple[float, ...] = DEFAULT_BACKOFF
    # Restart the attempt when nothing was written for this long.
    watchdog_seconds: float = 20.0
    # Connecting, DESCRIBE/SETUP/PLAY and probing the stream must finish within this.
    open_timeout_seconds: float = 10.0
    # Pause after catching up with the camera (see ``_pump``); [0, 0.25] as it adds to crash loss.
    read_batch_seconds: float = 0.2
    # How long ``stop`` waits for the thread to close its segment.
    stop_timeout_seconds: float = 15.0

    def __post_init__(self) -> None:
        if not self.backoff or min(self.backoff) < 0:
            raise ValueError("backoff needs at least one delay, none negative")
        if self.watchdog_seconds <= 0 or self.open_timeout_seconds <= 0:
            raise ValueError("timeouts must be positive")
        if not 0 <= self.read_batch_seconds <= 0.25:
            raise ValueError("read_batch_seconds must be in [0, 0.25]: unread data is lost in a crash")

    def backoff_delay(self, failures: int) -> float:
        """Pause before the next attempt after ``failures`` consecutive fruitless ones (>= 1)."""
        return self.backoff[min(max(failures, 1), len(self.backoff)) - 1]


@dataclass(frozen=True, slots=True)
class RecorderHooks:
    """Callbacks a recorder calls on its worker thread (the pool hands them to the loop)."""

    on_segment_opened: Callable[[SegmentOpened], None] | None = None
    on_segment_closed: Callable[[SegmentInfo], None] | None = None
    on_gap: Callable[[RecordingGap], None] | None = None


class RecorderState(enum.StrEnum):
    STARTING = "starting"
    RECORDING = "recording"
    RETRYING = "retrying"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class RecorderStatus:
    """A snapshot for status pages and the scheduler."""

    channel: str
    state: RecorderState
    attempts: int
    consecutive_failures: int
    last_error: str
    current_segment: Path | None
    segments_closed: int


class _AttemptEnded(Exception):
    """Internal: how an attempt ended, as a gap reason."""


def redact_url(url: str) -> str:
    """The URL without user name and password, for logs and gap reasons."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit(parts._replace(netloc=netloc))


class ChannelRecorder:
    """Records one channel from one RTSP URL into segments, in its own thread, until stopped."""

    def __init__(
        self,
        channel: str,
        url: str,
        recordings_dir: Path,
        *,
        settings: RecorderSettings | None = None,
        hooks: RecorderHooks | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.channel = channel
        self.url = url
        self._recordings_dir = recordings_dir
        self._settings = settings or RecorderSettings()
        self._hooks = hooks or RecorderHooks()
        self._clock = clock
        self._stop = threading.Event()
        # A daemon thread: if the process exits with a thread stuck in a read, it must not hang
        # the exit; the segment it leaves open is what start-up recovery is for.
        self._thread = threading.Thread(target=self._run, name=f"recorder {channel}", daemon=True)
        self._writer: SegmentWriter | None = None
        self._state = RecorderState.STARTING
        self._attempts = 0
        self._failures = 0
        self._last_error = ""
        self._segments_closed = 0
        # Gap bookkeeping: where written media last ended, and the open interruption if any.
        self._media_end: float | None = None
        self._gap_start: float | None = None
        self._gap_reason = ""

    # -- control (any thread) --------------------------------------------------------------------

    def start(self) -> None:
        self._media_end = None
        self._gap_start = self._clock()  # an interruption before the first segment starts here
        self._thread.start()

    def request_stop(self) -> None:
        """Signal the thread to finish; returns at once."""
        self._stop.set()

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Wait for the thread to close its segment and exit; True if it did within ``timeout``."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> bool:
        """Signal, then wait for done (blocking: from asyncio use the pool)."""
        self.request_stop()
        return self.wait_stopped(self._settings.stop_timeout_seconds if timeout is None else timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def status(self) -> RecorderStatus:
        writer = self._writer
        return RecorderStatus(
            channel=self.channel,
            state=self._state,
            attempts=self._attempts,
            consecutive_failures=self._failures,
            last_error=self._last_error,
            current_segment=writer.current_path if writer is not None else None,
            segments_closed=self._segments_closed,
        )

    # -- worker thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        logger.info("channel %s: recorder started for %s", self.channel, redact_url(self.url))
        try:
            while not self._stop.is_set():
                self._attempts += 1
                wrote = self._attempt()
                if self._stop.is_set():
                    break
                self._failures = 0 if wrote else self._failures + 1
                delay = self._settings.backoff_delay(self._failures)
                self._state = RecorderState.RETRYING
                logger.warning(
                    "channel %s: %s; retrying in %.1f s (attempt %d)",
                    self.channel,
                    self._last_error,
                    delay,
                    self._attempts,
                )
                self._stop.wait(delay)
        finally:
            self._close_open_gap()
            self._state = RecorderState.STOPPED
            logger.info("channel %s: recorder stopped", self.channel)

    def _attempt(self) -> bool:
        """One connection: record until it fails or a stop is asked; True if anything was written."""
        writer: SegmentWriter | None = None
        try:
            container = self._open()
            try:
                writer = self._new_writer(container)
                self._writer = writer
                self._state = RecorderState.RECORDING
                self._pump(container, writer)
            finally:
                closing = time.monotonic()
                container.close()
                logger.debug("channel %s: stream closed in %.3f s", self.channel, time.monotonic() - closing)
        except _AttemptEnded as ended:
            self._last_error = str(ended)
        except av.FFmpegError as error:
            if _is_timeout(error):
                watchdog = self._settings.watchdog_seconds
                self._last_error = f"watchdog: no packet received for {watchdog:g} s"
            elif error.errno in DISK_ERRNOS:
                self._last_error = f"writing failed: {_describe_ffmpeg_error(error)}"
            else:
                self._last_error = f"stream failed: {_describe_ffmpeg_error(error)}"
        except OSError as error:
            self._last_error = f"I/O error: {error}"
        except Exception as error:  # a bug must cost one attempt, not the channel's recording
            logger.exception("channel %s: recording attempt failed unexpectedly", self.channel)
            self._last_error = f"internal error: {type(error).__name__}: {error}"
        finally:
            if writer is not None:
                writer.close()
                self._writer = None
        if not self._stop.is_set():
            self._open_gap(self._last_error)
        return writer is not None and writer.packets_written > 0

    def _open(self) -> av.container.InputContainer:
        # Half the watchdog period per read: when a read times out FFmpeg's demuxer flushes its
        # parser and returns the picture it held back, so a silent stream fails on the *second*
        # timed-out read - one watchdog period after the last packet.
        read_timeout = self._settings.watchdog_seconds / 2
        options = {
            "rtsp_transport": "tcp",
            # FFmpeg's socket I/O timeout (microseconds) for connect and every read.
            "timeout": str(round(read_timeout * 1_000_000)),
        }
        timeouts = (self._settings.open_timeout_seconds, read_timeout)
        opening = time.monotonic()
        try:
            container = av.open(self.url, options=options, timeout=timeouts)
        except av.FFmpegError as error:
            if _is_timeout(error):
                raise _AttemptEnded(f"cannot open stream: no answer within {timeouts[0]:g} s") from error
            raise _AttemptEnded(f"cannot open stream: {_describe_ffmpeg_error(error)}") from error
        logger.debug("channel %s: stream opened in %.3f s", self.channel, time.monotonic() - opening)
        return container

    def _new_writer(self, container: av.container.InputContainer) -> SegmentWriter:
        if not container.streams.video:
            raise _AttemptEnded("the stream has no video")
        video = container.streams.video[0]
        audio = self._recordable_audio(container)
        return SegmentWriter(
            self.channel,
            self._recordings_dir,
            video=video,
            audio=audio,
            settings=self._settings.writer,
            on_segment_opened=self._segment_opened,
            on_segment_closed=self._segment_closed,
            clock=self._clock,
        )

    def _recordable_audio(self, container: av.container.InputContainer) -> av.AudioStream | None:
        for stream in container.streams.audio:
            codec = codec_name(stream)
            if codec == "aac" and not stream.codec_context.extradata:
                # ADTS-framed AAC (no AudioSpecificConfig in the SDP): MP4 needs the config up
                # front, in the empty moov written before the first packet.
                logger.info("channel %s: AAC audio without configuration; recording video only", self.channel)
            elif codec in MP4_AUDIO_CODECS:
                return stream
            else:
                logger.info(
                    "channel %s: %s audio cannot go into MP4 without transcoding; recording video only",
                    self.channel,
                    codec,
                )
        return None

    def _pump(self, container: av.container.InputContainer, writer: SegmentWriter) -> None:
        """The hot loop: demux, hand to the writer, check stop and the watchdog per packet.

        Read batching: when a read had to wait for the network (we are caught up with the
        camera), the thread pauses ``read_batch_seconds`` before reading on, so the socket
        collects several RTP packets per wake-up instead of waking the thread for each one.
        Waking per packet is what costs most (the scheduler and the GIL hand-off, not the
        copying); the pause adds that much latency, which a recording does not mind.
        """
        packets = container.demux(writer.sources)
        for packet in self._drain_probe_buffer(packets, writer):
            writer.write(packet)
        watchdog = self._settings.watchdog_seconds
        batch = self._settings.read_batch_seconds
        stop = self._stop
        write = writer.write
        monotonic = time.monotonic
        while True:
            asked = monotonic()
            try:
                packet = next(packets)
            except StopIteration:
                break
            arrived = monotonic()
            if stop.is_set():
                return
            write(packet, arrived)
            if arrived - writer.last_write > watchdog:
                raise _AttemptEnded(f"watchdog: packets arrive but nothing was written for {watchdog:g} s")
            if arrived - asked > LIVE_PACKET_WAIT_SECONDS and batch:
                stop.wait(batch)
        if not stop.is_set():
            raise _AttemptEnded("the stream ended")

    def _drain_probe_buffer(
        self, packets: Iterator[av.Packet[Any]], writer: SegmentWriter
    ) -> list[av.Packet[Any]]:
        """Take the packets FFmpeg buffered while probing the stream, and anchor media time.

        Opening the stream reads about a second ahead to learn its parameters; those packets
        come back late, back-to-back.  Every packet's ``clock - media time`` is therefore the
        wall time of media time zero *plus* how late the packet came; the smallest value seen
        over a short window once packets arrive live is the anchor.  (Taking the first packet
        that waited for the network instead would be fooled by a thread that merely waited for
        the GIL.)  The packets are held meanwhile - about ``ANCHOR_WINDOW_SECONDS`` more than
        the probe read - and then written.
        """
        buffered: list[av.Packet[Any]] = []
        anchor: float | None = None
        live_since: float | None = None
        previous = time.monotonic()
        for packet in packets:
            buffered.append(packet)
            now = time.monotonic()
            if packet.dts is not None and packet.time_base:
                candidate = self._clock() - float(packet.dts * packet.time_base)
                anchor = candidate if anchor is None else min(anchor, candidate)
            if live_since is None and now - previous >= LIVE_PACKET_WAIT_SECONDS:
                live_since = now
            if live_since is not None and now - live_since >= ANCHOR_WINDOW_SECONDS:
                break
            if len(buffered) >= MAX_PROBE_BUFFER_PACKETS or self._stop.is_set():
                break
            previous = now
        if anchor is not None:
            writer.set_media_anchor(anchor)
        return buffered

    # -- hooks and gaps (worker thread) ----------------------------------------------------------

    def _segment_opened(self, event: SegmentOpened) -> None:
        if self._gap_start is not None:
            self._report_gap(event.start)
        if self._hooks.on_segment_opened is not None:
            self._hooks.on_segment_opened(event)

    def _segment_closed(self, info: SegmentInfo) -> None:
        self._segments_closed += 1
        self._media_end = info.end
        if self._hooks.on_segment_closed is not None:
            self._hooks.on_segment_closed(info)

    def _open_gap(self, reason: str) -> None:
        """An interruption began (if none is open): it starts where written media ended."""
        if self._gap_start is None:
            self._gap_start = self._media_end if self._media_end is not None else self._clock()
            self._gap_reason = reason
        elif not self._gap_reason:
            self._gap_reason = reason

    def _report_gap(self, end: float) -> None:
        start, reason = self._gap_start, self._gap_reason
        self._gap_start, self._gap_reason = None, ""
        if start is None or not reason:
            return  # the first connection of a recorder: not an interruption
        gap = RecordingGap(self.channel, start, max(start, end), reason)
        logger.info("channel %s: gap of %.1f s recorded (%s)", self.channel, gap.duration, reason)
        if self._hooks.on_gap is not None:
            self._hooks.on_gap(gap)

    def _close_open_gap(self) -> None:
        if self._gap_start is not None and self._gap_reason:
            self._gap_reason += " (recorder stopped before the stream came back)"
            self._report_gap(self._clock())


def _is_timeout(error: av.FFmpegError) -> bool:
    """PyAV's timeout interrupts FFmpeg (ExitError); the socket timeout gives ETIMEDOUT."""
    return isinstance(error, av.ExitError | TimeoutError)


def _describe_ffmpeg_error(error: av.FFmpegError) -> str:
    """Error type and FFmpeg's message, without the URL PyAV puts in ``str(error)``."""
    return f"{type(error).__name__}: {error.strerror or 'unknown error'}"


class RecorderPool:
    """Many ``ChannelRecorder``s for the asyncio daemon, with events delivered on the loop.

    Use as ``async with RecorderPool(dir, events) as pool``; leaving the block stops every
    recorder (closing their segments) and delivers every last event before returning.
    """

    def __init__(
        self,
        recordings_dir: Path,
        events: RecordingEvents,
        *,
        settings: RecorderSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._recordings_dir = recordings_dir
        self._events = events
        self._settings = settings or RecorderSettings()
        self._clock = clock
        self._recorders: dict[str, ChannelRecorder] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[RecordingEvent] = asyncio.Queue()
        self._delivery: asyncio.Task[None] | None = None
        self._closed = False

    async def __aenter__(self) -> Self:
        if self._closed:
            raise RuntimeError("a recorder pool cannot be reopened")
        self._loop = asyncio.get_running_loop()
        self._delivery = asyncio.create_task(self._deliver(), name="recording-events")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def channels(self) -> list[str]:
        return sorted(self._recorders)

    def status(self, channel: str) -> RecorderStatus:
        return self._recorders[channel].status()

    async def start(self, channel: str, url: str) -> None:
        """Record ``channel`` from ``url``; no-op if already so, restart if the URL changed."""
        if self._loop is None or self._closed:
            raise RuntimeError("the pool is not running (use it as an async context manager)")
        current = self._recorders.get(channel)
        if current is not None:
            if current.url == url and current.running:
                return
            await self.stop(channel)
        hooks = RecorderHooks(self._hand_off, self._hand_off, self._hand_off)
        recorder = ChannelRecorder(
            channel, url, self._recordings_dir, settings=self._settings, hooks=hooks, clock=self._clock
        )
        self._recorders[channel] = recorder
        recorder.start()

    async def stop(self, channel: str) -> None:
        """Stop one channel; its current segment is closed and reported before this returns."""
        recorder = self._recorders.pop(channel, None)
        if recorder is not None:
            await self._stop_recorders([recorder])

    async def stop_all(self) -> None:
        recorders = list(self._recorders.values())
        self._recorders.clear()
        await self._stop_recorders(recorders)

    async def close(self) -> None:
        """Stop every recorder, deliver the remaining events, end the delivery task; idempotent."""
        self._closed = True
        await self.stop_all()
        if self._delivery is not None:
            self._delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._delivery
            self._delivery = None

    async def _stop_recorders(self, recorders: Sequence[ChannelRecorder]) -> None:
        for recorder in recorders:
            recorder.request_stop()
        timeout = self._settings.stop_timeout_seconds
        for recorder in recorders:
            if not await asyncio.to_thread(recorder.wait_stopped, timeout):
                logger.error("channel %s: recorder did not stop within %.0f s", recorder.channel, timeout)
        # Events the threads emitted were queued by callbacks scheduled before this point.
        await asyncio.sleep(0)
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            logger.error(
                "recording events not delivered within %.0f s: %d left", timeout, self._queue.qsize()
            )

    def _hand_off(self, event: RecordingEvent) -> None:
        """Called on a worker thread: queue the event on the loop, never blocking the worker."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # the loop is closed: the daemon is gone; recovery will index files
            logger.warning("recording event lost, the event loop is closed: %s", event)

    async def _deliver(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._dispatch(event)
            except Exception:
                logger.exception("recording event handler failed for %s", event)
            finally:
                self._queue.task_done()

    async def _dispatch(self, event: RecordingEvent) -> None:
        if isinstance(event, SegmentInfo):
            await self._events.segment_closed(event)
        elif isinstance(event, SegmentOpened):
            await self._events.segment_opened(event)
        else:
            await self._events.gap_recorded(event)


__all__ = [
    "DEFAULT_BACKOFF",
    "ChannelRecorder",
    "RecorderHooks",
    "RecorderPool",
    "RecorderSettings",
    "RecorderState",
    "RecorderStatus",
    "redact_url",
]
