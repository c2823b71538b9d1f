"""Log set-up: one event per line on stderr (journald adds the time), extras as ``key=value``.

Fields passed with ``extra={...}`` are appended so that ``journalctl -u ivc-gateway | grep
camera=`` works. Values that look like secrets never get here: callers log ids, not keys.
"""

from __future__ import annotations

import logging
import sys
from typing import Final

_STANDARD: Final = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    """``LEVEL logger: message key=value ...``; the traceback, if any, follows on its own lines."""

    def __init__(self, with_time: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s" if with_time else "%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        if not extras:
            return text
        head, sep, tail = text.partition("\n")
        fields = " ".join(f"{key}={value}" for key, value in extras.items())
        return f"{head} {fields}{sep}{tail}"


def configure_logging(level: str = "info", *, with_time: bool | None = None) -> None:
    """Send the root logger to stderr; timestamps only when not under journald."""
    if with_time is None:
        with_time = not _under_journald()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter(with_time))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party libraries are chatty at INFO/DEBUG about things a technician can't act on.
    # wsdiscovery logs under the bare names "daemon", "threading" and "util".
    for noisy in ("zeep", "urllib3", "httpx", "apscheduler", "aiohttp.access", "daemon", "threading", "util"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _under_journald() -> bool:
    import os

    return bool(os.environ.get("JOURNAL_STREAM"))
