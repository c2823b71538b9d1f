"""A whole simulated site: RTSP streams, ONVIF cameras and NVRs, WS-Discovery, on loopback.

``python -m sim.site --cameras 4 --nvrs 1 --nvr-channels 4 --host 127.0.0.1 --state-dir DIR``
prints one JSON line per device once every device answers (then ``{"event": "ready"}``), and
stops on SIGTERM with every child process gone. Tests and the demo use :class:`SimulatedSite`.

Each device gets its own address in 127.0.0.0/8 (Linux routes the whole block to ``lo``), so a
unicast scan of a CIDR finds them one by one and a device can "move" to another address, as
real cameras do when DHCP hands out a new lease.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import secrets
import signal
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self

from sim.onvif import ChannelDescription, DeviceDescription, DeviceKind, OnvifDeviceServer, Quirk, Resolution
from sim.rtsp import RtspSource
from sim.wsdiscovery_responder import DiscoverableDevice, WsDiscoveryResponder

_LOGGER = logging.getLogger(__name__)

MANUFACTURER = "SimVision"
CAMERA_MODEL = "SV-IPC-200"
NVR_MODEL = "SV-NVR-16"
FIRST_HOST_OFFSET = 10


@dataclass(frozen=True, slots=True)
class SiteChannel:
    """One channel as a test or the demo sees it."""

    token: str
    mount: str
    main: str
    sub: str


@dataclass(frozen=True, slots=True)
class SiteDevice:
    """One simulated device: what a technician would read off its label and web page."""

    name: str
    kind: DeviceKind
    mac: str
    serial: str
    host: str
    port: int
    xaddr: str
    username: str
    password: str
    channels: tuple[SiteChannel, ...]
    quirks: frozenset[Quirk] = frozenset()

    @property
    def identity(self) -> str:
        """The identity the gateway should derive (MAC of the first interface)."""
        return f"mac:{self.mac.lower()}"

    def to_json(self) -> dict[str, Any]:
        """The JSON line ``python -m sim.site`` prints."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "identity": self.identity,
            "mac": self.mac,
            "serial": self.serial,
            "host": self.host,
            "port": self.port,
            "xaddr": self.xaddr,
            "username": self.username,
            "password": self.password,
            "channels": [{"token": c.token, "mount": c.mount, "main": c.main, "sub": c.sub} for c in self.channels],
            "quirks": sorted(q.value for q in self.quirks),
        }


@dataclass(slots=True)
class _Running:
    description: DeviceDescription
    discoverable: DiscoverableDevice
    server: OnvifDeviceServer
    host: str
    quirks: frozenset[Quirk] = field(default_factory=frozenset)


def parse_quirks(specs: Iterable[str]) -> dict[str, frozenset[Quirk]]:
    """``["cam1=clock_skew,no_stop", "nvr1=slow"]`` → ``{"cam1": {...}, "nvr1": {...}}``."""
    quirks: dict[str, set[Quirk]] = {}
    for spec in specs:
        device, sep, names = spec.partition("=")
        if not sep or not device or not names:
            raise ValueError(f"quirk {spec!r} is not DEVICE=QUIRK[,QUIRK...]")
        for name in names.split(","):
            try:
                quirks.setdefault(device.strip(), set()).add(Quirk(name.strip()))
            except ValueError:
                known = ", ".join(q.value for q in Quirk)
                raise ValueError(f"unknown quirk {name!r}; known: {known}") from None
    return {device: frozenset(names) for device, names in quirks.items()}


