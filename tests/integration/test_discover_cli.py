"""``ivc-gateway discover``: one round, a table a technician can read, or JSON."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import gateway_config

pytestmark = pytest.mark.slow


async def _discover(config_path: Path, *extra: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "--config", str(config_path), "discover", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_discover_prints_every_device_with_its_facts(tmp_path: Path, make_site: Any) -> None:
    site = await make_site(cameras=2, nvrs=1, nvr_channels=3)
    stranger = await make_site(cameras=1, nvrs=0, password="another-password")
    config = gateway_config(tmp_path, None, site, unicast=[site.network, stranger.network])

    rows = json.loads(await _discover(config.path, "--json"))
    by_address = {row["address"]: row for row in rows}
    for device in site.devices:
        row = by_address[f"{device.host}:{device.port}"]
        assert (row["identity"], row["vendor"], row["channels"], row["auth"]) == (
            device.identity, "SimVision", len(device.channels), "ok",
        )
        assert row["ptz"] is True and row["source"] == "unicast"
    failed = by_address[f"{stranger.devices[0].host}:{stranger.devices[0].port}"]
    assert failed["auth"] == "failed" and "identity" not in failed

    table = await _discover(config.path)
    lines = table.splitlines()
    assert lines[0].split() == ["ADDRESS", "VENDOR", "MODEL", "IDENTITY", "CH", "PTZ", "AUTH", "SKEW", "FOUND", "BY"]
    nvr = site.device("nvr1")
    assert any(line.startswith(f"{nvr.host}:{nvr.port}") and " 3 " in line and nvr.identity in line for line in lines)
    assert lines[-1] == "3 device(s) answered, 1 failed"
