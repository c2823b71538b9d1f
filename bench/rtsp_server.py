"""Benchmark: CPU cost of the simulated site's RTSP server at site scale.

Starts ``sim.rtsp.RtspSource`` with one mount per camera (default 32 at 1280x720, 25 fps), attaches
one demux-only PyAV reader per mount (threads in this process, no decoding), then measures the
server process's CPU time over a window from /proc/<pid>/stat.  The point of the server design is
that looping pre-encoded samples costs little; the target is at most half a core for 32 cameras.

Prints ``name=value`` lines.  Run with the project's virtualenv::

    python bench/rtsp_server.py --streams 32 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import av

from sim.rtsp import RtspSource

logger = logging.getLogger(__name__)

CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class ReaderStats:
    """What one reader saw; written by its thread, read by the main thread after a barrier."""

    video_packets: int = 0
    bytes: int = 0
    first_packet: threading.Event = dataclasses.field(default_factory=threading.Event)
    error: str | None = None


class StreamReader:
    """One demux-only RTSP client in an owned thread, stopped by an event."""

    def __init__(self, url: str, stop: threading.Event) -> None:
        self.url = url
        self.stats = ReaderStats()
        self._stop = stop
        self._thread = threading.Thread(target=self._run, name=f"reader {url}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            with av.open(self.url, options={"rtsp_transport": "tcp"}, timeout=10.0) as container:
                for packet in container.demux():
                    if self._stop.is_set():
                        return
                    if packet.size == 0:
                        continue
                    if packet.stream.type == "video":
                        self.stats.video_packets += 1
                    self.stats.bytes += packet.size
                    self.stats.first_packet.set()
        except Exception as error:  # noqa: BLE001 - a bench reports, it does not crash
            self.stats.error = f"{type(error).__name__}: {error}"
            self.stats.first_packet.set()


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (field 14 and 15; the name may contain spaces)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_SECOND


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_bench(args: argparse.Namespace) -> dict[str, object]:
    mounts = [f"cam{index + 1}" for index in range(args.streams)]
    started = time.monotonic()
    source = RtspSource(
        mounts,
        cache_dir=args.cache_dir,
        width=args.width,
        height=args.height,
        fps=args.fps,
        audio=args.audio,
        ready_timeout=300.0,
    )
    async with source:
        startup_seconds = time.monotonic() - started
        stop = threading.Event()
        readers = [StreamReader(source.url(mount), stop) for mount in mounts]
        for reader in readers:
            reader.start()
        try:
            await asyncio.to_thread(wait_for_first_packets, readers, 60.0)
            await asyncio.sleep(args.warmup)
            before = snapshot(source.pid, readers)
            await asyncio.sleep(args.seconds)
            after = snapshot(source.pid, readers)
        finally:
            stop.set()
            await asyncio.to_thread(join_readers, readers, 15.0)
    wall = after.wall - before.wall
    server_cpu = after.server_cpu - before.server_cpu
    frame_rates = [(a - b) / wall for a, b in zip(after.video_packets, before.video_packets, strict=True)]
    return {
        "streams": args.streams,
        "width": args.width,
        "height": args.height,
        "fps": args.fps,
        "audio": int(args.audio),
        "seconds": round(wall, 2),
        "startup_seconds": round(startup_seconds, 2),
        "server_cpu_seconds": round(server_cpu, 2),
        "server_cores": round(server_cpu / wall, 3),
        "reader_cores": round((after.own_cpu - before.own_cpu) / wall, 3),
        "min_stream_fps": round(min(frame_rates), 1),
        "mean_stream_fps": round(sum(frame_rates) / len(frame_rates), 1),
        "total_mbit_per_second": round((sum(after.bytes) - sum(before.bytes)) * 8 / wall / 1e6, 2),
        "reader_errors": sum(1 for reader in readers if reader.stats.error),
    }


@dataclasses.dataclass(frozen=True)
class Snapshot:
    wall: float
    server_cpu: float
    own_cpu: float
    video_packets: list[int]
    bytes: list[int]


def snapshot(pid: int, readers: list[StreamReader]) -> Snapshot:
    return Snapshot(
        time.monotonic(),
        process_cpu_seconds(pid),
        own_cpu_seconds(),
        [reader.stats.video_packets for reader in readers],
        [reader.stats.bytes for reader in readers],
    )


def wait_for_first_packets(readers: list[StreamReader], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for reader in readers:
        if not reader.stats.first_packet.wait(max(0.0, deadline - time.monotonic())):
            raise TimeoutError(f"no packet from {reader.url} within {timeout:.0f} s")
        if reader.stats.error:
            raise RuntimeError(f"reader {reader.url} failed: {reader.stats.error}")


def join_readers(readers: list[StreamReader], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for reader in readers:
        reader.join(max(0.0, deadline - time.monotonic()))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=2.0, help="settling time before measuring")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--audio", action="store_true")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "ivc-sim-rtsp-cache",
        help="encoded clip cache, kept between runs (a cold cache adds encoding to startup)",
    )
    return parser.parse_args()


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    results = asyncio.run(run_bench(parse_args()))
    for name, value in results.items():
        print(f"{name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
