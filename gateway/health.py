"""Is each device and channel up? Checked on a timer, debounced, with bounded cost per device.

Every check round looks at every device of the inventory, reachable or not (a camera that went
away has no session, and its coming back must be noticed without waiting for discovery):

* the **device** is reachable when its ONVIF device service answers an unauthenticated
  ``GetSystemDateAndTime`` (:func:`bridges.liveness.onvif_answers`);
* a **channel** is up when its device is reachable and its stream answers: the recorder wrote
  bytes of it recently (:class:`StreamActivity`), else an RTSP ``DESCRIBE`` says ``200``.

One lost packet must not make the cloud flap: a :class:`LivenessTracker` goes offline only after
``offline_after`` consecutive missed checks, and online again on the first success. A state that
changed is reported once per round to ``on_change``.

A slow or dead device never delays the others: every probe has its own deadline, probes run
concurrently (bounded by a semaphore, so a site of hundreds of cameras is not hit all at once),
and a device's streams are probed only once its ONVIF answered, at most a few at a time.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, Self

import aiohttp

from bridges.liveness import ProbeResult, onvif_answers, rtsp_stream_answers
from bridges.onvif.models import DeviceAddress

from .inventory import ChannelRecord, DeviceRecord

_LOGGER = logging.getLogger(__name__)

DEFAULT_CONCURRENCY: Final = 64
STREAMS_PER_DEVICE: Final = 4
"""An NVR's RTSP server is probed for at most this many channels at once (cheap firmwares)."""
MAX_CHECK_TIMEOUT: Final = 5.0


class Liveness(enum.StrEnum):
    """What the gateway believes of a device or channel."""

    UNKNOWN = "unknown"
    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(slots=True)
class LivenessTracker:
    """Debounces check results: offline after ``offline_after`` misses in a row, online at once."""

    offline_after: int
    state: Liveness = Liveness.UNKNOWN
    misses: int = 0
    detail: str = ""

    def observe(self, result: ProbeResult) -> bool:
        """Count one check; True when the settled state changed."""
        self.detail = result.detail
        if result.ok:
            self.misses = 0
            changed = self.state is not Liveness.ONLINE
            self.state = Liveness.ONLINE
            return changed
        self.misses += 1
        if self.misses >= self.offline_after and self.state is not Liveness.OFFLINE:
            self.state = Liveness.OFFLINE
            return True
        return False


class StreamActivity(Protocol):
    """Who knows that a stream flows without probing it (the recorder's counters)."""

    def last_write(self, channel: str) -> float | None:
        """Monotonic time bytes of ``channel`` (its ``channel_id``) were last written, if ever."""


OnvifProbe = Callable[[DeviceAddress, float], Awaitable[ProbeResult]]
StreamProbe = Callable[[str, float, str, str], Awaitable[ProbeResult]]
"""``(uri, timeout, username, password) -> ProbeResult``."""


@dataclass(frozen=True, slots=True)
class DeviceTarget:
    """Where and how to check one device."""

    address: DeviceAddress
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class HealthChange:
    """A device whose own state or one of whose channels' states settled differently this round."""

    identity: str
    device: Liveness
    went_offline: bool


@dataclass(frozen=True, slots=True)
class HealthCounts:
    """Devices and channels by state (channels marked removed are not counted)."""

    devices: dict[Liveness, int] = field(default_factory=dict)
    channels: dict[Liveness, int] = field(default_factory=dict)


