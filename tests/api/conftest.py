"""Fixtures for the local API tests: a gateway with no devices, and an SDK client for its API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Config, load_config
from gateway.daemon import Gateway
from tests.cloud.conftest import IssSdk
from tests.integration.conftest import running_gateway

API_ID, API_KEY = "local-operator", "local-operator-key"


class LocalApiSdk(IssSdk):
    """The official SDK against the local API, keeping the API's one rule for clients.

    TC3 signs no nonce, so a call identical to one signed in the same second carries the same
    signature and the API refuses it as a replay. This client waits for the next second before
    repeating an identical call, as any client of the local API must.
    """

    def __init__(self, endpoint: str, **options: Any) -> None:
        super().__init__(endpoint, **{"secret_id": API_ID, "secret_key": API_KEY, **options})
        self._last_second: dict[str, int] = {}

    async def _distinct(self, action: str, params: dict[str, Any]) -> str:
        key = f"{action}\n{json.dumps(params, sort_keys=True)}"
        last = self._last_second.get(key)
        if last is not None and int(time.time()) <= last:
            await asyncio.sleep(last + 1 - time.time() + 0.01)
        return key

    async def call(self, action: str, **params: Any) -> dict[str, Any]:
        key = await self._distinct(action, params)
        try:
            return await super().call(action, **params)
        finally:
            self._last_second[key] = int(time.time())

    async def raw(self, action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        key = await self._distinct(action, params or {})
        try:
            return await super().raw(action, params)
        finally:
            self._last_second[key] = int(time.time())


def write_config(tmp_path: Path, api_lines: str = f'secret_id = "{API_ID}"\nsecret_key = "{API_KEY}"\n') -> Config:
    """A standalone gateway without devices: nothing to discover, the API is all there is."""
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'[gateway]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[api]\nlisten = "127.0.0.1:0"\n{api_lines}'
        "[discovery]\nmulticast = false\n",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return load_config(path)


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with running_gateway(write_config(tmp_path)) as running:
        yield running


@pytest.fixture
def endpoint(gateway: Gateway) -> str:
    return f"127.0.0.1:{gateway.api_port}"
