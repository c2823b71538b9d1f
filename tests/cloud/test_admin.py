"""Test-support side of the cloud emulator: faults, call log, admin endpoints, persistence, CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from sim.cloud import CloudEmulator, Fault, ReportedChannel, seeds

from .conftest import SECRET_ID, SECRET_KEY, IssSdk, add_camera, camera_params, channel_ids

REPO_ROOT = Path(__file__).resolve().parents[2]
PROCESS_TIMEOUT_SECONDS = 20


async def wait_for_calls(cloud: CloudEmulator, action: str, count: int, timeout: float = 5.0) -> None:
    """Wait (bounded) until the call log holds ``count`` calls of ``action``."""
    deadline = time.monotonic() + timeout
    while len(cloud.calls(action)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{action} was not called {count} times within {timeout} s")
        await asyncio.sleep(0.02)


async def gateway_device_count(iss: IssSdk) -> int:
    count: int = (await iss.call("ListGatewayDevices", GatewayId=seeds.GATEWAY_ID))["Data"]["TotalCount"]
    return count


async def sdk_failure(iss: IssSdk, action: str, params: dict[str, Any]) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as failure:
        await iss.call(action, **params)
    return failure.value


# -- faults -------------------------------------------------------------------------------


async def test_error_fault_answers_the_code_and_applies_nothing(cloud: CloudEmulator, iss: IssSdk) -> None:
    cloud.inject_fault("AddUserDevice", error="InternalError", times=1)
    assert (await sdk_failure(iss, "AddUserDevice", camera_params())).code == "InternalError"
    assert await gateway_device_count(iss) == 0
    await add_camera(iss)  # the fault was used up
    assert await gateway_device_count(iss) == 1
    assert [(record.code, record.fault) for record in cloud.calls("AddUserDevice")] == [
        ("InternalError", "error"),
        ("OK", None),
    ]


async def test_drop_fault_applies_the_write_but_never_answers(cloud: CloudEmulator, iss: IssSdk) -> None:
    cloud.inject_fault("AddUserDevice", drop=True, times=1)
    failure = await sdk_failure(iss, "AddUserDevice", camera_params())
    assert failure.code == "ClientNetworkError"
    listed = (await iss.call("ListGatewayDevices", GatewayId=seeds.GATEWAY_ID))["Data"]
    assert listed["TotalCount"] == 1  # the client must find it instead of registering again
    assert (listed["List"][0]["Ip"], listed["List"][0]["Port"]) == ("192.168.1.64", 80)
    assert [(record.code, record.fault) for record in cloud.calls("AddUserDevice")] == [("OK", "drop")]


async def test_http_503_fault(cloud: CloudEmulator, iss: IssSdk) -> None:
    cloud.inject_fault("AddUserDevice", http_status=503)
    for _ in range(2):
        assert (await sdk_failure(iss, "AddUserDevice", camera_params())).code == "ServerNetworkError"
    assert await gateway_device_count(iss) == 0
    cloud.clear_faults()
    await add_camera(iss)
    assert [record.code for record in cloud.calls("AddUserDevice")] == ["HTTP 503", "HTTP 503", "OK"]


async def test_delay_fault_makes_the_answer_late(cloud: CloudEmulator, iss: IssSdk) -> None:
    cloud.inject_fault("DescribeOrganization", delay=0.4, times=1)
    started = time.monotonic()
    await iss.call("DescribeOrganization")
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    await iss.call("DescribeOrganization")
    assert time.monotonic() - started < 0.4


async def test_client_timeout_during_a_delay_still_applies_the_write(cloud: CloudEmulator) -> None:
    impatient = IssSdk(cloud.endpoint, timeout=0.3)
    cloud.inject_fault("AddUserDevice", delay=1.0, times=1)
    assert (await sdk_failure(impatient, "AddUserDevice", camera_params())).code == "ClientNetworkError"
    await wait_for_calls(cloud, "AddUserDevice", 1)
    assert await gateway_device_count(IssSdk(cloud.endpoint)) == 1


async def test_wildcard_fault_hits_every_action_until_cleared(cloud: CloudEmulator, iss: IssSdk) -> None:
    cloud.inject_fault("*", error="ServiceUnavailable")
    for action in ("DescribeOrganization", "DescribeDeviceRegion"):
        assert (await sdk_failure(iss, action, {})).code == "ServiceUnavailable"
    assert [fault.action for fault in cloud.faults()] == ["*"]
    cloud.clear_faults()
    assert (await iss.call("DescribeOrganization"))["Data"]


@pytest.mark.parametrize(
    "arguments",
    [
        {"action": "A", "error": "NotACode"},
        {"action": "A", "error": "InternalError", "drop": True},
        {"action": "A", "http_status": 200},
        {"action": "A", "delay": -1},
        {"action": "A", "drop": True, "times": 0},
        {"action": "A"},
        {"action": ""},
    ],
    ids=str,
)
def test_invalid_faults_are_refused(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Fault(**arguments)


# -- admin HTTP endpoints -----------------------------------------------------------------


async def test_faults_and_call_log_over_http(cloud: CloudEmulator, iss: IssSdk) -> None:
    base = f"{cloud.url}_emulator"
    async with aiohttp.ClientSession() as session:
        fault = {"action": "DescribeOrganization", "error": "ResourceUnavailable", "times": 1}
        async with session.post(f"{base}/faults", json=fault) as response:
            assert response.status == 201
        async with session.post(f"{base}/faults", json={"action": "X", "error": "Bogus"}) as response:
            assert response.status == 400
        async with session.post(f"{base}/faults", data=b"nope") as response:
            assert response.status == 400
        async with session.get(f"{base}/faults") as response:
            assert [item["action"] for item in await response.json()] == ["DescribeOrganization"]

        assert (await sdk_failure(iss, "DescribeOrganization", {})).code == "ResourceUnavailable"
        await iss.call("DescribeOrganization")
        await iss.call("AddUserDevice", **camera_params())

        async with session.get(f"{base}/calls", params={"action": "DescribeOrganization"}) as response:
            calls = await response.json()
        assert [(call["action"], call["code"], call["fault"]) for call in calls] == [
            ("DescribeOrganization", "ResourceUnavailable", "error"),
            ("DescribeOrganization", "OK", None),
        ]
        assert all(isinstance(call["at"], float) and call["request_id"] for call in calls)
        async with session.get(f"{base}/calls") as response:
            everything = await response.json()
        add_call = everything[-1]
        assert (add_call["action"], add_call["secret_id"]) == ("AddUserDevice", SECRET_ID)
        assert add_call["params"]["Password"] == "***" and add_call["params"]["Ip"] == "192.168.1.64"

        async with session.delete(f"{base}/calls") as response:
            assert response.status == 200
        async with session.delete(f"{base}/faults") as response:
            assert response.status == 200
        async with session.get(f"{base}/calls") as response:
            assert await response.json() == []
    assert cloud.faults() == []


async def test_call_log_shows_no_writes_in_a_read_only_loop(cloud: CloudEmulator, iss: IssSdk) -> None:
    await add_camera(iss)
    cloud.clear_calls()
    for _ in range(3):
        await iss.call("ListGatewayDevices", GatewayId=seeds.GATEWAY_ID)
    writes = [record for record in cloud.calls() if not record.action.startswith(("List", "Describe"))]
    assert (len(cloud.calls()), writes) == (3, [])


async def test_device_state_endpoints(cloud: CloudEmulator, iss: IssSdk) -> None:
    nvr = await add_camera(iss, Type=2)
    base = f"{cloud.url}_emulator"
    report = {
        "GatewayId": seeds.GATEWAY_ID,
        "Ip": "192.168.1.64",
        "Port": 80,
        "Channels": [{"Name": "c1", "PTZType": 1, "ChannelCode": "VS1", "Status": 1}, {"Name": "c2"}],
    }
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/channel-reports", json=report) as response:
            assert (response.status, await response.json()) == (200, {"UpdatedDeviceIds": [nvr["DeviceId"]]})
        bad_reports: list[dict[str, Any]] = [
            {**report, "Channels": [{"Name": ""}]},
            {**report, "Ip": "x"},
            {"Channels": []},
            {**report, "Channels": "c"},
        ]
        for bad in bad_reports:
            async with session.post(f"{base}/channel-reports", json=bad) as response:
                assert response.status == 400, bad
        async with session.post(
            f"{base}/channel-reports", json={"DeviceId": "0-0-0-0-0", "Channels": []}
        ) as response:
            assert response.status == 404
        async with session.put(
            f"{base}/devices/{nvr['DeviceId']}/connection", json={"Status": 2}
        ) as response:
            assert response.status == 200
        async with session.put(f"{base}/devices/0-0-0-0-0/connection", json={"Status": 2}) as response:
            assert response.status == 404
        channels = (await iss.call("DescribeDeviceChannel", DeviceId=nvr["DeviceId"]))["Data"]
        assert [(item["Name"], item["PTZType"], item["State"], item["Status"]) for item in channels] == [
            ("c1", 1, 0, 1),
            ("c2", 0, 0, 0),
        ]
        assert channels[0]["ChannelCode"] == "VS1"
        async with session.put(f"{base}/gateways/{seeds.GATEWAY_ID}/status", json={"Status": 1}) as response:
            assert response.status == 200
        assert (await iss.call("DescribeUserDevice", DeviceId=nvr["DeviceId"]))["Data"]["Status"] == 1
        async with session.put(f"{base}/gateways/{seeds.GATEWAY_ID}/status", json={"Status": 7}) as response:
            assert response.status == 400
        async with session.put(f"{base}/rate-limit", json={"PerSecond": 1}) as response:
            assert response.status == 200
        await iss.call("DescribeOrganization")
        assert (await sdk_failure(iss, "DescribeOrganization", {})).code == "RequestLimitExceeded"
        async with session.put(f"{base}/rate-limit", json={"PerSecond": 0}) as response:
            assert response.status == 400


# -- lifecycle ----------------------------------------------------------------------------


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    state_dir = tmp_path / "cloud"
    async with CloudEmulator(state_dir, SECRET_ID, SECRET_KEY) as cloud:
        iss = IssSdk(cloud.endpoint)
        extra_gateway = await cloud.add_gateway("site-b")
        await cloud.report_channels(
            [ReportedChannel("a"), ReportedChannel("b")], gateway_id=extra_gateway, ip="10.1.1.1", port=554
        )
        nvr = await add_camera(iss, Type=2, GatewayId=extra_gateway, Ip="10.1.1.1", Port=554)
        channels_before = await channel_ids(iss, nvr["DeviceId"])
        template = (
            await iss.call(
                "AddRecordTemplate",
                TemplateName="t",
                TimeSections=[{"DayOfWeek": 1, "StartTime": "00:00:00", "EndTime": "01:00:00"}],
            )
        )["Data"]
        plan = (
            await iss.call(
                "AddRecordPlan",
                PlanName="p",
                TemplateId=template["TemplateId"],
                LifeCycle={"Transition": 7, "Expiration": 0},
                OrganizationId=["100"],
            )
        )["Data"]

    async with CloudEmulator(state_dir, SECRET_ID, SECRET_KEY) as cloud:
        iss = IssSdk(cloud.endpoint)
        assert (await iss.call("DescribeUserDevice", DeviceId=nvr["DeviceId"]))["Data"][
            "GatewayId"
        ] == extra_gateway
        assert await channel_ids(iss, nvr["DeviceId"]) == channels_before
        assert (await iss.call("DescribeRecordPlan", PlanId=plan["PlanId"]))["Data"]["ChannelCount"] == 2
        assert (await iss.call("DescribeRecordTemplate", TemplateId=template["TemplateId"]))["Data"][
            "TemplateName"
        ] == "t"
        assert len((await iss.call("DescribeOrganization"))["Data"]) == 2  # seeded once only
        assert (await iss.raw("ListGateways"))["Data"]["TotalCount"] == 2
        # New ids keep their order after the restart.
        late = await add_camera(iss, Ip="10.1.1.2")
        listed = (await iss.call("ListDevices", OrganizationId="100"))["Data"]
        assert [item["DeviceId"] for item in listed] == [nvr["DeviceId"], late["DeviceId"]]


async def test_unseeded_emulator_is_empty(tmp_path: Path) -> None:
    async with CloudEmulator(tmp_path / "cloud", SECRET_ID, SECRET_KEY, seed=False) as cloud:
        iss = IssSdk(cloud.endpoint)
        assert (await iss.call("DescribeOrganization"))["Data"] == []
        assert (await iss.raw("ListGateways"))["Data"] == {"List": [], "TotalCount": 0}


async def test_listens_on_loopback_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        CloudEmulator(tmp_path, SECRET_ID, SECRET_KEY, host="0.0.0.0")
    async with CloudEmulator(tmp_path / "a", SECRET_ID, SECRET_KEY) as cloud:
        assert cloud.endpoint.startswith("127.0.0.1:") and cloud.url == f"http://{cloud.endpoint}/"
        await cloud.close()
        await cloud.close()  # idempotent


async def _start_process(*arguments: str) -> asyncio.subprocess.Process:
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sim.cloud",
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
        cwd=REPO_ROOT,
    )


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_command_line_process(tmp_path: Path, stop_signal: signal.Signals) -> None:
    process = await _start_process(
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        str(tmp_path / "cloud"),
        "--secret-id",
        SECRET_ID,
        "--secret-key",
        SECRET_KEY,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), PROCESS_TIMEOUT_SECONDS)
        ready = json.loads(line)
        assert ready["event"] == "ready" and ready["endpoint"].startswith("127.0.0.1:")
        iss = IssSdk(ready["endpoint"])
        assert (await iss.call("DescribeDeviceRegion"))["Data"]
        process.send_signal(stop_signal)
        assert await asyncio.wait_for(process.wait(), PROCESS_TIMEOUT_SECONDS) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0


async def test_command_line_refuses_a_non_loopback_address(tmp_path: Path) -> None:
    process = await _start_process(
        "--listen",
        "0.0.0.0:0",
        "--state-dir",
        str(tmp_path / "cloud"),
        "--secret-id",
        "a",
        "--secret-key",
        "b",
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), PROCESS_TIMEOUT_SECONDS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 1
    assert b"loopback" in stderr