class HealthMonitor:
    """Runs check rounds and keeps the debounced state of every device and channel.

    Use as an async context manager: it owns the HTTP session its ONVIF probes use (without
    keep-alive: cameras drop idle connections and a probe must not fail on a stale one).
    ``target_for`` says where a device is reached and with which credentials.
    """

    def __init__(
        self,
        *,
        offline_after: int,
        check_timeout: float,
        target_for: Callable[[DeviceRecord], DeviceTarget],
        activity: StreamActivity | None = None,
        activity_window: float = 0.0,
        concurrency: int = DEFAULT_CONCURRENCY,
        onvif_probe: OnvifProbe | None = None,
        stream_probe: StreamProbe | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``activity_window``: recorder bytes younger than this make a stream probe unnecessary."""
        self._offline_after = offline_after
        self._timeout = check_timeout
        self._target_for = target_for
        self._activity = activity
        self._activity_window = activity_window or 2 * check_timeout
        self._device_limit = asyncio.Semaphore(concurrency)
        self._stream_limit = asyncio.Semaphore(concurrency)
        self._onvif_probe = onvif_probe
        self._stream_probe = stream_probe or _rtsp_probe
        self._clock = clock
        self._http: aiohttp.ClientSession | None = None
        self._devices: dict[str, LivenessTracker] = {}
        self._channels: dict[tuple[str, str], LivenessTracker] = {}
        self._channel_sets: dict[str, frozenset[str]] = {}
        self.rounds = 0

    async def __aenter__(self) -> Self:
        if self._onvif_probe is None:
            connector = aiohttp.TCPConnector(force_close=True, limit=0)
            self._http = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the probes' HTTP session; idempotent."""
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    # -- state -----------------------------------------------------------------------------

    def device_state(self, identity: str) -> Liveness:
        """The debounced state of a device."""
        tracker = self._devices.get(identity)
        return tracker.state if tracker else Liveness.UNKNOWN

    def channel_state(self, identity: str, source_token: str) -> Liveness:
        """The debounced state of a channel."""
        tracker = self._channels.get((identity, source_token))
        return tracker.state if tracker else Liveness.UNKNOWN

    def channel_streaming(self, channel: ChannelRecord) -> bool:
        """Whether the recorder wrote bytes of ``channel`` recently (the stream is being pulled)."""
        if self._activity is None:
            return False
        last = self._activity.last_write(channel.channel_id)
        return last is not None and self._clock() - last <= self._activity_window

    @property
    def knows_streaming(self) -> bool:
        """Whether a recorder reports activity (else "streaming" is unknown, not "no")."""
        return self._activity is not None

    def counts(self, records: Iterable[DeviceRecord]) -> HealthCounts:
        """Devices and live channels of ``records`` by state."""
        devices = dict.fromkeys(Liveness, 0)
        channels = dict.fromkeys(Liveness, 0)
        for record in records:
            devices[self.device_state(record.identity)] += 1
            for channel in record.channels:
                if channel.state != "removed":
                    channels[self.channel_state(record.identity, channel.source_token)] += 1
        return HealthCounts(devices, channels)

    # -- rounds ----------------------------------------------------------------------------

    async def check(self, records: Sequence[DeviceRecord]) -> list[HealthChange]:
        """Check every device of ``records`` once; return those whose settled state changed."""
        self._forget_missing(records)
        changes = await asyncio.gather(*(self._check_device(record) for record in records))
        self.rounds += 1
        return [change for change in changes if change is not None]

    def _forget_missing(self, records: Sequence[DeviceRecord]) -> None:
        """Drop trackers of devices and channels that are gone (removed channels included)."""
        live = {record.identity for record in records}
        channels = {(r.identity, c.source_token) for r in records for c in r.channels if c.state != "removed"}
        for identity in [key for key in self._devices if key not in live]:
            del self._devices[identity]
            self._channel_sets.pop(identity, None)
        for key in [key for key in self._channels if key not in channels]:
            del self._channels[key]

    async def _check_device(self, record: DeviceRecord) -> HealthChange | None:
        target = self._target_for(record)
        async with self._device_limit:
            reachable = await self._ping(target.address)
        tracker = self._devices.setdefault(record.identity, LivenessTracker(self._offline_after))
        was = tracker.state
        changed = tracker.observe(reachable)
        if changed:
            self._log_change(record.identity, "", was, tracker)
        channels = [channel for channel in record.channels if channel.state != "removed"]
        # A channel gone from (or back on) the device changes what the platform must be told.
        tokens = frozenset(channel.source_token for channel in channels)
        if self._channel_sets.get(record.identity, tokens) != tokens:
            changed = True
        self._channel_sets[record.identity] = tokens
        if reachable.ok:
            per_device = asyncio.Semaphore(STREAMS_PER_DEVICE)
            results = await asyncio.gather(*(self._check_stream(channel, target, per_device) for channel in channels))
        else:
            results = [ProbeResult(False, f"device: {reachable.detail}")] * len(channels)
        for channel, result in zip(channels, results, strict=True):
            channel_tracker = self._channels.setdefault(
                (record.identity, channel.source_token), LivenessTracker(self._offline_after)
            )
            channel_was = channel_tracker.state
            if channel_tracker.observe(result):
                changed = True
                self._log_change(record.identity, channel.source_token, channel_was, channel_tracker)
        if not changed:
            return None
        return HealthChange(
            record.identity, tracker.state, went_offline=was is not Liveness.OFFLINE and tracker.state is Liveness.OFFLINE
        )

    async def _ping(self, address: DeviceAddress) -> ProbeResult:
        if self._onvif_probe is not None:
            return await self._onvif_probe(address, self._timeout)
        assert self._http is not None, "HealthMonitor used outside its context"
        return await onvif_answers(self._http, address, self._timeout)

    async def _check_stream(self, channel: ChannelRecord, target: DeviceTarget, per_device: asyncio.Semaphore) -> ProbeResult:
        if self.channel_streaming(channel):
            return ProbeResult(True, "recorder writes")
        if not channel.main_uri:
            return ProbeResult(False, "no stream URI")
        async with per_device, self._stream_limit:
            return await self._stream_probe(channel.main_uri, self._timeout, target.username, target.password)

    @staticmethod
    def _log_change(identity: str, token: str, was: Liveness, tracker: LivenessTracker) -> None:
        what = f"channel {token}" if token else "device"
        level = logging.WARNING if tracker.state is Liveness.OFFLINE else logging.INFO
        _LOGGER.log(
            level, "%s %s: %s -> %s (%s)", what, identity, was.value, tracker.state.value, tracker.detail,
            extra={"device": identity, "channel": token or "-"},
        )


def check_timeout_for(interval: float) -> float:
    """Each probe's deadline: half the check interval, at most :data:`MAX_CHECK_TIMEOUT` seconds."""
    return max(0.2, min(MAX_CHECK_TIMEOUT, interval / 2))


async def _rtsp_probe(uri: str, timeout: float, username: str, password: str) -> ProbeResult:
    return await rtsp_stream_answers(uri, timeout, username=username, password=password)
