"""``python -m sim.cloud``: run the cloud emulator until SIGTERM/SIGINT.

Prints one JSON line on stdout once listening (``--listen 127.0.0.1:0`` picks a free port):
``{"event": "ready", "endpoint": "127.0.0.1:P", "relay": "ws://127.0.0.1:P/relay"}``; logs to
stderr, exits 0 on the first signal after a clean shutdown; a second signal forces an immediate
exit. The secret key may come from the ``SIM_CLOUD_SECRET_KEY`` environment variable instead of
the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence

from .emulator import CloudEmulator
from .ratelimit import DEFAULT_PER_SECOND
from .relay import DEFAULT_DEADLINE_SECONDS, RELAY_PATH

logger = logging.getLogger("sim.cloud")

SECRET_KEY_ENV = "SIM_CLOUD_SECRET_KEY"
EXIT_FORCED = 130


def _listen_address(value: str) -> tuple[str, int]:
    host, separator, port = value.rpartition(":")
    if not separator or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sim.cloud", description="Emulated Tencent Cloud IVC (iss) API."
    )
    parser.add_argument(
        "--listen", type=_listen_address, default=("127.0.0.1", 0), help="HOST:PORT (loopback only)"
    )
    parser.add_argument(
        "--state-dir", required=True, help="directory of the SQLite state (created if missing)"
    )
    parser.add_argument("--secret-id", required=True, help="the SecretId clients sign with")
    parser.add_argument(
        "--secret-key", default=os.environ.get(SECRET_KEY_ENV), help=f"or set {SECRET_KEY_ENV}"
    )
    parser.add_argument(
        "--rate-limit", type=int, default=DEFAULT_PER_SECOND, help="requests/s per action+SecretId"
    )
    parser.add_argument("--no-seed", action="store_true", help="do not create the seed organizations/gateway")
    parser.add_argument("--no-relay", action="store_true", help="do not serve the gateway relay WebSocket")
    parser.add_argument("--relay-path", default=RELAY_PATH, help="path of the gateway relay WebSocket")
    parser.add_argument(
        "--relay-deadline",
        type=float,
        default=DEFAULT_DEADLINE_SECONDS,
        help="seconds a relayed command waits for the gateway's answer",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    if not args.secret_key:
        parser.error(f"--secret-key (or {SECRET_KEY_ENV}) is required")
    return args


async def serve(args: argparse.Namespace) -> int:
    """Start, announce readiness, wait for a signal, shut down."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            logger.warning("second signal %s: exiting at once", signal.Signals(signum).name)
            os._exit(EXIT_FORCED)
        logger.info("signal %s: shutting down", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    host, port = args.listen
    emulator = CloudEmulator(
        args.state_dir,
        args.secret_id,
        args.secret_key,
        host=host,
        port=port,
        rate_limit=args.rate_limit,
        seed=not args.no_seed,
        relay=not args.no_relay,
        relay_path=args.relay_path,
        relay_deadline=args.relay_deadline,
    )
    async with emulator:
        print(json.dumps(emulator.describe()), flush=True)
        await stop.wait()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return asyncio.run(serve(args))
    except (OSError, ValueError) as error:
        logger.error("cloud emulator failed to start: %s", error)
        return 1


if __name__ == "__main__":
    sys.exit(main())
