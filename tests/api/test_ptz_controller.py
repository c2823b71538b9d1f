"""The PTZ step controller against a simulated camera through a real ``CameraSession``.

The camera's motors run on a fake monotonic clock (so the ONVIF move Timeout can be observed
without waiting); the controller's step timer runs on real time with short steps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from bridges.errors import DeviceRequestRejected
from bridges.onvif.models import DeviceAddress
from bridges.onvif.session import CameraSession
from gateway.inventory import ChannelRecord
from gateway.ptz import MOVE_TIMEOUT_MARGIN_S, PtzController, StepKind, velocity
from sim.onvif import OnvifDeviceServer
from tests.sim.onvif_fixtures import PASSWORD, USERNAME, FakeMonotonicClock, camera_description

STEP = 0.2
WAIT = 5.0


@dataclass
class Camera:
    device: OnvifDeviceServer
    session: CameraSession
    channel: ChannelRecord
    clock: FakeMonotonicClock

    async def requested(self, key: str, count: int) -> None:
        await asyncio.wait_for(self.device.wait_for_request(key, count), WAIT)

    def count(self, key: str) -> int:
        return self.device.request_counts[key]


def channel_record(token: str) -> ChannelRecord:
    return ChannelRecord("mac:test", token, 1, None, "cam", "", "", "", "", True, True, "online")


@pytest.fixture
async def camera() -> AsyncIterator[Camera]:
    clock = FakeMonotonicClock()
    async with (
        OnvifDeviceServer(camera_description(), host="127.0.0.1", port=0, clock=clock) as device,
        CameraSession(DeviceAddress("127.0.0.1", device.port), USERNAME, PASSWORD) as session,
    ):
        description = await session.describe()
        yield Camera(device, session, channel_record(description.channels[0].source_token), clock)


@pytest.fixture
async def controller() -> AsyncIterator[PtzController]:
    controller = PtzController(step_seconds=STEP, command_timeout=2.0)
    yield controller
    await controller.close()


def test_speed_maps_linearly_onto_the_velocity_space() -> None:
    assert [velocity(speed) for speed in (1, 4, 8)] == [0.125, 0.5, 1.0]


async def test_a_step_answers_at_once_and_stops_one_step_later(camera: Camera, controller: PtzController) -> None:
    started = time.monotonic()
    await controller.execute(camera.session, "mac:test", camera.channel, "rightup", 4)
    assert time.monotonic() - started < STEP
    assert camera.count("ptz.ContinuousMove") == 1 and camera.count("ptz.Stop") == 0
    head = camera.device.state.ptz[0]
    assert (head.pan.velocity, head.tilt.velocity, head.zoom.velocity) == (0.5, 0.5, 0.0)
    await camera.requested("ptz.Stop", 1)
    assert time.monotonic() - started >= STEP
    assert not head.pan_tilt_moving()
    assert controller.stepper("mac:test", camera.channel.source_token).moving is None


async def test_the_move_carries_a_safety_timeout(camera: Camera) -> None:
    controller = PtzController(step_seconds=3, command_timeout=2.0)
    await controller.execute(camera.session, "mac:test", camera.channel, "right", 1)
    head = camera.device.state.ptz[0]
    camera.clock.advance(3 + MOVE_TIMEOUT_MARGIN_S - 0.1)
    assert head.pan_tilt_moving()
    camera.clock.advance(0.2)
    assert not head.pan_tilt_moving(), "a camera honouring Timeout stops even if our Stop never comes"
    await controller.close()
    assert camera.count("ptz.Stop") == 1


async def test_a_new_motion_replaces_the_step_without_a_stop(camera: Camera, controller: PtzController) -> None:
    await controller.execute(camera.session, "mac:test", camera.channel, "left", 8)
    await controller.execute(camera.session, "mac:test", camera.channel, "down", 2)
    assert camera.count("ptz.Stop") == 0 and camera.count("ptz.ContinuousMove") == 2
    head = camera.device.state.ptz[0]
    assert (head.pan.velocity, head.tilt.velocity) == (0.0, -0.25)
    await camera.requested("ptz.Stop", 1)
    await asyncio.sleep(STEP * 1.5)
    assert camera.count("ptz.Stop") == 1, "the first step's timer was called off"


async def test_focus_after_motion_stops_the_motion_first(camera: Camera, controller: PtzController) -> None:
    await controller.execute(camera.session, "mac:test", camera.channel, "right", 8)
    started = time.monotonic()
    await controller.execute(camera.session, "mac:test", camera.channel, "focusnear", 8)
    assert camera.count("ptz.Stop") == 1, "the pan step ended at once"
    assert time.monotonic() - started < STEP
    stepper = controller.stepper("mac:test", camera.channel.source_token)
    assert stepper.moving is StepKind.FOCUS
    await camera.requested("imaging.Stop", 1)
    assert camera.count("imaging.Move") == 1


async def test_an_iris_notch_leaves_a_running_step_alone(camera: Camera, controller: PtzController) -> None:
    imaging = camera.device.imaging(0)
    await controller.execute(camera.session, "mac:test", camera.channel, "up", 8)
    await controller.execute(camera.session, "mac:test", camera.channel, "irisout", 8)
    assert camera.count("ptz.Stop") == 0
    assert imaging.iris == pytest.approx(-22.0 / 8) and imaging.exposure_mode == "MANUAL"
    await controller.execute(camera.session, "mac:test", camera.channel, "irisin", 4)
    assert imaging.iris == pytest.approx(-22.0 / 16)
    await camera.requested("ptz.Stop", 1)


async def test_close_stops_what_still_moves(camera: Camera) -> None:
    controller = PtzController(step_seconds=30, command_timeout=2.0)
    await controller.execute(camera.session, "mac:test", camera.channel, "focusfar", 1)
    await controller.close()
    assert camera.count("imaging.Stop") == 1
    with pytest.raises(RuntimeError):
        await controller.execute(camera.session, "mac:test", camera.channel, "up", 1)


async def test_a_refused_command_schedules_no_stop(camera: Camera, controller: PtzController) -> None:
    channel = ChannelRecord("mac:test", "VideoSource_9", 1, None, "cam", "", "", "", "", True, True, "online")
    with pytest.raises(DeviceRequestRejected):
        await controller.execute(camera.session, "mac:test", channel, "up", 1)
    assert controller.stepper("mac:test", "VideoSource_9").moving is None


async def test_a_move_that_times_out_is_still_stopped(camera: Camera, controller: PtzController) -> None:
    async def late() -> None:
        await asyncio.sleep(10)

    stepper = controller.stepper("mac:test", camera.channel.source_token)
    stopped = asyncio.Event()

    async def stop() -> None:
        stopped.set()

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await stepper.step(StepKind.MOTION, late, stop)
    await asyncio.wait_for(stopped.wait(), WAIT)
