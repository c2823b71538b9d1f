"""The ``ivc-gateway`` command: ``run``, ``check-config`` and the technician tools."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from . import __version__
from .config import EX_CONFIG, Config, ConfigError, config_path_from, load_config
from .logs import configure_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivc-gateway", description="Site gateway for Tencent Cloud IVC.")
    parser.add_argument("--version", action="version", version=f"ivc-gateway {__version__}")
    parser.add_argument("--config", help="config file (default: $IVC_GATEWAY_CONFIG or /etc/ivc-gateway/gateway.toml)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="run the gateway daemon")
    check = commands.add_parser("check-config", help="validate a config file; exit 78 if it is invalid")
    check.add_argument("path", nargs="?", help="the file to check (default: the --config path)")
    discover = commands.add_parser("discover", help="find and probe the site's cameras once, print what answered")
    discover.add_argument("--json", action="store_true", help="print JSON instead of a table")
    commands.add_parser("doctor", help="check clock, disk, cloud and cameras; say how to fix what fails")
    status = commands.add_parser("status", help="what the running gateway sees: devices, channels, recording, cloud")
    status.add_argument("--json", action="store_true", help="print the daemon's status document")
    install = commands.add_parser("install-service", help="install the systemd unit, user and folders")
    install.add_argument("--root", default="/", help="install into this tree instead of / (packaging, tests)")
    install.add_argument("--from", dest="checkout", help="the source checkout holding systemd/ and config/")
    return parser


def _load_or_report(path_argument: str | None) -> Config | int:
    path = config_path_from(path_argument)
    try:
        config = load_config(path)
    except ConfigError as err:
        for line in err.problems:
            print(line, file=sys.stderr)
        return EX_CONFIG
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        loaded = _load_or_report(args.path or args.config)
        if isinstance(loaded, int):
            return loaded
        print(f"{loaded.path}: OK ({'standalone' if loaded.standalone else 'cloud'} mode, {len(loaded.cameras)} static cameras)")
        return 0
    if args.command == "install-service":
        from pathlib import Path

        from .service_install import CHECKOUT, current_executable, install

        checkout = Path(args.checkout) if args.checkout else CHECKOUT
        for line in install(Path(args.root), current_executable(), checkout):
            print(line)
        return 0
    loaded = _load_or_report(args.config)
    if isinstance(loaded, int):
        return loaded
    if args.command == "status":
        from .technician import DaemonUnreachable, fetch_status, render_status

        try:
            document = fetch_status(loaded)
        except DaemonUnreachable as err:
            print(err, file=sys.stderr)
            return 1
        print(json.dumps(document, ensure_ascii=False, indent=2) if args.json else render_status(document))
        return 0
    if args.command == "doctor":
        configure_logging("error")
        from .doctor import Verdict, run_checks

        results = asyncio.run(run_checks(loaded))
        for result in results:
            print(result.render())
        failed = sum(1 for result in results if result.verdict is Verdict.FAIL)
        print(f"{len(results)} checks, {failed} failed")
        return 1 if failed else 0
    if args.command == "discover":
        configure_logging("warning")
        from .technician import discover

        print(asyncio.run(discover(loaded, as_json=args.json)))
        return 0
    configure_logging(loaded.gateway.log_level)
    from .daemon import Gateway

    asyncio.run(Gateway(loaded).run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
