"""Benchmark: how long the simulated site takes from start to every device answering.

Starts ``sim.site.SimulatedSite`` twice in one run: once with an empty clip cache (the first run
on a machine pays for encoding) and once warm. Target: ready in at most 10 s for 5 devices.
Prints ``name=value`` lines::

    python bench/site_startup.py --cameras 4 --nvrs 1 --nvr-channels 4
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from sim.site import SimulatedSite


async def _start_once(state_dir: Path, args: argparse.Namespace) -> float:
    started = time.monotonic()
    async with SimulatedSite(
        state_dir=state_dir, cameras=args.cameras, nvrs=args.nvrs, nvr_channels=args.nvr_channels,
        host="127.0.77.0", width=args.width, height=args.height,
    ):
        return time.monotonic() - started


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="site-bench-") as workdir:
        cold = await _start_once(Path(workdir), args)
        warm = await _start_once(Path(workdir), args)
    print(f"devices={args.cameras + args.nvrs}")
    print(f"channels={args.cameras + args.nvrs * args.nvr_channels}")
    print(f"startup_cold_seconds={cold:.2f}")
    print(f"startup_warm_seconds={warm:.2f}")
    print(f"goal_seconds=10 met={'yes' if max(cold, warm) <= 10 else 'no'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--nvrs", type=int, default=1)
    parser.add_argument("--nvr-channels", type=int, default=4)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