class SimulatedSite:
    """Starts and owns every part of a simulated site; an async context manager."""

    def __init__(
        self,
        *,
        state_dir: Path,
        cameras: int = 4,
        nvrs: int = 1,
        nvr_channels: int = 4,
        host: str = "127.0.0.1",
        spread: bool = True,
        quirks: Mapping[str, frozenset[Quirk]] | None = None,
        width: int = 640,
        height: int = 360,
        fps: int = 25,
        audio: bool = False,
        sub_streams: bool = False,
        discovery: bool = True,
        app_max_delay: float = 0.0,
        password: str | None = None,
        clock_offset_s: float = 3600.0,
        slow_delay_s: float = 3.0,
        nvr_spare_channels: int = 0,
    ) -> None:
        """``nvr_spare_channels``: RTSP mounts each NVR gets beyond ``nvr_channels``, so that
        :meth:`set_nvr_channels` can add channels while the site runs."""
        self.state_dir = Path(state_dir)
        self.host = host
        self._plan = [(f"cam{i}", DeviceKind.CAMERA, 1) for i in range(1, cameras + 1)]
        self._plan += [(f"nvr{i}", DeviceKind.NVR, nvr_channels) for i in range(1, nvrs + 1)]
        self._mount_counts = {
            name: count + (nvr_spare_channels if kind is DeviceKind.NVR else 0) for name, kind, count in self._plan
        }
        unknown = set(quirks or {}) - {name for name, _, _ in self._plan}
        if unknown:
            raise ValueError(f"quirks name devices the site does not have: {sorted(unknown)}")
        self._quirks = dict(quirks or {})
        self._spread = spread
        self._resolution = Resolution(width, height)
        self._fps = fps
        self._audio = audio
        self._sub_streams = sub_streams
        self._discovery = discovery
        self._app_max_delay = app_max_delay
        self.username = "admin"
        self.password = password or f"sim-{secrets.token_hex(4)}"
        self._clock_offset_s = clock_offset_s
        self._slow_delay_s = slow_delay_s
        self.rtsp: RtspSource | None = None
        self.responder: WsDiscoveryResponder | None = None
        self._running: dict[str, _Running] = {}
        self._closed = False

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def devices(self) -> list[SiteDevice]:
        """Every running device, in plan order."""
        return [self.device(name) for name, _, _ in self._plan if name in self._running]

    def device(self, name: str) -> SiteDevice:
        """One running device by name (``cam1``, ``nvr1``...)."""
        running = self._running[name]
        server, description = running.server, running.description
        return SiteDevice(
            name=name,
            kind=description.kind,
            mac=description.mac_address,
            serial=description.serial_number,
            host=running.host,
            port=server.port,
            xaddr=server.xaddr,
            username=description.username,
            password=description.password,
            channels=tuple(
                SiteChannel(c.video_source_token, self._mount(name, i), c.main_stream_uri, c.sub_stream_uri)
                for i, c in enumerate(description.channels, start=1)
            ),
            quirks=running.quirks,
        )

    def server(self, name: str) -> OnvifDeviceServer:
        """The ONVIF server of a device, for tests that inspect PTZ or imaging state."""
        return self._running[name].server

    @property
    def _interface(self) -> str:
        """Where shared services listen: loopback itself, or the namespace's own address."""
        return "127.0.0.1" if ipaddress.IPv4Address(self.host).is_loopback else self.host

    def address_of(self, index: int) -> str:
        """The address of the ``index``-th device (0-based)."""
        if not self._spread:
            return self.host
        return str(ipaddress.IPv4Address(self.host) + FIRST_HOST_OFFSET + index)

    @property
    def network(self) -> str:
        """A CIDR covering every device address (for unicast scans)."""
        if not self._spread:
            return f"{self.host}/32"
        first = ipaddress.IPv4Address(self.address_of(0))
        last = ipaddress.IPv4Address(self.address_of(len(self._plan) - 1))
        prefix = 32
        while not (ipaddress.ip_network(f"{first}/{prefix}", strict=False).broadcast_address >= last):
            prefix -= 1
        return str(ipaddress.ip_network(f"{first}/{prefix}", strict=False))

    async def start(self) -> None:
        """Start the RTSP server, then every device, then discovery; return when all answer."""
        started = time.monotonic()
        mounts = [self._mount(name, i) for name, _, _ in self._plan for i in range(1, self._mount_counts[name] + 1)]
        if self._sub_streams:
            mounts += [f"{mount}-sub" for mount in mounts]
        self.rtsp = RtspSource(
            mounts,
            cache_dir=self.state_dir / "rtsp-cache",
            width=self._resolution.width,
            height=self._resolution.height,
            fps=self._fps,
            audio=self._audio,
            host=self._interface,
        )
        await self.rtsp.start()
        if self._discovery:
            self.responder = WsDiscoveryResponder(interface_address=self._interface, app_max_delay=self._app_max_delay)
            await self.responder.start()
        await asyncio.gather(*(self._start_device(i, name, kind, count) for i, (name, kind, count) in enumerate(self._plan)))
        _LOGGER.info("site ready in %.2f s", time.monotonic() - started, extra={"devices": len(self._running)})

    async def close(self) -> None:
        """Stop discovery, the devices and the RTSP server; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.responder is not None:
            await self.responder.close()
        await asyncio.gather(*(running.server.close() for running in self._running.values()), return_exceptions=True)
        if self.rtsp is not None:
            await self.rtsp.close()

    async def stop_device(self, name: str) -> None:
        """Take a device off the network (ONVIF and its RTSP mounts), as a power cut would."""
        running = self._running[name]
        if self.responder is not None:
            await self.responder.remove_device(running.discoverable.endpoint_reference)
        await running.server.close()
        assert self.rtsp is not None
        for i in range(1, len(running.description.channels) + 1):
            await self.rtsp.stop_mount(self._mount(name, i))

    async def restart_device(self, name: str, *, host: str | None = None) -> SiteDevice:
        """Bring a stopped device back, optionally at a new address (a new DHCP lease).

        It listens on the port it had, as a camera does after a power cut or a new lease.
        """
        old = self._running[name]
        assert self.rtsp is not None
        for i in range(1, len(old.description.channels) + 1):
            await self.rtsp.start_mount(self._mount(name, i))
        await self._serve(
            name, old.description, host or old.host, old.quirks, old.discoverable.endpoint_reference, port=old.server.port
        )
        return self.device(name)

    async def set_nvr_channels(self, name: str, count: int) -> SiteDevice:
        """Give an NVR ``count`` channels (a camera plugged into or out of it) while the site runs.

        The NVR's ONVIF service restarts on the same address and port with the new channel list,
        as NVRs do when their channel configuration changes; channels beyond the ones it had at
        start need ``nvr_spare_channels``.
        """
        running = self._running[name]
        if running.description.kind is not DeviceKind.NVR:
            raise ValueError(f"{name} is not an NVR")
        if not 1 <= count <= self._mount_counts[name]:
            raise ValueError(f"{name} can have 1 to {self._mount_counts[name]} channels (see nvr_spare_channels)")
        description = replace(running.description, channels=self._channel_descriptions(name, DeviceKind.NVR, count))
        if self.responder is not None:
            await self.responder.remove_device(running.discoverable.endpoint_reference)
        await running.server.close()
        await self._serve(
            name, description, running.host, running.quirks, running.discoverable.endpoint_reference, port=running.server.port
        )
        return self.device(name)

    async def move_device(self, name: str, host: str) -> SiteDevice:
        """Stop a device and start it again at ``host``: same MAC and serial, new address."""
        await self.stop_device(name)
        return await self.restart_device(name, host=host)

    def _mount(self, name: str, channel: int) -> str:
        return f"{name}-ch{channel}"

    async def _start_device(self, index: int, name: str, kind: DeviceKind, channel_count: int) -> None:
        channels = self._channel_descriptions(name, kind, channel_count)
        host = self.address_of(index)
        octets = ipaddress.IPv4Address(host).packed
        quirks = self._quirks.get(name, frozenset())
        description = DeviceDescription(
            kind=kind,
            name=name,
            manufacturer=MANUFACTURER,
            model=CAMERA_MODEL if kind is DeviceKind.CAMERA else NVR_MODEL,
            firmware_version="1.4.2",
            serial_number=f"SV{octets[1]:03d}{octets[2]:03d}{index + 1:04d}",
            mac_address="02:5a:{:02x}:{:02x}:{:02x}:{:02x}".format(octets[1], octets[2], index >> 8, index & 0xFF),
            hardware_id=f"{kind.value.upper()}-{index + 1}",
            username=self.username,
            password=self.password,
            channels=tuple(channels),
            quirks=quirks,
            clock_offset_s=self._clock_offset_s,
            slow_delay_s=self._slow_delay_s,
            location="sim-site",
        )
        await self._serve(name, description, host, quirks, None)

    def _channel_descriptions(self, name: str, kind: DeviceKind, count: int) -> tuple[ChannelDescription, ...]:
        """Channels 1..count of a device, each on its own RTSP mount (PTZ: cameras and NVR channel 1)."""
        assert self.rtsp is not None
        channels = []
        for channel in range(1, count + 1):
            main = self.rtsp.url(self._mount(name, channel))
            sub = self.rtsp.url(f"{self._mount(name, channel)}-sub") if self._sub_streams else main
            channels.append(
                ChannelDescription(
                    video_source_token=f"VideoSource_{channel}",
                    main_stream_uri=main,
                    sub_stream_uri=sub,
                    main_resolution=self._resolution,
                    sub_resolution=self._resolution,
                    framerate=self._fps,
                    has_ptz=kind is DeviceKind.CAMERA or channel == 1,
                )
            )
        return tuple(channels)

    async def _serve(
        self,
        name: str,
        description: DeviceDescription,
        host: str,
        quirks: frozenset[Quirk],
        endpoint_reference: str | None,
        *,
        port: int = 0,
    ) -> None:
        server = OnvifDeviceServer(description, host=host, port=port)
        await server.start()
        discoverable = DiscoverableDevice(
            name=name,
            address=host,
            xaddr=server.xaddr,
            hardware=description.model,
            mac=description.mac_address,
            location="sim-site",
            type_scopes=("video_encoder",) if description.kind is DeviceKind.CAMERA else ("video_encoder", "Network_Video_Storage"),
            **({"endpoint_reference": endpoint_reference} if endpoint_reference else {}),
        )
        self._running[name] = _Running(description, discoverable, server, host, quirks)
        if self.responder is not None:
            await self.responder.add_device(discoverable)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sim.site", description="Run a simulated ONVIF site on loopback.")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--nvrs", type=int, default=1)
    parser.add_argument("--nvr-channels", type=int, default=4)
    parser.add_argument("--host", default="127.0.0.1", help="base address; devices get base+10, base+11, ...")
    parser.add_argument("--same-address", action="store_true", help="put every device on --host itself")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--quirks", nargs="*", default=[], metavar="DEVICE=QUIRK[,QUIRK]")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--audio", action="store_true")
    parser.add_argument("--no-discovery", action="store_true", help="no WS-Discovery responder")
    parser.add_argument("--password", help="device password (default: random)")
    return parser.parse_args(argv)


async def _serve_until_signalled(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    site = SimulatedSite(
        state_dir=args.state_dir,
        cameras=args.cameras,
        nvrs=args.nvrs,
        nvr_channels=args.nvr_channels,
        host=args.host,
        spread=not args.same_address,
        quirks=parse_quirks(args.quirks),
        width=args.width,
        height=args.height,
        fps=args.fps,
        audio=args.audio,
        discovery=not args.no_discovery,
        password=args.password,
    )
    async with site:
        for device in site.devices:
            print(json.dumps(device.to_json()), flush=True)
        print(json.dumps({"event": "ready", "network": site.network}), flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m sim.site``."""
    args = _arguments(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        parse_quirks(args.quirks)
    except ValueError as err:
        print(f"sim.site: {err}", file=sys.stderr)
        return 2
    asyncio.run(_serve_until_signalled(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
