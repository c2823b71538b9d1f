"""The site's devices at run time: one CameraSession each, discovery rounds, cloud sync.

A round takes the candidates discovery found, probes each with its own :class:`CameraSession`
(a bounded number at once), records what it learned, and lets the registrar make the cloud
agree. A device that fails is isolated: its fault is recorded, its session closed, and its
address backs off for a growing number of rounds, so one broken camera never slows the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bridges.errors import DeviceAuthFailed, DeviceBadResponse, DeviceError, DeviceUnreachable, DeviceUnsupported
from bridges.onvif.models import DeviceAddress, DeviceDescription, DeviceFault, Discovered
from bridges.onvif.session import CameraSession

from .config import CameraEntry, Config
from .inventory import ChannelRecord, DeviceRecord, Inventory
from .iss.errors import IssError, IssTransportError
from .registration import Registrar, RegistrationPending

_LOGGER = logging.getLogger(__name__)

MAX_SKIPPED_ROUNDS = 8


class CandidateSource(Protocol):
    """What discovery offers: one round of candidates."""

    async def find(self) -> list[Discovered]: ...


SessionFactory = Callable[[DeviceAddress, str, str, CameraEntry | None], CameraSession]


def default_session_factory(address: DeviceAddress, username: str, password: str, entry: CameraEntry | None) -> CameraSession:
    """A real ONVIF session with the entry's TLS and identity settings."""
    return CameraSession(
        address,
        username,
        password,
        verify_tls=entry.verify_tls if entry else True,
        configured_id=entry.id if entry else "",
    )


_FAULTS: dict[type[DeviceError], DeviceFault] = {
    DeviceAuthFailed: DeviceFault.AUTH_FAILED,
    DeviceBadResponse: DeviceFault.BAD_RESPONSE,
    DeviceUnsupported: DeviceFault.UNSUPPORTED,
    DeviceUnreachable: DeviceFault.UNREACHABLE,
}


def fault_of(error: DeviceError) -> DeviceFault:
    """The isolation reason for a bridge error (timeouts count as unreachable)."""
    for kind, fault in _FAULTS.items():
        if isinstance(error, kind):
            return fault
    return DeviceFault.UNREACHABLE


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """What probing one candidate gave: a description, or the fault that isolated it."""

    candidate: Discovered
    description: DeviceDescription | None = None
    fault: DeviceFault = DeviceFault.NONE
    detail: str = ""
    record: DeviceRecord | None = None
    pending: bool = False

    @property
    def ok(self) -> bool:
        """Probed and understood."""
        return self.description is not None


@dataclass(slots=True)
class _Backoff:
    failures: int = 0
    skip: int = 0


@dataclass(slots=True)
class _Live:
    session: CameraSession
    address: DeviceAddress
    username: str
    password: str
    channels: dict[str, ChannelRecord] = field(default_factory=dict)


