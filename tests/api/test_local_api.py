"""The local API's protocol: TC3 verification, replay refusal, Host, headers, envelope.

A real gateway with no devices serves its API on 127.0.0.1; calls come from the official SDK
or, for what the SDK cannot send (stale timestamps, replays, missing headers), from requests
signed by hand with the gateway's own ``Tc3Signer``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.daemon import Gateway
from gateway.iss import API_VERSION, Tc3Signer
from gateway.snapshots import SnapshotRecord
from tests.api.conftest import API_ID, API_KEY, LocalApiSdk, write_config
from tests.integration.conftest import running_gateway

UNKNOWN_CHANNEL = "2f6b1b9e-0000-4000-8000-00000000dead"
PTZ_BODY = json.dumps({"ChannelId": UNKNOWN_CHANNEL, "Type": "left", "Speed": 1}).encode()


def signed_headers(
    host: str,
    action: str = "ControlDevicePTZ",
    body: bytes = PTZ_BODY,
    *,
    secret_id: str = API_ID,
    secret_key: str = API_KEY,
    timestamp: int | None = None,
    content_type: str = "application/json",
) -> dict[str, str]:
    signer = Tc3Signer(secret_id, secret_key)
    signed = signer.sign(
        action=action,
        body=body,
        host=host,
        timestamp=int(time.time()) if timestamp is None else timestamp,
        version=API_VERSION,
        region="ap-guangzhou",
        content_type=content_type,
    )
    return signed.headers


async def post(endpoint: str, headers: dict[str, str], body: bytes = PTZ_BODY, method: str = "POST") -> dict[str, Any]:
    """Send one request; every answer must be HTTP 200 with exactly ``application/json``."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"http://{endpoint}/", data=body, headers=headers) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        payload = await response.read()
    document: dict[str, Any] = json.loads(payload)["Response"]
    assert document["RequestId"]
    return document


def code(response: dict[str, Any]) -> str:
    return str(response.get("Error", {}).get("Code", "OK"))


async def test_the_sdk_with_the_right_key_reaches_the_dispatch_table(endpoint: str) -> None:
    sdk = LocalApiSdk(endpoint)
    assert await sdk.error("ControlDevicePTZ", {"ChannelId": UNKNOWN_CHANNEL, "Type": "left", "Speed": 1}) == "ResourceNotFound"
    assert await sdk.error("ControlDevicePTZ", {"ChannelId": UNKNOWN_CHANNEL, "Type": "jump", "Speed": 1}) == (
        "InvalidParameterValue.UnSupportedPTZCMD"
    )
    assert await sdk.error("AddUserDevice", {"Name": "x"}) == "InvalidAction"


@pytest.mark.parametrize(
    ("secret_id", "secret_key", "expected"),
    [
        (API_ID, "not-the-key", "AuthFailure.SignatureFailure"),
        ("someone-else", API_KEY, "AuthFailure.SecretIdNotFound"),
    ],
)
async def test_the_sdk_with_a_wrong_key_is_refused(endpoint: str, secret_id: str, secret_key: str, expected: str) -> None:
    sdk = LocalApiSdk(endpoint, secret_id=secret_id, secret_key=secret_key)
    assert await sdk.error("DescribeDevicePreset", {"ChannelId": UNKNOWN_CHANNEL}) == expected


async def test_a_stale_or_future_timestamp_is_refused(endpoint: str) -> None:
    for skew in (-301, 301):
        headers = signed_headers(endpoint, timestamp=int(time.time()) + skew)
        assert code(await post(endpoint, headers)) == "AuthFailure.SignatureExpire"
    assert code(await post(endpoint, signed_headers(endpoint, timestamp=int(time.time()) - 200))) == "ResourceNotFound"


async def test_missing_or_malformed_authorization_is_refused(endpoint: str) -> None:
    headers = signed_headers(endpoint)
    del headers["Authorization"]
    assert code(await post(endpoint, headers)) == "AuthFailure.InvalidAuthorization"
    headers["Authorization"] = "Basic YWRtaW46YWRtaW4="
    assert code(await post(endpoint, headers)) == "AuthFailure.InvalidAuthorization"


async def test_a_replayed_signature_is_refused(endpoint: str) -> None:
    headers = signed_headers(endpoint)
    assert code(await post(endpoint, headers)) == "ResourceNotFound"
    replay = await post(endpoint, headers)
    assert code(replay) == "AuthFailure.SignatureFailure" and "replay" in replay["Error"]["Message"]


async def test_the_same_signature_for_another_action_is_not_a_replay(endpoint: str) -> None:
    # The SDK signs only content-type and host: two actions with the same body in the same
    # second carry the same signature and are both legitimate.
    body = json.dumps({"ChannelId": UNKNOWN_CHANNEL}).encode()
    headers = signed_headers(endpoint, "DescribeDevicePreset", body)
    assert code(await post(endpoint, headers, body)) == "ResourceNotFound"
    headers["X-TC-Action"] = "ListDeviceSnapshots"
    assert code(await post(endpoint, headers, body)) == "ResourceNotFound"


