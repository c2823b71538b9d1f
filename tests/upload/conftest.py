"""Fixtures for the recording upload tests: the cloud emulator with an upload plan, and a recording index.

Segments are *made*, not recorded: one short fragmented MP4 is encoded per session with the
playback tests' PyAV encoder and copied into the recorder's layout under chosen start times, then
entered in a real ``RecordingIndex`` on a real ``StateStore``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bridges.media.events import SegmentInfo
from bridges.media.segment_path import SegmentName
from gateway.iss.client import IssClient
from gateway.iss.signing import Tc3Signer
from gateway.recordings import RecordingIndex, Segment
from gateway.store import StateStore
from sim.cloud import CloudEmulator
from tests.cloud.conftest import REGION, SECRET_ID, SECRET_KEY, camera_params
from tests.playback.conftest import encode_segment

SITE_ZONE = ZoneInfo("Asia/Shanghai")
SEGMENT_SECONDS = 600
# Record Wednesday 00:00-01:00, upload it on Thursday 00:00-02:00 (the spec's example).
UPLOAD_SECTIONS = [{"DayOfWeek": 4, "StartTime": "00:00:00", "EndTime": "02:00:00"}]
DEVICE_SECTIONS = [{"DayOfWeek": 3, "StartTime": "00:00:00", "EndTime": "01:00:00"}]
WEDNESDAY = dt.date(2026, 11, 18)
THURSDAY = WEDNESDAY + dt.timedelta(days=1)


def local(day: dt.date, hour: int, minute: int = 0) -> float:
    """POSIX seconds of a wall-clock time at the site."""
    return dt.datetime.combine(day, dt.time(hour, minute), SITE_ZONE).timestamp()


@pytest.fixture(scope="session")
def segment_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("upload-segment") / "template.mp4"
    encode_segment(path, seconds=2)
    return path


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[CloudEmulator]:
    async with CloudEmulator(tmp_path / "cloud", SECRET_ID, SECRET_KEY) as emulator:
        yield emulator


@pytest.fixture
async def client(cloud: CloudEmulator) -> AsyncIterator[IssClient]:
    async with IssClient(f"http://{cloud.endpoint}", Tc3Signer(SECRET_ID, SECRET_KEY), region=REGION) as iss:
        yield iss


@dataclass(frozen=True)
class UploadSite:
    """A plan with one channel (``planned``) and a registered channel outside every plan."""

    plan_id: str
    planned: str
    unplanned: str


async def _camera_channel(client: IssClient, name: str, ip: str) -> dict[str, str]:
    """Register a camera behind the seed gateway; its first channel as an upload plan ``Channels`` item."""
    device = (await client.call("AddUserDevice", camera_params(Name=name, Ip=ip)))["Data"]
    channels = (await client.call("DescribeDeviceChannel", {"DeviceId": device["DeviceId"]}))["Data"]
    return {"DeviceId": device["DeviceId"], "ChannelId": channels[0]["ChannelId"]}


@pytest.fixture
async def site(client: IssClient) -> UploadSite:
    planned = await _camera_channel(client, "lobby", "192.168.1.64")
    unplanned = await _camera_channel(client, "yard", "192.168.1.65")
    template = await client.call(
        "AddRecordBackupTemplate",
        {
            "TemplateName": "nightly",
            "TimeSections": UPLOAD_SECTIONS,
            "DevTimeSections": DEVICE_SECTIONS,
            "Scale": 1,
        },
    )
    plan = await client.call(
        "AddRecordBackupPlan",
        {
            "TemplateId": template["Data"]["TemplateId"],
            "PlanName": "nightly-plan",
            "Describe": "nightly",
            "LifeCycle": {"Transition": 7, "Expiration": 0},
            "Channels": [planned],
        },
    )
    return UploadSite(plan["Data"]["PlanId"], planned["ChannelId"], unplanned["ChannelId"])


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    async with StateStore(tmp_path / "gateway") as opened:
        yield opened


@pytest.fixture
def index(store: StateStore, tmp_path: Path) -> RecordingIndex:
    return RecordingIndex(store, tmp_path / "recordings")


class Recordings:
    """Puts made-up segments on disk and in the index."""

    def __init__(self, index: RecordingIndex, template: Path) -> None:
        self.index = index
        self.template = template

    async def add(self, channel_id: str, start: float) -> Path:
        path = self.index.recordings_dir / SegmentName.at(channel_id, start).relative_path()
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.copyfile, self.template, path)
        size = (await asyncio.to_thread(path.stat)).st_size
        info = SegmentInfo(channel_id, path, start, start + SEGMENT_SECONDS, size, "h264", False)
        assert await self.index.add_segment(info)
        return path

    async def all_of(self, channel_id: str) -> list[Segment]:
        return await self.index.segments_between(channel_id, 0, 2**40)


@pytest.fixture
def recordings(index: RecordingIndex, segment_template: Path) -> Recordings:
    return Recordings(index, segment_template)
