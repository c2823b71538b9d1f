"""Fixtures for the local-recording tests: recordings made in seconds, and a gateway serving them.

Recording real minutes takes minutes, so segments are *made*: one fragmented MP4 of
``SEGMENT_SECONDS`` is encoded once per session with PyAV (64x48, a few frames per second, one
keyframe per second, the recorder's muxer flags, timestamps from 0 as the recorder rebases them)
and copied into the recorder's layout under any start time, then indexed with the gateway's own
``RecordingIndex``.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import uuid
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path

import av
import pytest
import pytest_asyncio

from bridges.media.events import SegmentInfo
from bridges.media.segment_path import SegmentName
from bridges.media.writer import MOVFLAGS
from bridges.onvif.models import ChannelDescription, DeviceAddress, DeviceDescription, DeviceKind
from gateway.daemon import Gateway
from tests.api.conftest import LocalApiSdk, write_config
from tests.integration.conftest import running_gateway

SEGMENT_SECONDS = 60
FRAME_RATE = 4
WAIT_SECONDS = 20.0


def encode_segment(path: Path, seconds: int = SEGMENT_SECONDS) -> None:
    """A fragmented H.264 MP4 of ``seconds`` of noise, a keyframe every second."""
    with av.open(str(path), "w", format="mp4", options={"movflags": MOVFLAGS}) as container:
        stream = container.add_stream("libx264", rate=FRAME_RATE)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.gop_size = FRAME_RATE
        stream.codec_context.options = {"bframes": "0", "preset": "ultrafast", "keyint_min": str(FRAME_RATE)}
        stream.codec_context.time_base = Fraction(1, FRAME_RATE)
        noise = random.Random(seconds)
        for number in range(seconds * FRAME_RATE):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane in frame.planes:
                # Noise compresses badly: about 1 MB a segment, enough to fill socket buffers.
                plane.update(noise.randbytes(plane.buffer_size))
            frame.pts = number
            frame.time_base = Fraction(1, FRAME_RATE)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.fixture(scope="session")
def segment_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("segment") / "template.mp4"
    encode_segment(path)
    return path


class Recordings:
    """Puts made-up segments on the gateway's disk and in its index."""

    def __init__(self, gateway: Gateway, template: Path) -> None:
        self.gateway = gateway
        self.template = template

    async def add(self, channel_id: str, start: float, seconds: float = SEGMENT_SECONDS, *, size: int | None = None) -> Path:
        """One segment of ``channel_id`` from ``start`` (the template, cut short by the index end)."""
        index = self.gateway.recording_index
        assert index is not None
        path = index.recordings_dir / SegmentName.at(channel_id, start).relative_path()
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.copyfile, self.template, path)
        info = SegmentInfo(channel_id, path, start, start + seconds, size or path.stat().st_size, "h264", False)
        assert await index.add_segment(info)
        return path


async def add_channel(gateway: Gateway, name: str = "lobby") -> str:
    """A device with one channel in the inventory (no camera needed: recordings outlive devices)."""
    identity = f"test-{uuid.uuid4().hex[:12]}"
    device = DeviceDescription(
        identity, DeviceKind.IPC, DeviceAddress("127.0.0.1", 1), manufacturer="Sim", model="Cam",
        channels=(ChannelDescription("source-1", 1, name),),
    )
    change = await gateway.inventory.upsert(device, name=f"{name} camera", username="admin")
    return change.record.channels[0].channel_id


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    config = write_config(tmp_path_factory.mktemp("gateway"))
    async with running_gateway(config) as running:
        yield running


@pytest.fixture
def recordings(gateway: Gateway, segment_template: Path) -> Recordings:
    return Recordings(gateway, segment_template)


@pytest.fixture
def sdk(gateway: Gateway) -> LocalApiSdk:
    return LocalApiSdk(f"127.0.0.1:{gateway.api_port}")