async def test_host_must_name_this_api(gateway: Gateway, endpoint: str) -> None:
    for host in ("iss.tencentcloudapi.com", f"127.0.0.1:{(gateway.api_port or 0) + 1}", "192.0.2.1:8640"):
        assert code(await post(endpoint, signed_headers(host))) == "AuthFailure.SignatureFailure", host
    assert code(await post(endpoint, signed_headers(f"localhost:{gateway.api_port}"))) == "ResourceNotFound"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"X-TC-Version": "2020-01-01"}, "NoSuchVersion"),
        ({"X-TC-Version": None}, "MissingParameter"),
        ({"X-TC-Action": None}, "MissingParameter"),
        ({"X-TC-Action": "DescribeInstances"}, "InvalidAction"),
        ({"X-TC-Token": "sts-token"}, "AuthFailure.TokenFailure"),
        ({"X-TC-Timestamp": None}, "MissingParameter"),
    ],
)
async def test_header_checks(endpoint: str, change: dict[str, str | None], expected: str) -> None:
    headers = signed_headers(endpoint)
    for name, value in change.items():
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    assert code(await post(endpoint, headers)) == expected


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"{not json", "application/json", "InvalidParameter.InvalidBodyFormat"),
        (b"[1, 2]", "application/json", "InvalidParameter.InvalidBodyFormat"),
        (b"\xff\xfe", "application/json", "InvalidParameter.InvalidBodyFormat"),
        (b"ChannelId=x", "application/x-www-form-urlencoded", "InvalidParameter"),
        (b"", "application/json", "MissingParameter"),
    ],
)
async def test_body_checks(endpoint: str, body: bytes, content_type: str, expected: str) -> None:
    headers = signed_headers(endpoint, body=body, content_type=content_type)
    assert code(await post(endpoint, headers, body)) == expected


async def test_a_body_over_10_mb_is_refused(endpoint: str) -> None:
    body = b" " * (10 * 1024 * 1024 + 1)
    assert code(await post(endpoint, signed_headers(endpoint, body=body), body)) == "RequestSizeLimitExceeded"


async def test_only_post_is_served(endpoint: str) -> None:
    assert code(await post(endpoint, signed_headers(endpoint), b"", method="GET")) == "UnsupportedProtocol"


async def test_without_a_configured_key_every_call_is_refused(tmp_path: Path) -> None:
    async with running_gateway(write_config(tmp_path, api_lines="")) as gateway:
        endpoint = f"127.0.0.1:{gateway.api_port}"
        assert code(await post(endpoint, signed_headers(endpoint))) == "AuthFailure.SecretIdNotFound"
        sdk = LocalApiSdk(endpoint)
        assert await sdk.error("DescribeDevicePreset", {"ChannelId": UNKNOWN_CHANNEL}) == "AuthFailure.SecretIdNotFound"


async def test_healthz_and_snapshot_links_outside_the_iss_envelope(gateway: Gateway, endpoint: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{endpoint}/healthz") as response:
            assert response.status == 200 and (await response.json())["status"] == "ok"
        path = "/snapshots/2f6b1b9e-0000-4000-8000-00000000dead/20250101T000000000Z_abc_01.jpg"
        async with session.get(f"http://{endpoint}{path}") as response:
            assert response.status == 403, "no signature"
        query = gateway.local_api.links.query(path)
        async with session.get(f"http://{endpoint}{path}", params=query) as response:
            assert response.status == 404, "signed, but no such image"


async def test_links_use_the_public_url_when_set(tmp_path: Path) -> None:
    api = f'secret_id = "{API_ID}"\nsecret_key = "{API_KEY}"\npublic_url = "https://gw.example.com:8443/"\n'
    async with running_gateway(write_config(tmp_path, api_lines=api)) as gateway:
        record = SnapshotRecord(1, UNKNOWN_CHANNEL, "req", "20250101T000000000Z_req_01.jpg", 10, "onvif", 0, 0, 0, None)
        download, preview = gateway.local_api.snapshot_urls(record)
        assert download.startswith(f"https://gw.example.com:8443/snapshots/{UNKNOWN_CHANNEL}/20250101T000000000Z_req_01.jpg?")
        assert preview == f"{download}&preview=true"
        # A caller that signed for the public name is accepted.
        endpoint = f"127.0.0.1:{gateway.api_port}"
        assert code(await post(endpoint, signed_headers("gw.example.com:8443"))) == "ResourceNotFound"
    (tmp_path / "plain").mkdir()
    async with running_gateway(write_config(tmp_path / "plain")) as gateway:
        assert gateway.local_api.snapshot_urls(record)[0].startswith(f"http://127.0.0.1:{gateway.api_port}/snapshots/")
