"""The simulated RTSP cameras, seen through the same client the gateway records with (PyAV).

Each test starts a real GStreamer RTSP server on 127.0.0.1 (port 0) in a child process and reads
it with PyAV over RTSP/TCP in a thread.  Frames are small (320x240) so that the whole file stays
within a few tens of seconds on two cores; the continuous-reading test dominates (~11 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import av
import pytest

from sim.rtsp import DEFAULT_SYSTEM_PYTHON, SERVER_SCRIPT, RtspSourceError

if TYPE_CHECKING:
    from .conftest import StartRtspSource

pytestmark = pytest.mark.slow

READ_TIMEOUT = 20.0


class RtspReader:
    """A PyAV RTSP client in its own thread, recording each stream's DTS (seconds) as it goes.

    With ``remux`` the video packets are also muxed into an in-memory MP4, as a recorder would,
    and the muxer's complaint (if any) is kept in ``mux_error``.
    """

    def __init__(self, url: str, *, max_media_seconds: float = 60.0, remux: bool = False) -> None:
        self.url = url
        self.dts: dict[str, list[float]] = {}
        self.codecs: dict[str, str] = {}
        self.error: Exception | None = None
        self.mux_error: Exception | None = None
        self.finished = False
        self._max_media_seconds = max_media_seconds
        self._remux = remux
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"reader {url}", daemon=True)
        self._thread.start()

    def video_span(self) -> float:
        video = self.dts.get("video", [])
        return video[-1] - video[0] if len(video) > 1 else 0.0

    def count(self, kind: str = "video") -> int:
        return len(self.dts.get(kind, []))

    async def wait_until(self, predicate: Callable[[RtspReader], bool], what: str) -> None:
        def wait() -> bool:
            with self._changed:
                return self._changed.wait_for(lambda: predicate(self) or self.finished, READ_TIMEOUT)

        assert await asyncio.to_thread(wait), f"{self.url}: timed out waiting for {what}"
        assert predicate(self), f"{self.url}: reader finished ({self.error!r}) before {what}"

    async def wait_finished(self) -> None:
        await self.wait_until(lambda reader: reader.finished, "the stream to end")

    async def close(self) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join, READ_TIMEOUT)
        assert not self._thread.is_alive(), f"{self.url}: reader thread did not stop"

    def _run(self) -> None:
        try:
            with av.open(self.url, options={"rtsp_transport": "tcp"}, timeout=(10.0, 5.0)) as container:
                self.codecs = {stream.type: stream.codec_context.name for stream in container.streams}
                self._read(container)
        except Exception as error:  # noqa: BLE001 - recorded for the test to judge
            self.error = error
        finally:
            with self._changed:
                self.finished = True
                self._changed.notify_all()

    def _read(self, container: av.container.InputContainer) -> None:
        output = av.open(io.BytesIO(), "w", format="mp4") if self._remux else None
        try:
            muxed = {}
            if output is not None:
                muxed = {
                    stream.index: output.add_stream_from_template(stream)
                    for stream in container.streams.video
                }
            for packet in container.demux():
                if self._stop.is_set() or self.video_span() >= self._max_media_seconds:
                    return
                if packet.dts is None:
                    continue
                with self._changed:
                    self.dts.setdefault(packet.stream.type, []).append(float(packet.dts * packet.time_base))
                    self._changed.notify_all()
                if output is not None and packet.stream.index in muxed and self.mux_error is None:
                    self._mux(output, muxed[packet.stream.index], packet)
        finally:
            if output is not None:
                with contextlib.suppress(av.FFmpegError):
                    output.close()

    def _mux(
        self,
        output: av.container.OutputContainer,
        stream: av.stream.Stream,
        packet: av.Packet[av.stream.Stream],
    ) -> None:
        packet.stream = stream
        try:
            output.mux(packet)
        except ValueError as error:  # PyAV's "non monotonically increasing dts" is an ArgumentError
            self.mux_error = error


def gaps(values: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(values)]


async def test_every_mount_streams_ten_seconds_of_increasing_video_and_audio(
    start_rtsp_source: StartRtspSource,
) -> None:
    source = await start_rtsp_source(["cam1", "cam2", "cam3"], audio=True)
    assert set(source.mounts) == {"cam1", "cam2", "cam3"}
    assert source.url("cam2") == f"rtsp://127.0.0.1:{source.port}/cam2"

    readers = [RtspReader(source.url(mount), max_media_seconds=10.0) for mount in source.mounts]
    for reader in readers:
        await reader.wait_finished()

    for reader in readers:
        assert reader.error is None, reader.error
        assert reader.codecs == {"video": "h264", "audio": "aac"}
        assert reader.video_span() >= 9.5
        assert min(gaps(reader.dts["video"])) > 0, "video DTS not strictly increasing"
        assert max(gaps(reader.dts["video"])) < 0.1, "video DTS has a hole"
        audio = reader.dts["audio"]
        assert audio[-1] - audio[0] >= 9.0
        assert min(gaps(audio)) > 0, "audio DTS not strictly increasing"


async def test_stopped_mount_drops_its_readers_and_refuses_new_ones_until_started(
    start_rtsp_source: StartRtspSource,
) -> None:
    source = await start_rtsp_source(["cam1", "cam2"])
    stopped = RtspReader(source.url("cam1"))
    bystander = RtspReader(source.url("cam2"))
    await stopped.wait_until(lambda reader: reader.count() >= 5, "cam1 video")
    await bystander.wait_until(lambda reader: reader.count() >= 5, "cam2 video")

    await source.stop_mount("cam1")
    await stopped.wait_finished()
    frames_at_stop = bystander.count()
    refused = RtspReader(source.url("cam1"))
    await refused.wait_finished()
    assert isinstance(refused.error, av.error.HTTPNotFoundError), refused.error
    await bystander.wait_until(lambda reader: reader.count() >= frames_at_stop + 25, "cam2 to go on")

    await source.start_mount("cam1")
    restarted = RtspReader(source.url("cam1"), max_media_seconds=1.0)
    await restarted.wait_finished()
    assert restarted.error is None, restarted.error
    assert restarted.video_span() >= 1.0
    await bystander.close()


async def test_jump_moves_timestamps_forward_for_good(start_rtsp_source: StartRtspSource) -> None:
    """Audio and video both leap, and stay leapt once sender reports have been mapped again."""
    source = await start_rtsp_source(["cam1"], audio=True)
    reader = RtspReader(source.url("cam1"))
    await reader.wait_until(lambda r: r.video_span() >= 1.0 and r.count("audio") > 0, "first second")

    await source.jump("cam1", 30)
    await reader.wait_until(lambda r: max(gaps(r.dts["video"])) > 20, "the jump")
    jumped_at = reader.count()
    # Read long enough for sender reports (one a second) to be sent after the jump.
    await reader.wait_until(lambda r: r.count() >= jumped_at + 75, "three seconds after the jump")
    await reader.close()

    for kind in ("video", "audio"):
        steps = gaps(reader.dts[kind])
        leaps = [step for step in steps if abs(step) > 1.0]
        assert len(leaps) == 1, f"{kind}: {leaps}"
        assert 29.5 < leaps[0] < 30.5, f"{kind}: {leaps}"
        assert min(steps) > 0, f"{kind} DTS went backwards"


async def test_sliced_mount_yields_duplicate_dts_that_trip_the_muxer(
    start_rtsp_source: StartRtspSource,
) -> None:
    source = await start_rtsp_source(["plain", "sliced"], sliced=["sliced"])
    sliced = RtspReader(source.url("sliced"), max_media_seconds=2.0, remux=True)
    plain = RtspReader(source.url("plain"), max_media_seconds=2.0, remux=True)
    await sliced.wait_finished()
    await plain.wait_finished()

    assert sliced.error is None, sliced.error
    assert gaps(sliced.dts["video"]).count(0.0) >= 25, "expected one packet per slice, same DTS"
    assert isinstance(sliced.mux_error, ValueError)
    assert plain.mux_error is None
    assert min(gaps(plain.dts["video"])) > 0


async def test_sliced_mode_switches_on_and_off_at_runtime(start_rtsp_source: StartRtspSource) -> None:
    source = await start_rtsp_source(["cam1"])
    reader = RtspReader(source.url("cam1"))
    await reader.wait_until(lambda r: r.count() >= 5, "first frames")
    assert min(gaps(reader.dts["video"])) > 0

    await source.set_sliced("cam1", True)
    await reader.wait_until(lambda r: 0.0 in gaps(r.dts["video"]), "duplicate DTS")
    await source.set_sliced("cam1", False)
    # The switch back waits for the next keyframe (1 s GOP); then whole frames come again.
    await reader.wait_until(lambda r: min(gaps(r.dts["video"][-26:])) > 0, "a second of whole frames")
    await reader.close()


async def test_commands_for_unknown_mounts_are_refused(start_rtsp_source: StartRtspSource) -> None:
    source = await start_rtsp_source(["cam1"])
    with pytest.raises(RtspSourceError, match="unknown mount"):
        await source.stop_mount("nope")
    with pytest.raises(KeyError):
        source.url("nope")
    await source.jump("cam1", 5)  # the server still answers after a refusal


async def test_start_failure_reports_the_servers_complaint(start_rtsp_source: StartRtspSource) -> None:
    with pytest.raises(RtspSourceError, match="must be positive"):
        await start_rtsp_source(["cam1"], width=0)


async def test_control_channel_answers_malformed_lines_and_quits_cleanly(rtsp_clip_cache: object) -> None:
    """Speaks the raw protocol: every line gets one reply, bad ones an error event."""
    process = await asyncio.create_subprocess_exec(
        DEFAULT_SYSTEM_PYTHON,
        str(SERVER_SCRIPT),
        *("--mounts", "cam1", "--width", "160", "--height", "120", "--cache-dir", str(rtsp_clip_cache)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        ready = json.loads(await asyncio.wait_for(process.stdout.readline(), 60))
        assert ready["event"] == "ready" and set(ready["mounts"]) == {"cam1"}
        lines = [
            b"not json",
            b"[1, 2]",
            b'{"cmd": "dance"}',
            b'{"cmd": "jump", "mount": "cam1", "seconds": "x"}',
            b'{"cmd": "jump", "mount": "cam1", "seconds": -5}',
        ]
        for line in lines:
            process.stdin.write(line + b"\n")
            reply = json.loads(await asyncio.wait_for(process.stdout.readline(), 10))
            assert reply["event"] == "error", (line, reply)
        process.stdin.write(b'{"cmd": "quit"}\n')
        assert json.loads(await asyncio.wait_for(process.stdout.readline(), 10)) == {
            "event": "ok",
            "cmd": "quit",
        }
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
