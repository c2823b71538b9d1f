"""systemd's notify protocol: READY, STATUS, STOPPING and the watchdog, without libsystemd.

The service is ``Type=notify`` with ``WatchdogSec=``: the daemon says READY=1 once config, store
and API are up, and pings WATCHDOG=1 from a task on its event loop at half the watchdog
interval. A blocked loop stops the pings, and systemd restarts the service; that is the point of
pinging from the loop rather than from a thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

_LOGGER = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends notify messages to ``$NOTIFY_SOCKET``; does nothing when not run by systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket: socket.socket | None = None
        if self._address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)
        self.watchdog_interval = _watchdog_interval(environ)

    @property
    def enabled(self) -> bool:
        """Whether a notify socket was given."""
        return self._socket is not None

    def notify(self, **fields: str | int) -> None:
        """Send ``KEY=value`` lines, e.g. ``notify(READY=1, STATUS="...")``; errors are logged once each."""
        if self._socket is None:
            return
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode("utf-8")
        try:
            self._socket.sendto(message, self._address)
        except OSError as err:
            _LOGGER.warning("systemd notify failed: %s", err)

    async def watchdog(self) -> None:
        """Ping WATCHDOG=1 at half the interval systemd asked for, until cancelled."""
        if self.watchdog_interval is None:
            return
        while True:
            self.notify(WATCHDOG=1)
            await asyncio.sleep(self.watchdog_interval / 2)

    def close(self) -> None:
        """Close the socket; idempotent."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Seconds from ``$WATCHDOG_USEC`` when it is meant for this process."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000
