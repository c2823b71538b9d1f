"""The exceptions every bridge raises, so the dispatch layer maps each type to one iss error code.

A bridge never lets a library exception (aiohttp, zeep, PyAV) escape: it translates it into one
of these at its boundary. The dispatch layer then needs one table keyed by type and nobody has to
read an exception's message to decide what happened; messages are for logs only.

Every error carries the device it concerns (``host`` and, when known, the gateway's ``device``
identity) because a log line about a flaky camera is useless without saying which one.
"""

from __future__ import annotations


class DeviceError(Exception):
    """Something went wrong talking to one device; the subclass says what."""

    def __init__(self, message: str, *, host: str, device: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.host = host
        self.device = device

    @property
    def label(self) -> str:
        """The device as logs name it: its identity when known, else its host."""
        return self.device or self.host

    def __str__(self) -> str:
        return f"{self.label}: {self.message}"


class DeviceUnreachable(DeviceError):
    """The transport failed: connection refused or reset, DNS, TLS, or no connection in time.

    The device may come back; callers treat it as "offline, retry later".
    """


class DeviceAuthFailed(DeviceError):
    """The device refused our credentials (WS-Security fault, HTTP 401/403).

    Retrying with the same credentials cannot help; the operator has to fix the configuration.
    """


class DeviceUnsupported(DeviceError):
    """The device does not offer the operation or feature (no PTZ, no snapshot, no Stop...)."""


class DeviceTimeout(DeviceError):
    """The device accepted the connection but did not answer within the operation's time limit."""


class DeviceBadResponse(DeviceError):
    """The device answered with something we cannot use: malformed XML, invalid UTF-8, a body
    that does not match the schema, or bytes that are not the promised JPEG."""


class DeviceBusy(DeviceError):
    """The device (or our queue of commands for it) cannot take the command now; try later."""


class DeviceRequestRejected(DeviceError):
    """The request cannot be carried out as given: the device refused an argument (unknown preset
    or profile token, position out of range, full preset list) or we refused it before sending
    (unknown channel, value outside the generic space)."""
