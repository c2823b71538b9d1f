"""Simulated site cameras over real RTSP, for tests and benchmarks.

``RtspSource`` runs ``gst_server.py`` (next to this file) under the system Python, where Debian's
GStreamer bindings live, and drives it over its stdin/stdout JSON-lines protocol.  The daemon and
the tests run in the project's virtualenv, which has no ``gi``; keeping GStreamer in a child
process also means a crash or hang there never takes the test process with it.

This module uses only the standard library so that it imports under any Python 3.11.

Example::

    async with RtspSource(["cam1", "cam2"], cache_dir=tmp_path) as source:
        url = source.url("cam1")
        await source.stop_mount("cam1")   # readers are dropped, DESCRIBE gets 404
        await source.start_mount("cam1")
        await source.jump("cam1", 30)     # RTP timestamps leap 30 s forward
        await source.set_sliced("cam1", True)  # duplicate DTS, one packet per slice
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import signal
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

logger = logging.getLogger(__name__)

SERVER_SCRIPT = Path(__file__).resolve().with_name("gst_server.py")
# The distribution's interpreter: python3-gi and the GStreamer typelibs are installed for it,
# not for the virtualenv.
DEFAULT_SYSTEM_PYTHON = "/usr/bin/python3"
STDERR_TAIL_LINES = 200


class RtspSourceError(RuntimeError):
    """The simulated RTSP server failed to start, refused a command, or went away."""


class RtspSource:
    """A running simulated RTSP server with named mounts; an async context manager.

    Encoded clips are cached in ``cache_dir`` (keyed by their parameters), so only the first
    server started with given parameters pays for encoding.
    """

    def __init__(
        self,
        mounts: Sequence[str],
        *,
        cache_dir: Path | str,
        width: int = 1280,
        height: int = 720,
        fps: int = 25,
        audio: bool = False,
        sliced: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        bitrate_kbps: int | None = None,
        clip_seconds: int | None = None,
        python: str = DEFAULT_SYSTEM_PYTHON,
        ready_timeout: float = 60.0,
        command_timeout: float = 30.0,
        exit_timeout: float = 5.0,
        log_level: str = "WARNING",
    ) -> None:
        if not mounts:
            raise ValueError("at least one mount is needed")
        self._argv = [python, str(SERVER_SCRIPT), "--host", host, "--port", str(port)]
        self._argv += ["--mounts", ",".join(mounts), "--width", str(width), "--height", str(height)]
        self._argv += ["--fps", str(fps), "--cache-dir", str(cache_dir), "--log-level", log_level]
        if audio:
            self._argv.append("--audio")
        sliced = list(sliced)
        if sliced:
            self._argv += ["--sliced", ",".join(sliced)]
        if bitrate_kbps is not None:
            self._argv += ["--bitrate-kbps", str(bitrate_kbps)]
        if clip_seconds is not None:
            self._argv += ["--clip-seconds", str(clip_seconds)]
        self._ready_timeout = ready_timeout
        self._command_timeout = command_timeout
        self._exit_timeout = exit_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._returncode: int | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_task: asyncio.Task[None] | None = None
        self._command_lock = asyncio.Lock()
        self._out_of_step = False
        self._urls: dict[str, str] = {}
        self._port = 0

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def pid(self) -> int:
        return self._running_process().pid

    @property
    def port(self) -> int:
        return self._port

    @property
    def mounts(self) -> dict[str, str]:
        """Mount name to URL, as announced by the server."""
        return dict(self._urls)

    def url(self, mount: str) -> str:
        try:
            return self._urls[mount]
        except KeyError:
            raise KeyError(f"unknown mount {mount!r}") from None

    async def start(self) -> None:
        """Spawn the server and wait for its ready line; on failure nothing is left running."""
        if self._process is not None:
            raise RtspSourceError("already started")
        self._process = await asyncio.create_subprocess_exec(
            *self._argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._stderr_task = asyncio.create_task(self._drain_stderr(), name="rtsp-source-stderr")
        try:
            ready = await asyncio.wait_for(self._read_ready(), self._ready_timeout)
        except (Exception, asyncio.CancelledError) as error:
            await self.close()
            if isinstance(error, TimeoutError):
                raise RtspSourceError(
                    f"RTSP server not ready after {self._ready_timeout:.0f} s; stderr:\n{self.stderr_tail()}"
                ) from None
            raise
        self._port = int(ready["port"])
        self._urls = {str(name): str(url) for name, url in ready["mounts"].items()}
        logger.info("RTSP source ready on port %d (pid %d, %d mounts)", self._port, self.pid, len(self._urls))

    async def stop_mount(self, mount: str) -> None:
        """Take a camera off the air: its readers are disconnected, new DESCRIBEs get 404."""
        await self._command({"cmd": "stop", "mount": mount})

    async def start_mount(self, mount: str) -> None:
        """Put a stopped camera back on the air."""
        await self._command({"cmd": "start", "mount": mount})

    async def jump(self, mount: str, seconds: float) -> None:
        """Shift the mount's timestamps by ``seconds`` from now on (a camera clock leap).

        Negative steps are allowed as long as the mount's total jump stays zero or above.
        """
        await self._command({"cmd": "jump", "mount": mount, "seconds": seconds})

    async def set_sliced(self, mount: str, on: bool) -> None:
        """Switch (at the next keyframe) to sending each slice as its own picture: duplicate DTS."""
        await self._command({"cmd": "sliced", "mount": mount, "on": on})

    async def close(self) -> None:
        """Terminate the server and wait for it; kill it if it does not exit in time."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), self._exit_timeout)
            except TimeoutError:
                logger.warning("RTSP server pid %d ignored SIGTERM; killing it", process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if process.stdin is not None:
            process.stdin.close()
        if self._stderr_task is not None:
            await self._stderr_finished()
            self._stderr_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task
            self._stderr_task = None
        logger.info("RTSP server pid %d exited with %s", process.pid, process.returncode)
        self._returncode = process.returncode
        self._process = None

    @property
    def returncode(self) -> int | None:
        """The server's exit status once it has exited (kept after ``close``), else None."""
        return self._returncode if self._process is None else self._process.returncode

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr_tail)

    def _running_process(self) -> asyncio.subprocess.Process:
        if self._process is None:
            raise RtspSourceError("RTSP server is not running")
        return self._process

    async def _read_ready(self) -> dict[str, Any]:
        process = self._running_process()
        assert process.stdout is not None
        while True:
            line = await process.stdout.readline()
            if not line:
                code = await process.wait()
                await self._stderr_finished()
                raise RtspSourceError(
                    f"RTSP server exited with {code} before ready; stderr:\n{self.stderr_tail()}"
                )
            event = self._parse(line)
            if event.get("event") == "ready":
                return event
            logger.debug("RTSP server said before ready: %s", event)

    async def _command(self, command: dict[str, Any]) -> dict[str, Any]:
        process = self._running_process()
        assert process.stdin is not None and process.stdout is not None
        async with self._command_lock:
            if self._out_of_step:
                raise RtspSourceError("an earlier command went unanswered; close this source")
            try:
                process.stdin.write(json.dumps(command).encode() + b"\n")
                await process.stdin.drain()
                line = await asyncio.wait_for(process.stdout.readline(), self._command_timeout)
            except (ConnectionError, TimeoutError) as error:
                # A late reply would be taken for the next command's: refuse further commands.
                self._out_of_step = True
                raise RtspSourceError(f"RTSP server did not answer {command}: {error!r}") from error
        if not line:
            raise RtspSourceError(f"RTSP server went away during {command}; stderr:\n{self.stderr_tail()}")
        reply = self._parse(line)
        if reply.get("event") != "ok":
            raise RtspSourceError(f"RTSP server refused {command}: {reply.get('error', reply)}")
        return reply

    @staticmethod
    def _parse(line: bytes) -> dict[str, Any]:
        try:
            event = json.loads(line)
        except ValueError:
            raise RtspSourceError(f"RTSP server wrote a non-JSON line: {line[:200]!r}") from None
        if not isinstance(event, dict):
            raise RtspSourceError(f"RTSP server wrote a non-object line: {line[:200]!r}")
        return event

    async def _stderr_finished(self) -> None:
        """Let the drain read the last of stderr (EOF follows the child's exit), within bounds."""
        if self._stderr_task is not None:
            await asyncio.wait({self._stderr_task}, timeout=self._exit_timeout)

    async def _drain_stderr(self) -> None:
        """Keep reading the child's stderr: a full pipe would block it; the tail explains failures."""
        process = self._running_process()
        assert process.stderr is not None
        while line := await process.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self._stderr_tail.append(text)
            logger.debug("gst_server[%d]: %s", process.pid, text)


__all__ = ["DEFAULT_SYSTEM_PYTHON", "SERVER_SCRIPT", "RtspSource", "RtspSourceError"]
