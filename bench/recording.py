"""Benchmark: CPU and memory of the gateway's recorder against FFmpeg stream-copying the same streams.

Starts its own simulated site (``sim.rtsp.RtspSource``, default 1280x720 25 fps) with N mounts,
then, one after the other on the same server:

1. records every mount with ``bridges.media.RecorderPool`` (one thread per channel, closed
   segments entered in a real ``RecordingIndex``), in this process;
2. records every mount with one ``ffmpeg -rtsp_transport tcp -i URL -c copy -f segment`` process
   per stream (the usual way to record RTSP without writing code).

Each phase is measured over the same window after a warm-up (connections set up, first segment
open), so start-up costs are excluded from both.  Our CPU is this process's CPU over the window
minus its idle rate measured before recording (``resource.getrusage``); FFmpeg's is the sum of its
processes' CPU time over the window (``/proc/<pid>/task/*/sched``).  Memory: our RSS growth over
the idle process (what recording adds), and the sums of the FFmpeg processes' RSS and PSS (PSS
splits the shared libraries between the processes, so it is the fairer sum).  Figures are CPU-seconds per
stream-minute, so they compare across stream counts.

Prints ``name=value`` lines, the last one ``ratio_vs_ffmpeg`` (ours / FFmpeg; goal <= 0.9)::

    python bench/recording.py --streams 8 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bridges.media import RecorderPool, RecorderSettings, WriterSettings
from bridges.media.events import RecordingGap, SegmentInfo, SegmentOpened
from gateway.recordings import RecordingIndex, RecordingIndexer
from gateway.store import StateStore
from sim.rtsp import RtspSource

logger = logging.getLogger(__name__)

CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024
FIRST_SEGMENT_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class PhaseResult:
    """One recorder's cost over the measurement window."""

    cpu_seconds: float
    wall_seconds: float
    rss_bytes: int
    pss_bytes: int  # ours: same as rss_bytes (growth of one process)
    written_bytes: int

    def per_stream_minute(self, streams: int) -> float:
        return self.cpu_seconds / streams / (self.wall_seconds / 60)


class OpenedCounter:
    """RecordingEvents that notes which channels have a segment open, then indexes as usual."""

    def __init__(self, indexer: RecordingIndexer) -> None:
        self._indexer = indexer
        self.opened: set[str] = set()
        self.gaps: list[RecordingGap] = []
        self.changed = asyncio.Event()

    async def segment_opened(self, event: SegmentOpened) -> None:
        self.opened.add(event.channel)
        self.changed.set()

    async def segment_closed(self, segment: SegmentInfo) -> None:
        await self._indexer.segment_closed(segment)

    async def gap_recorded(self, gap: RecordingGap) -> None:
        self.gaps.append(gap)
        await self._indexer.gap_recorded(gap)


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float:
    """CPU time of a process's live threads, to the nanosecond where the kernel tells.

    ``/proc/<pid>/stat`` counts in clock ticks (10 ms): over a 30 s window a stream-copying
    FFmpeg uses a few tens of ticks, so the scheduler's ``se.sum_exec_runtime`` (milliseconds
    with six decimals, per thread) is used when the kernel provides it.
    """
    total, found = 0.0, False
    for sched in Path(f"/proc/{pid}/task").glob("*/sched"):
        with contextlib.suppress(OSError):
            for line in sched.read_text().splitlines():
                if line.startswith("se.sum_exec_runtime"):
                    total += float(line.split(":", 1)[1]) / 1000
                    found = True
    if found and total > 0:
        return total
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_SECOND


