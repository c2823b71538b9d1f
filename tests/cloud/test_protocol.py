"""The iss protocol layer of the cloud emulator: envelope, TC3 auth, version, action, region,
body and parameter-schema errors, rate limiting — all seen through the official SDK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from gateway.iss.errors import IssError
from sim.cloud import CloudEmulator, ForwardedCall, seeds

from .conftest import REGION, SECRET_ID, SECRET_KEY, FrozenClock, IssSdk, camera_params, signed_post


async def test_answers_are_http_200_with_exact_json_content_type(cloud: CloudEmulator) -> None:
    status, content_type, body = await signed_post(cloud.endpoint, "DescribeOrganization", b"{}")
    assert (status, content_type) == (200, "application/json")
    assert set(body["Response"]) == {"Data", "RequestId"}

    status, content_type, body = await signed_post(cloud.endpoint, "NoSuchAction", b"{}")
    assert (status, content_type) == (200, "application/json")
    assert body["Response"]["Error"]["Code"] == "InvalidAction"
    assert body["Response"]["RequestId"]


async def test_success_envelope_carries_a_fresh_request_id(iss: IssSdk) -> None:
    first = await iss.raw("DescribeDeviceRegion")
    second = await iss.raw("DescribeDeviceRegion")
    assert first["RequestId"] != second["RequestId"]


async def test_wrong_secret_key_is_a_signature_failure(cloud: CloudEmulator) -> None:
    sdk = IssSdk(cloud.endpoint, secret_key="not-the-key")
    assert await sdk.error("DescribeOrganization") == "AuthFailure.SignatureFailure"


async def test_unknown_secret_id(cloud: CloudEmulator) -> None:
    sdk = IssSdk(cloud.endpoint, secret_id="AKIDnobody")
    assert await sdk.error("DescribeOrganization") == "AuthFailure.SecretIdNotFound"


@pytest.mark.parametrize("skew", [-400.0, 400.0], ids=["client-ahead", "client-behind"])
async def test_timestamp_more_than_five_minutes_off_is_expired(tmp_path: Path, skew: float) -> None:
    clock: Callable[[], float] = lambda: time.time() + skew  # the emulator's clock
    async with CloudEmulator(tmp_path / "cloud", SECRET_ID, SECRET_KEY, clock=clock) as cloud:
        assert await IssSdk(cloud.endpoint).error("DescribeOrganization") == "AuthFailure.SignatureExpire"


async def test_timestamp_within_five_minutes_is_accepted(tmp_path: Path) -> None:
    clock: Callable[[], float] = lambda: time.time() + 240
    async with CloudEmulator(tmp_path / "cloud", SECRET_ID, SECRET_KEY, clock=clock) as cloud:
        assert (await IssSdk(cloud.endpoint).call("DescribeOrganization"))["Data"]


async def test_hand_signed_stale_timestamp_is_expired(cloud: CloudEmulator) -> None:
    _, _, body = await signed_post(
        cloud.endpoint, "DescribeOrganization", b"{}", timestamp=int(time.time()) - 3600
    )
    assert body["Response"]["Error"]["Code"] == "AuthFailure.SignatureExpire"


async def test_request_signed_for_another_host_fails(cloud: CloudEmulator) -> None:
    port = cloud.endpoint.rsplit(":", 1)[1]
    sdk = IssSdk(f"localhost:{port}")  # reaches the emulator, but signs and sends Host: localhost:P
    assert await sdk.error("DescribeOrganization") == "AuthFailure.SignatureFailure"

    _, _, body = await signed_post(
        cloud.endpoint, "DescribeOrganization", b"{}", host="iss.tencentcloudapi.com"
    )
    assert body["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"


async def test_missing_or_garbled_authorization(cloud: CloudEmulator, iss: IssSdk) -> None:
    async with aiohttp.ClientSession() as session:
        headers = {"Content-Type": "application/json", "X-TC-Action": "DescribeOrganization"}
        async with session.post(cloud.url, data=b"{}", headers=headers) as response:
            body = await response.json(content_type=None)
    assert body["Response"]["Error"]["Code"] == "AuthFailure.InvalidAuthorization"

    with pytest.raises(TencentCloudSDKException) as failure:  # the SDK's unsigned mode sends "SKIP"
        await _call_skip_sign(iss)
    assert failure.value.code == "AuthFailure.InvalidAuthorization"


async def _call_skip_sign(iss: IssSdk) -> Any:
    return await asyncio.to_thread(iss.client.call_json, "DescribeOrganization", {}, None, {"SkipSign": True})


async def test_a_security_token_is_refused_for_long_term_keys(cloud: CloudEmulator) -> None:
    sdk = IssSdk(cloud.endpoint, token="sts-token")
    assert await sdk.error("DescribeOrganization") == "AuthFailure.TokenFailure"


async def test_wrong_api_version(iss: IssSdk) -> None:
    iss.client._apiVersion = "2020-01-01"
    assert await iss.error("DescribeOrganization") == "NoSuchVersion"


async def test_unknown_action(iss: IssSdk) -> None:
    assert await iss.error("DescribeEverything") == "InvalidAction"


@pytest.mark.parametrize("action", ["AddAITask", "BatchOperateDevice", "CallISAPI"])
async def test_real_actions_outside_the_emulation_are_unsupported(iss: IssSdk, action: str) -> None:
    assert await iss.error(action) == "UnsupportedOperation"


async def test_forwarded_actions_go_to_the_forwarder_hook(cloud: CloudEmulator, iss: IssSdk) -> None:
    seen: list[ForwardedCall] = []

    async def forwarder(call: ForwardedCall) -> dict[str, Any]:
        seen.append(call)
        if call.params.get("Command") == "bogus":
            raise IssError("InvalidParameterValue.UnSupportedPTZCMD")
        return {}

    cloud.set_forwarder(forwarder)
    response = await iss.raw("ControlDevicePTZ", {"ChannelId": "c1", "Command": "left", "Speed": 1})
    assert set(response) == {"RequestId"}
    assert await iss.error("ControlDevicePTZ", {"ChannelId": "c1", "Command": "bogus"}) == (
        "InvalidParameterValue.UnSupportedPTZCMD"
    )
    assert [(call.action, call.region, call.secret_id) for call in seen] == [
        ("ControlDevicePTZ", REGION, SECRET_ID),
        ("ControlDevicePTZ", REGION, SECRET_ID),
    ]
    assert await iss.error("AddAITask") == "UnsupportedOperation"  # not a forwarded action


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"],
    ids=["garbled", "array", "string", "not-utf8"],
)
async def test_bad_json_body(cloud: CloudEmulator, body: bytes) -> None:
    _, _, answer = await signed_post(cloud.endpoint, "DescribeOrganization", body)
    assert answer["Response"]["Error"]["Code"] == "InvalidParameter.InvalidBodyFormat"


async def test_non_json_content_type_is_refused(cloud: CloudEmulator) -> None:
    _, _, answer = await signed_post(cloud.endpoint, "DescribeOrganization", b"{}", content_type="text/plain")
    assert answer["Response"]["Error"]["Code"] == "InvalidParameter"
    # The signature covers Content-Type: a header swapped after signing fails the signature.
    _, _, answer = await signed_post(
        cloud.endpoint, "DescribeOrganization", b"{}", headers={"Content-Type": "text/plain"}
    )
    assert answer["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"


async def test_json_content_type_with_charset_is_accepted(cloud: CloudEmulator) -> None:
    _, _, answer = await signed_post(
        cloud.endpoint, "DescribeOrganization", b"{}", content_type="application/json; charset=utf-8"
    )
    assert answer["Response"]["Data"]


async def test_get_and_other_methods_are_unsupported_protocol(cloud: CloudEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        for method in ("GET", "PUT", "DELETE"):
            async with session.request(method, cloud.url) as response:
                assert (response.status, response.headers["Content-Type"]) == (200, "application/json")
                body = await response.json()
                assert body["Response"]["Error"]["Code"] == "UnsupportedProtocol"
        async with session.post(f"http://{cloud.endpoint}/elsewhere", data=b"{}") as response:
            assert response.status == 404


async def test_oversized_body_is_refused(cloud: CloudEmulator) -> None:
    body = b'{"Padding": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    _, _, answer = await signed_post(cloud.endpoint, "DescribeOrganization", body)
    assert answer["Response"]["Error"]["Code"] == "RequestSizeLimitExceeded"


async def test_unknown_parameter_top_level_and_nested(iss: IssSdk) -> None:
    assert await iss.error("DescribeOrganization", {"Verbose": True}) == "UnknownParameter"
    assert await iss.error("AddUserDevice", {**camera_params(), "Colour": "red"}) == "UnknownParameter"
    # Known to newer SDK models, absent from the spec.
    with pytest.raises(TencentCloudSDKException) as failure:
        await iss.call("UpdateUserDevice", DeviceId="12345678-abcd-efgh-ijkl-1234567890ab", TimeSyncSwitch=1)
    assert failure.value.code == "UnknownParameter"
    template = (await iss.call("AddRecordTemplate", TemplateName="t1", TimeSections=_SECTIONS))["Data"]
    assert (
        await iss.error(
            "UpdateRecordTemplate", {"TemplateId": template["TemplateId"], "Mod": {"Colour": "red"}}
        )
        == "UnknownParameter"
    )
    assert (
        await iss.error(
            "AddRecordTemplate",
            {"TemplateName": "t2", "TimeSections": [{**_SECTIONS[0], "Timezone": "UTC"}]},
        )
        == "UnknownParameter"
    )


_SECTIONS = [{"DayOfWeek": 1, "StartTime": "08:00:00", "EndTime": "12:00:00"}]


@pytest.mark.parametrize(
    ("action", "params"),
    [
        ("DescribeUserDevice", {}),
        ("ListDevices", {}),
        ("DeleteRecordPlan", {}),
        ("AddUserDevice", {key: value for key, value in camera_params().items() if key != "ClusterId"}),
    ],
    ids=["DescribeUserDevice", "ListDevices", "DeleteRecordPlan", "AddUserDevice-ClusterId"],
)
async def test_missing_required_parameter(iss: IssSdk, action: str, params: dict[str, Any]) -> None:
    assert await iss.error(action, params) == "MissingParameter"


@pytest.mark.parametrize(
    ("action", "params"),
    [
        ("DescribeUserDevice", {"DeviceId": 42}),
        ("ListDevices", {"OrganizationId": 100}),
        ("ListDevices", {"OrganizationId": "100", "IsContainSubLevel": "yes"}),
        ("ListDevices", {"OrganizationId": "100", "PageSize": 2.5}),
        ("AddUserDevice", camera_params(Port="80")),
        ("AddUserDevice", camera_params(Type=True)),
    ],
    ids=[
        "int-for-string",
        "int-for-string-id",
        "string-for-bool",
        "float-for-int",
        "string-for-int",
        "bool-for-int",
    ],
)
async def test_wrong_parameter_type(iss: IssSdk, action: str, params: dict[str, Any]) -> None:
    assert await iss.error(action, params) == "InvalidParameter"


async def test_region_required_by_the_action(cloud: CloudEmulator) -> None:
    no_region = IssSdk(cloud.endpoint, region="")
    assert await no_region.error("AddUserDevice", camera_params()) == "MissingParameter"
    assert await no_region.error("DeleteUserDevice", {"DeviceId": "a-b-c-d-e"}) == "MissingParameter"
    assert (await no_region.call("DescribeOrganization"))["Data"]  # Region optional here


@pytest.mark.parametrize("region", ["ap-tokyo", "ap-nanjing", "mars-1"])
async def test_region_outside_the_four_regions(cloud: CloudEmulator, region: str) -> None:
    sdk = IssSdk(cloud.endpoint, region=region)
    assert await sdk.error("DescribeOrganization") == "UnsupportedRegion"
    assert await sdk.error("AddUserDevice", camera_params()) == "UnsupportedRegion"


@pytest.mark.parametrize("region", ["ap-beijing", "ap-chongqing", "ap-guangzhou", "ap-shanghai"])
async def test_the_four_regions_are_accepted(cloud: CloudEmulator, region: str) -> None:
    assert (await IssSdk(cloud.endpoint, region=region).call("DescribeDeviceRegion"))["Data"]


async def test_rate_limit_per_action_and_secret_id(tmp_path: Path) -> None:
    clock = FrozenClock()
    async with CloudEmulator(tmp_path / "cloud", SECRET_ID, SECRET_KEY, clock=clock, rate_limit=3) as cloud:
        iss = IssSdk(cloud.endpoint)
        for _ in range(3):
            await iss.call("DescribeOrganization")
        assert await iss.error("DescribeOrganization") == "RequestLimitExceeded"
        assert (await iss.call("DescribeDeviceRegion"))["Data"]  # another action has its own budget
        clock.advance(1.0)
        assert (await iss.call("DescribeOrganization"))["Data"]
        codes = [record.code for record in cloud.calls("DescribeOrganization")]
        assert codes == ["OK", "OK", "OK", "RequestLimitExceeded", "OK"]


async def test_default_rate_limit_is_twenty_per_second(tmp_path: Path) -> None:
    clock = FrozenClock()
    async with CloudEmulator(tmp_path / "cloud", SECRET_ID, SECRET_KEY, clock=clock) as cloud:
        iss = IssSdk(cloud.endpoint)
        for _ in range(20):
            await iss.call("DescribeDeviceRegion")
        assert await iss.error("DescribeDeviceRegion") == "RequestLimitExceeded"


async def test_rate_limit_can_be_set_per_action(tmp_path: Path) -> None:
    clock = FrozenClock()
    limits = {"ListGatewayDevices": 2}
    async with CloudEmulator(
        tmp_path / "cloud", SECRET_ID, SECRET_KEY, clock=clock, rate_limits=limits
    ) as cloud:
        iss = IssSdk(cloud.endpoint)
        for _ in range(2):
            await iss.call("ListGatewayDevices", GatewayId=seeds.GATEWAY_ID)
        assert (
            await iss.error("ListGatewayDevices", {"GatewayId": seeds.GATEWAY_ID}) == "RequestLimitExceeded"
        )
        cloud.set_rate_limit(20, {"ListGatewayDevices": 5})
        for _ in range(5):
            await iss.call("ListGatewayDevices", GatewayId=seeds.GATEWAY_ID)
        assert (
            await iss.error("ListGatewayDevices", {"GatewayId": seeds.GATEWAY_ID}) == "RequestLimitExceeded"
        )
