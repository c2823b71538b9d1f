"""A recording process for the crash tests: the daemon's recording path, nothing else.

Runs a ``RecorderPool`` whose closed segments and gaps go into a ``RecordingIndex`` on a real
``StateStore``, as the daemon wires them, and reports each event as a JSON line on stdout so the
test knows when to strike.  SIGTERM stops it cleanly (segments closed, index committed, exit 0);
the test's SIGKILL does not.

    python recorder_child.py --recordings DIR --state DIR --segment-seconds 1 cam1=rtsp://... ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from bridges.media import RecorderPool, RecorderSettings, WriterSettings
from bridges.media.events import RecordingGap, SegmentInfo, SegmentOpened
from gateway.recordings import RecordingIndex, RecordingIndexer
from gateway.store import StateStore


class ReportingIndexer(RecordingIndexer):
    """Indexes as the daemon does, then tells the parent (after the index write, for closes)."""

    async def segment_opened(self, event: SegmentOpened) -> None:
        report("opened", event.channel, str(event.path), event.start)

    async def segment_closed(self, segment: SegmentInfo) -> None:
        await super().segment_closed(segment)
        report("closed", segment.channel, str(segment.path), segment.start, segment.end)

    async def gap_recorded(self, gap: RecordingGap) -> None:
        await super().gap_recorded(gap)
        report("gap", gap.channel, gap.reason, gap.start, gap.end)


def report(event: str, channel: str, detail: str, *times: float) -> None:
    sys.stdout.write(
        json.dumps({"event": event, "channel": channel, "detail": detail, "times": times}) + "\n"
    )
    sys.stdout.flush()


async def record(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    settings = RecorderSettings(writer=WriterSettings(segment_seconds=args.segment_seconds), backoff=(0.2,))
    async with StateStore(args.state) as store:
        index = RecordingIndex(store, args.recordings)
        async with RecorderPool(args.recordings, ReportingIndexer(index), settings=settings) as pool:
            for channel, url in args.channels:
                await pool.start(channel, url)
            report("started", "", "")
            await stop.wait()
    report("stopped", "", "")


def channel_and_url(text: str) -> tuple[str, str]:
    channel, _, url = text.partition("=")
    if not channel or not url:
        raise argparse.ArgumentTypeError("expected channel=url")
    return channel, url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=Path, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--segment-seconds", type=float, default=1.0)
    parser.add_argument("channels", type=channel_and_url, nargs="+")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(record(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