def process_pss_bytes(pid: int | str = "self") -> int:
    """Proportional set size: shared library pages split between the processes mapping them.

    Summing RSS over 32 FFmpeg processes counts their shared libraries 32 times; PSS does not.
    """
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def process_rss_bytes(pid: int | str = "self") -> int:
    """Resident set size from /proc/<pid>/statm (second field, in pages)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES


def directory_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


async def measure_idle_rate(seconds: float) -> float:
    """CPU-seconds per second this process spends with nothing recording (the loop, the source)."""
    cpu, wall = own_cpu_seconds(), time.monotonic()
    await asyncio.sleep(seconds)
    return (own_cpu_seconds() - cpu) / (time.monotonic() - wall)


async def record_with_gateway(
    source: RtspSource, mounts: list[str], workdir: Path, args: argparse.Namespace, idle_rate: float
) -> PhaseResult:
    recordings = workdir / "gateway"
    rss_before = process_rss_bytes()
    settings = RecorderSettings(writer=WriterSettings(segment_seconds=args.segment_seconds))
    async with StateStore(workdir / "state") as store:
        events = OpenedCounter(RecordingIndexer(RecordingIndex(store, recordings)))
        async with RecorderPool(recordings, events, settings=settings) as pool:
            for mount in mounts:
                await pool.start(mount, source.url(mount))
            await wait_for(
                lambda: len(events.opened) == len(mounts), events.changed, "a first segment per stream"
            )
            await asyncio.sleep(args.warmup)
            cpu, wall, written = own_cpu_seconds(), time.monotonic(), directory_bytes(recordings)
            await asyncio.sleep(args.seconds)
            cpu, wall = own_cpu_seconds() - cpu, time.monotonic() - wall
            written = directory_bytes(recordings) - written
            rss = process_rss_bytes() - rss_before
        if events.gaps:
            logger.warning("gateway recorder reported %d gap(s): %s", len(events.gaps), events.gaps[:3])
    return PhaseResult(max(0.0, cpu - idle_rate * wall), wall, rss, rss, written)


async def wait_for(predicate: Callable[[], bool], changed: asyncio.Event, what: str) -> None:
    async with asyncio.timeout(FIRST_SEGMENT_TIMEOUT):
        while not predicate():
            changed.clear()
            await changed.wait()
    logger.info("bench: %s", what)


def ffmpeg_command(url: str, output_pattern: Path, segment_seconds: float) -> list[str]:
    return [
        "ffmpeg", "-nostdin", "-loglevel", "error",
        "-rtsp_transport", "tcp", "-i", url,
        "-map", "0", "-c", "copy",
        "-f", "segment", "-segment_time", str(segment_seconds), "-segment_format", "mp4",
        "-reset_timestamps", "1", "-strftime", "0",
        str(output_pattern),
    ]  # fmt: skip


async def record_with_ffmpeg(
    source: RtspSource, mounts: list[str], workdir: Path, args: argparse.Namespace
) -> PhaseResult:
    recordings = workdir / "ffmpeg"
    recordings.mkdir()
    processes = [
        await asyncio.create_subprocess_exec(
            *ffmpeg_command(source.url(mount), recordings / f"{mount}_%05d.mp4", args.segment_seconds),
            stdin=asyncio.subprocess.DEVNULL,
        )
        for mount in mounts
    ]
    try:
        await wait_for_files(recordings, mounts, processes)
        await asyncio.sleep(args.warmup)
        cpu = sum(process_cpu_seconds(process.pid) for process in processes)
        wall, written = time.monotonic(), directory_bytes(recordings)
        await asyncio.sleep(args.seconds)
        cpu = sum(process_cpu_seconds(process.pid) for process in processes) - cpu
        wall = time.monotonic() - wall
        written = directory_bytes(recordings) - written
        rss = sum(process_rss_bytes(process.pid) for process in processes)
        pss = sum(process_pss_bytes(process.pid) for process in processes)
    finally:
        await stop_processes(processes)
    return PhaseResult(cpu, wall, rss, pss, written)


async def wait_for_files(
    recordings: Path, mounts: list[str], processes: list[asyncio.subprocess.Process]
) -> None:
    async with asyncio.timeout(FIRST_SEGMENT_TIMEOUT):
        while not all(any(recordings.glob(f"{mount}_*.mp4")) for mount in mounts):
            if any(process.returncode is not None for process in processes):
                raise RuntimeError("an ffmpeg process exited before writing")
            await asyncio.sleep(0.2)


async def stop_processes(processes: list[asyncio.subprocess.Process]) -> None:
    """SIGINT lets ffmpeg finish its segment; kill whatever does not exit in time."""
    for process in processes:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def run_bench(args: argparse.Namespace) -> dict[str, object]:
    mounts = [f"cam{index + 1}" for index in range(args.streams)]
    source = RtspSource(
        mounts,
        cache_dir=args.cache_dir,
        width=args.width,
        height=args.height,
        fps=args.fps,
        audio=args.audio,
        ready_timeout=300.0,
    )
    workdir = Path(tempfile.mkdtemp(prefix="recording-bench-"))
    try:
        async with source:
            idle_rate = await measure_idle_rate(args.idle_seconds)
            ours = await record_with_gateway(source, mounts, workdir, args, idle_rate)
            ffmpeg = await record_with_ffmpeg(source, mounts, workdir, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ours_rate, ffmpeg_rate = ours.per_stream_minute(args.streams), ffmpeg.per_stream_minute(args.streams)
    return {
        "streams": args.streams,
        "width": args.width,
        "height": args.height,
        "fps": args.fps,
        "audio": int(args.audio),
        "segment_seconds": args.segment_seconds,
        "window_seconds": round(ours.wall_seconds, 1),
        "idle_cpu_rate": round(idle_rate, 4),
        "ours_cpu_seconds": round(ours.cpu_seconds, 2),
        "ours_cpu_s_per_stream_minute": round(ours_rate, 3),
        "ours_rss_mib": round(ours.rss_bytes / MIB, 1),
        "ours_written_mbit_per_second": round(ours.written_bytes * 8 / ours.wall_seconds / 1e6, 2),
        "ffmpeg_cpu_seconds": round(ffmpeg.cpu_seconds, 2),
        "ffmpeg_cpu_s_per_stream_minute": round(ffmpeg_rate, 3),
        "ffmpeg_rss_mib": round(ffmpeg.rss_bytes / MIB, 1),
        "ffmpeg_pss_mib": round(ffmpeg.pss_bytes / MIB, 1),
        "ffmpeg_written_mbit_per_second": round(ffmpeg.written_bytes * 8 / ffmpeg.wall_seconds / 1e6, 2),
        "ratio_vs_ffmpeg": round(ours_rate / ffmpeg_rate, 3) if ffmpeg_rate else "inf",
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window per recorder")
    parser.add_argument("--warmup", type=float, default=3.0, help="settling time before measuring")
    parser.add_argument("--idle-seconds", type=float, default=3.0, help="idle baseline measurement")
    parser.add_argument("--segment-seconds", type=float, default=60.0)
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
    args = parser.parse_args()
    if args.streams < 1 or args.seconds <= 0:
        parser.error("--streams and --seconds must be positive")
    return args


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    results = asyncio.run(run_bench(parse_args()))
    for name, value in results.items():
        print(f"{name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
