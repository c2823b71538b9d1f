"""The TC3 signer against the official Tencent SDK, byte for byte, and the verifier's error codes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict
from tencentcloud.common import abstract_client, credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iss.v20230517 import iss_client, models

from gateway.iss import API_VERSION, IssError, Tc3Signer
from gateway.iss.envelope import CONTENT_TYPE, dumps, success
from gateway.iss.signing import verify_request

FROZEN = 1551113065  # the spec's worked example: 2019-02-26 00:44:25 in UTC+8, 2019-02-25 in UTC
SECRET_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
SECRET_KEY = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"


async def _capture_sdk_request(
    monkeypatch: pytest.MonkeyPatch, request: Any, call: str
) -> tuple[CIMultiDict[str], bytes, str]:
    """Let the official SDK send ``request`` to a loopback server and return what arrived."""
    seen: list[tuple[CIMultiDict[str], bytes]] = []

    async def handler(req: web.Request) -> web.Response:
        seen.append((CIMultiDict(req.headers), await req.read()))
        return web.Response(body=dumps(success({"Data": None}, "r-1")), content_type=CONTENT_TYPE)

    app = web.Application()
    app.router.add_post("/", handler)
    monkeypatch.setattr(abstract_client.time, "time", lambda: FROZEN)
    async with TestServer(app, host="127.0.0.1") as server:
        endpoint = f"127.0.0.1:{server.port}"
        profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=endpoint, reqTimeout=10))
        client = iss_client.IssClient(credential.Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", profile)
        await asyncio.to_thread(getattr(client, call), request)
    assert len(seen) == 1
    headers, body = seen[0]
    return headers, body, endpoint


@pytest.mark.parametrize(
    ("call", "request_type", "params"),
    [
        ("DescribeOrganization", models.DescribeOrganizationRequest, {}),
        (
            "AddUserDevice",
            models.AddUserDeviceRequest,
            {
                "Name": "门口 camera",
                "AccessProtocol": 3,
                "Type": 1,
                "OrganizationId": "1000192",
                "ClusterId": "cluster-1",
                "GatewayId": "gw-1",
                "ProtocolType": 4,
                "Ip": "192.0.2.10",
                "Port": 80,
                "Username": "admin",
                "Password": "pa$$w0rd",
            },
        ),
        ("ControlDevicePTZ", models.ControlDevicePTZRequest, {"ChannelId": "ch-1", "Type": "left", "Speed": 8}),
    ],
)
async def test_signer_matches_official_sdk_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch, call: str, request_type: Any, params: dict[str, Any]
) -> None:
    request = request_type()
    request.from_json_string(json.dumps(params))
    headers, body, endpoint = await _capture_sdk_request(monkeypatch, request, call)

    ours = Tc3Signer(SECRET_ID, SECRET_KEY).sign(
        action=call, body=body, host=endpoint, timestamp=FROZEN, version=API_VERSION, region="ap-guangzhou"
    )
    for name in ("Authorization", "Content-Type", "Host", "X-TC-Action", "X-TC-Timestamp", "X-TC-Version", "X-TC-Region"):
        assert ours.headers[name] == headers[name], name
    assert "Credential=%s/2019-02-25/iss/tc3_request" % SECRET_ID in ours.headers["Authorization"]


def test_spec_example_canonical_request_hashes() -> None:
    """The digest's worked example: payload hash and canonical request hash are reproducible."""
    from hashlib import sha256

    from gateway.iss.signing import canonical_request

    payload = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Host": "cvm.tencentcloudapi.com",
        "X-TC-Action": "DescribeInstances",
    }
    canonical = canonical_request("POST", headers, ["content-type", "host", "x-tc-action"], payload)
    assert sha256(payload).hexdigest() == "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    assert sha256(canonical.encode()).hexdigest() == "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"


def _signed(timestamp: int = FROZEN, key: str = SECRET_KEY, host: str = "127.0.0.1:8640") -> tuple[CIMultiDict[str], bytes]:
    body = b'{"ChannelId":"ch-1"}'
    signed = Tc3Signer(SECRET_ID, key).sign(
        action="DescribeDevicePreset", body=body, host=host, timestamp=timestamp, version=API_VERSION
    )
    return CIMultiDict(signed.headers), body


def _replaced(headers: CIMultiDict[str], **values: str) -> CIMultiDict[str]:
    copy = CIMultiDict(headers)
    for name, value in values.items():
        copy[name] = value
    return copy


def _verify(headers: CIMultiDict[str], body: bytes, now: float = FROZEN) -> None:
    verify_request(
        method="POST", headers=headers, body=body, query="", keys={SECRET_ID: SECRET_KEY}, now=now,
        expected_host="127.0.0.1:8640",
    )


def test_verify_accepts_a_good_signature() -> None:
    headers, body = _signed()
    _verify(headers, body)
    _verify(headers, body, now=FROZEN + 299)


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda h, b: (h, b + b" "), "AuthFailure.SignatureFailure"),
        (lambda h, b: (_signed(key="wrong")[0], b), "AuthFailure.SignatureFailure"),
        (lambda h, b: (_signed(host="evil.example:8640")[0], b), "AuthFailure.SignatureFailure"),
        (lambda h, b: (CIMultiDict({k: v for k, v in h.items() if k != "Authorization"}), b), "AuthFailure.InvalidAuthorization"),
        (lambda h, b: (_replaced(h, Authorization="Basic abc"), b), "AuthFailure.InvalidAuthorization"),
        (
            lambda h, b: (_replaced(h, Authorization=h["Authorization"].replace(SECRET_ID, "AKIDunknown")), b),
            "AuthFailure.SecretIdNotFound",
        ),
        (lambda h, b: (_signed(timestamp=FROZEN - 301)[0], b), "AuthFailure.SignatureExpire"),
        (lambda h, b: (_signed(timestamp=FROZEN + 301)[0], b), "AuthFailure.SignatureExpire"),
    ],
)
def test_verify_rejects_with_documented_codes(mutate: Any, code: str) -> None:
    headers, body = mutate(*_signed())
    with pytest.raises(IssError) as caught:
        _verify(headers, body)
    assert caught.value.code == code


def test_issues_refuse_undocumented_codes() -> None:
    with pytest.raises(ValueError):
        IssError("AuthFailure.MadeUp")
    assert IssError("RequestLimitExceeded").retryable
    assert not IssError("InvalidParameterValue").retryable