class DeviceManager:
    """Owns the sessions of every device and runs discovery rounds."""

    def __init__(
        self,
        config: Config,
        finder: CandidateSource,
        *,
        inventory: Inventory | None = None,
        registrar: Registrar | None = None,
        session_factory: SessionFactory = default_session_factory,
        concurrency: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._finder = finder
        self._inventory = inventory
        self._registrar = registrar
        self._session_factory = session_factory
        self._limit = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._live: dict[str, _Live] = {}
        self._by_address: dict[tuple[str, int], str] = {}
        self._backoff: dict[tuple[str, int], _Backoff] = {}
        self._channels: dict[str, tuple[str, ChannelRecord]] = {}
        self._round_lock = asyncio.Lock()
        self.rounds = 0

    # -- what other components ask -------------------------------------------------------------

    def session(self, identity: str) -> CameraSession | None:
        """The open session of a device, if it is reachable now."""
        live = self._live.get(identity)
        return live.session if live else None

    def channel(self, channel_id: str) -> tuple[str, ChannelRecord] | None:
        """``(device identity, channel)`` for a cloud or local ChannelId, from memory."""
        return self._channels.get(channel_id)

    def password_for(self, identity: str) -> str:
        """The password that worked for a device (what the cloud is told)."""
        live = self._live.get(identity)
        return live.password if live else ""

    @property
    def identities(self) -> list[str]:
        """Devices with an open session."""
        return sorted(self._live)

    # -- rounds --------------------------------------------------------------------------------

    async def run_round(self) -> list[ProbeOutcome]:
        """Find candidates, probe them, sync what was learned; rounds never overlap."""
        async with self._round_lock:
            candidates = await self._finder.find()
            due = [c for c in candidates if self._due(c.address)]
            outcomes = await asyncio.gather(*(self._probe_and_sync(c) for c in due))
            self.rounds += 1
            await self._refresh_channel_index()
            ok = sum(1 for outcome in outcomes if outcome.ok)
            _LOGGER.info(
                "discovery round %d: %d candidates, %d probed, %d ok", self.rounds, len(candidates), len(due), ok
            )
            return list(outcomes)

    def _due(self, address: DeviceAddress) -> bool:
        backoff = self._backoff.get((address.host, address.port))
        if backoff is None or backoff.skip == 0:
            return True
        backoff.skip -= 1
        return False

    async def _probe_and_sync(self, candidate: Discovered) -> ProbeOutcome:
        async with self._limit:
            outcome = await self.probe(candidate)
        if outcome.description is None:
            await self._isolate(outcome)
            return outcome
        return await self._sync(outcome)

    async def probe(self, candidate: Discovered) -> ProbeOutcome:
        """Open (or reuse) the candidate's session and describe the device."""
        address = candidate.address
        key = (address.host, address.port)
        entry = self._static_entry(address)
        username = entry.username if entry else self._config.discovery.username
        password = entry.password if entry else self._config.discovery.password
        identity = self._by_address.get(key)
        live = self._live.get(identity) if identity else None
        session = live.session if live and live.address == address else None
        fresh = session is None
        if session is None:
            session = self._session_factory(address, username, password, entry)
        try:
            if fresh:
                await session.open()
            description = await session.describe(refresh=not fresh)
        except DeviceError as err:
            await session.close()
            if identity and identity in self._live and self._live[identity].session is session:
                del self._live[identity]
            return ProbeOutcome(candidate, fault=fault_of(err), detail=str(err))
        await self._adopt(description, session, address, username, password)
        return ProbeOutcome(candidate, description)

    async def _adopt(self, description: DeviceDescription, session: CameraSession, address: DeviceAddress, username: str, password: str) -> None:
        identity = description.identity
        previous = self._live.get(identity)
        if previous is not None and previous.session is not session:
            # The same device answered at a new address: the old session is stale.
            self._by_address.pop((previous.address.host, previous.address.port), None)
            await previous.session.close()
            _LOGGER.info("device moved", extra={"device": identity, "host": address.host})
        self._live[identity] = _Live(session, address, username, password)
        self._by_address[(address.host, address.port)] = identity
        self._backoff.pop((address.host, address.port), None)

    async def _isolate(self, outcome: ProbeOutcome) -> None:
        address = outcome.candidate.address
        key = (address.host, address.port)
        backoff = self._backoff.setdefault(key, _Backoff())
        backoff.failures += 1
        backoff.skip = min(MAX_SKIPPED_ROUNDS, 2 ** (backoff.failures - 1) - 1)
        identity = self._by_address.get(key)
        _LOGGER.warning(
            "device isolated: %s (%s)", outcome.fault.value, outcome.detail,
            extra={"host": address.host, "port": address.port, "device": identity or "-"},
        )
        if identity and self._inventory is not None:
            await self._inventory.set_fault(identity, outcome.fault.value, "offline")

    async def _sync(self, outcome: ProbeOutcome) -> ProbeOutcome:
        description = outcome.description
        assert description is not None
        if self._registrar is None:
            return outcome
        entry = self._static_entry(description.address)
        name = entry.name if entry and entry.name else description.display_name
        live = self._live[description.identity]
        try:
            record = await self._registrar.sync(description, name=name, username=live.username)
            record = await self._registrar.sync_channels(record)
        except RegistrationPending as err:
            _LOGGER.info("cloud sync pending: %s", err, extra={"device": description.identity})
        except (IssError, IssTransportError) as err:
            _LOGGER.warning("cloud sync failed: %s", err, extra={"device": description.identity})
        else:
            return ProbeOutcome(outcome.candidate, description, record=record)
        record = await self._inventory.get(description.identity) if self._inventory else None
        return ProbeOutcome(outcome.candidate, description, record=record, pending=True)

    async def _refresh_channel_index(self) -> None:
        if self._inventory is None:
            return
        index: dict[str, tuple[str, ChannelRecord]] = {}
        for record in await self._inventory.all():
            for channel in record.channels:
                index[channel.channel_id] = (record.identity, channel)
        self._channels = index

    def _static_entry(self, address: DeviceAddress) -> CameraEntry | None:
        for entry in self._config.cameras:
            if entry.host == address.host and entry.port == address.port:
                return entry
        return None

    async def close(self) -> None:
        """Close every session (after the last round finished)."""
        async with self._round_lock:
            sessions = [live.session for live in self._live.values()]
            self._live.clear()
            self._by_address.clear()
            await asyncio.gather(*(session.close() for session in sessions), return_exceptions=True)
