"""Fixtures for the cloud emulator tests: a running emulator and the official SDK pointed at it.

The SDK client is synchronous (requests); tests are async and call it in a worker thread, so
the emulator keeps serving on the test's event loop meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import requests
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iss.v20230517 import iss_client, models

from gateway.iss import API_VERSION
from gateway.iss.signing import Tc3Signer
from sim.cloud import CloudEmulator, seeds

SECRET_ID = "AKIDcloudEmulatorTest"
SECRET_KEY = "cloud-emulator-test-key"
REGION = "ap-guangzhou"
SDK_TIMEOUT_SECONDS = 10


class FrozenClock:
    """An emulator clock that only moves when told to (rate-limit and time tests)."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class IssSdk:
    """The official ``IssClient`` against one endpoint; every call runs in a worker thread."""

    def __init__(
        self,
        endpoint: str,
        *,
        secret_id: str = SECRET_ID,
        secret_key: str = SECRET_KEY,
        region: str = REGION,
        timeout: float = SDK_TIMEOUT_SECONDS,
        token: str | None = None,
    ) -> None:
        profile = ClientProfile(
            httpProfile=HttpProfile(protocol="http", endpoint=endpoint, reqTimeout=timeout)
        )
        self.client = iss_client.IssClient(
            credential.Credential(secret_id, secret_key, token), region, profile
        )

    def _call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        method = getattr(self.client, action, None)
        if method is None:  # this SDK release has no typed method (e.g. the gateway group)
            return self._raw(action, params)
        request = getattr(models, f"{action}Request")()
        request.from_json_string(json.dumps(params))
        response: dict[str, Any] = json.loads(method(request).to_json_string())
        return response

    def _raw(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = self.client.call_json(action, params)["Response"]
        return response

    async def call(self, action: str, **params: Any) -> dict[str, Any]:
        """Call through the typed SDK method when the SDK has one; returns ``Response``."""
        return await asyncio.to_thread(self._call, action, params)

    async def raw(self, action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call with ``IssClient.call_json`` (sends ``params`` exactly, shows the wire output)."""
        return await asyncio.to_thread(self._raw, action, params or {})

    async def error(self, action: str, params: dict[str, Any] | None = None) -> str:
        """The error code the call fails with (sent exactly as given, through call_json)."""
        with pytest.raises(TencentCloudSDKException) as failure:
            await self.raw(action, params)
        code: str = failure.value.code
        return code


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[CloudEmulator]:
    async with CloudEmulator(tmp_path / "cloud", SECRET_ID, SECRET_KEY) as emulator:
        yield emulator


@pytest.fixture
def iss(cloud: CloudEmulator) -> IssSdk:
    return IssSdk(cloud.endpoint)


def camera_params(**overrides: Any) -> dict[str, Any]:
    """AddUserDevice parameters of an ONVIF camera behind the seed gateway."""
    params: dict[str, Any] = {
        "Name": "门口 camera-1",
        "AccessProtocol": 3,
        "Type": 1,
        "OrganizationId": seeds.ROOT_ORGANIZATION_ID,
        "ClusterId": seeds.GUANGZHOU_CLUSTER_ID,
        "GatewayId": seeds.GATEWAY_ID,
        "ProtocolType": 4,
        "Ip": "192.168.1.64",
        "Port": 80,
        "Username": "admin",
        "Password": "cam-pass",
    }
    params.update(overrides)
    return {name: value for name, value in params.items() if value is not None}


async def add_camera(iss: IssSdk, **overrides: Any) -> dict[str, Any]:
    """Register a gateway camera; returns AddDeviceData."""
    data: dict[str, Any] = (await iss.call("AddUserDevice", **camera_params(**overrides)))["Data"]
    return data


def member_set(names: str) -> set[str]:
    """A set of member names written space-separated (long field lists stay compact)."""
    return set(names.split())


def values(data: dict[str, Any], names: str) -> tuple[Any, ...]:
    """The members ``names`` (space-separated) of ``data``, as a tuple to compare in one line."""
    return tuple(data[name] for name in names.split())


async def channel_ids(iss: IssSdk, device_id: str) -> list[str]:
    channels = (await iss.call("DescribeDeviceChannel", DeviceId=device_id))["Data"]
    return [channel["ChannelId"] for channel in channels]


async def signed_post(
    endpoint: str,
    action: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    region: str | None = REGION,
    host: str | None = None,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> tuple[int, str | None, dict[str, Any]]:
    """POST a hand-signed request (for bodies and headers the SDK cannot produce).

    Returns the HTTP status, the exact Content-Type header and the decoded body.
    """
    signer = Tc3Signer(SECRET_ID, SECRET_KEY)
    signed = signer.sign(
        action=action,
        body=body,
        host=host or endpoint,
        timestamp=int(time.time()) if timestamp is None else timestamp,
        version=API_VERSION,
        region=region,
        content_type=content_type,
    )
    sent = dict(signed.headers)
    sent.update(headers or {})
    # requests, like the SDK's own transport (aiohttp's client lingers on an unread 10 MB body).
    response = await asyncio.to_thread(
        requests.post, f"http://{endpoint}/", data=signed.body, headers=sent, timeout=SDK_TIMEOUT_SECONDS
    )
    return response.status_code, response.headers.get("Content-Type"), json.loads(response.content)
