"""The whole simulated site: 4 cameras + 1 NVR (4 channels) answer ONVIF, RTSP and WS-Discovery."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest
import pytest_asyncio
from onvif import ONVIFCamera

from sim.onvif import Quirk
from sim.site import SimulatedSite, parse_quirks
from tests.sim.conftest import rtsp_server_children
from tests.sim.onvif_fixtures import WSDL_DIR
from tests.sim.test_onvif_device import OPERATIONS
from tests.sim.wsd_fixtures import (  # noqa: F401 - fixture
    random_loopback_prefix,
    running_wsdiscovery_client,
    search_until_found,
    wsdiscovery_loopback,
)



@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory, rtsp_clip_cache: Path) -> AsyncIterator[SimulatedSite]:
    state = tmp_path_factory.mktemp("site")
    (state / "rtsp-cache").symlink_to(rtsp_clip_cache)
    async with SimulatedSite(
        state_dir=state, cameras=4, nvrs=1, nvr_channels=4, host=f"{random_loopback_prefix()}.0", width=320, height=240
    ) as running:
        yield running
    assert rtsp_server_children() == []


pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


async def test_site_has_four_cameras_and_an_nvr_with_own_addresses(site: SimulatedSite) -> None:
    devices = site.devices
    assert [d.name for d in devices] == ["cam1", "cam2", "cam3", "cam4", "nvr1"]
    assert [len(d.channels) for d in devices] == [1, 1, 1, 1, 4]
    assert len({d.host for d in devices}) == 5 and len({d.mac for d in devices}) == 5
    assert all(d.xaddr.startswith(f"http://{d.host}:{d.port}/") for d in devices)


@pytest.mark.parametrize("name", ["cam1", "cam2", "cam3", "cam4", "nvr1"])
async def test_onvif_client_completes_every_operation(site: SimulatedSite, name: str) -> None:
    device = site.device(name)
    camera = ONVIFCamera(device.host, device.port, device.username, device.password, str(WSDL_DIR), no_cache=True)
    try:
        await camera.update_xaddrs()
        for service_name, operation, params in OPERATIONS:
            service = await camera.create_onvif_service(service_name)
            if operation in ("GotoPreset", "RemovePreset"):
                await service.SetPreset({"ProfileToken": params["ProfileToken"], "PresetToken": "1"})  # type: ignore[index]
            await getattr(service, operation)(params)
        media = await camera.create_media_service()
        uris = []
        for profile in await media.GetProfiles():
            answer = await media.GetStreamUri(
                {"ProfileToken": profile.token, "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}}
            )
            uris.append(answer.Uri)
        assert {c.main for c in device.channels} <= set(uris)
    finally:
        await camera.close()


def _read_ten_seconds(url: str) -> tuple[float, bool]:
    """Covered seconds of video and whether its DTS only ever increased."""
    with av.open(url, options={"rtsp_transport": "tcp", "stimeout": "5000000"}, timeout=10) as container:
        stream = container.streams.video[0]
        first = last = None
        increasing = True
        for packet in container.demux(stream):
            if packet.dts is None:
                continue
            seconds = float(packet.dts * stream.time_base)
            if last is not None and seconds <= last:
                increasing = False
            first = seconds if first is None else first
            last = seconds
            if last - first >= 10.0:
                break
        return (last or 0.0) - (first or 0.0), increasing


async def test_every_rtsp_url_streams_ten_seconds_with_increasing_timestamps(site: SimulatedSite) -> None:
    urls = [channel.main for device in site.devices for channel in device.channels]
    assert len(urls) == 8
    results = await asyncio.gather(*(asyncio.to_thread(_read_ten_seconds, url) for url in urls))
    for url, (covered, increasing) in zip(urls, results, strict=True):
        assert covered >= 10.0 and increasing, url


async def test_ws_discovery_finds_all_five_devices(site: SimulatedSite, wsdiscovery_loopback: str) -> None:
    expected = {d.name: d.xaddr for d in site.devices}
    assert site.responder is not None
    references = [site._running[name].discoverable.endpoint_reference for name in expected]  # noqa: SLF001
    async with running_wsdiscovery_client() as client:
        found = await asyncio.to_thread(search_until_found, client, references, timeout=10)
    xaddrs = {x for ref in references if ref in found for x in found[ref].xaddrs}
    assert xaddrs == set(expected.values())


async def test_quirk_specs_parse_and_unknown_ones_are_refused() -> None:
    assert parse_quirks(["cam1=clock_skew,no_stop", "nvr1=slow"]) == {
        "cam1": frozenset({Quirk.CLOCK_SKEW, Quirk.NO_STOP}),
        "nvr1": frozenset({Quirk.SLOW}),
    }
    with pytest.raises(ValueError, match="unknown quirk"):
        parse_quirks(["cam1=melts"])


async def test_cli_prints_one_line_per_device_and_leaves_nothing_on_sigterm(tmp_path: Path, rtsp_clip_cache: Path) -> None:
    (tmp_path / "rtsp-cache").symlink_to(rtsp_clip_cache)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sim.site", "--cameras", "2", "--nvrs", "1", "--nvr-channels", "2",
        "--host", f"{random_loopback_prefix()}.0", "--state-dir", str(tmp_path), "--width", "320", "--height", "240",
        "--quirks", "cam2=no_snapshot",
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    lines: list[dict[str, Any]] = []
    try:
        while not lines or lines[-1].get("event") != "ready":
            line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
            assert line, "sim.site exited before it was ready"
            lines.append(json.loads(line))
        devices = lines[:-1]
        assert [d["name"] for d in devices] == ["cam1", "cam2", "nvr1"]
        assert devices[1]["quirks"] == ["no_snapshot"] and len(devices[2]["channels"]) == 2
        assert devices[0]["identity"] == f"mac:{devices[0]['mac']}" and devices[0]["password"]
        children = _children_of(process.pid)
        assert children, "the RTSP server should be a child of the site"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
        assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def _children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                children.append(int(entry.name))
    return children
