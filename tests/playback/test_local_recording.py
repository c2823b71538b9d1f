"""Local-recording actions through the official SDK against the local API, on made-up recordings.

Covers the timeline (a gap splits it), PlayRecord streaming across a segment boundary,
ControlRecord (seek, speed, pause/play, stop), download tasks (one MP4 of three minutes from
four segments, progress, signed links), DescribeVideoBitRate, and the documented error codes.
"""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import aiohttp
import av
import pytest

from gateway.daemon import Gateway
from gateway.export import TaskStatus
from tests.api.conftest import LocalApiSdk
from tests.playback.conftest import SEGMENT_SECONDS, WAIT_SECONDS, Recordings, add_channel

pytestmark = pytest.mark.asyncio(loop_scope="module")

HOUR = 3600
PAUSE_SEGMENTS = 16


def base_time() -> int:
    """A whole minute an hour ago: footage must lie in the past."""
    return (int(time.time()) - HOUR) // 60 * 60


async def fetch(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.read()


def video_seconds(data: bytes) -> tuple[float, int]:
    """(first-to-last frame span + one frame, decoded frame count) of an MP4 in memory."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        times = [float(frame.time) for frame in container.decode(stream) if frame.time is not None]
    assert times, "no frame decoded"
    step = (times[-1] - times[0]) / max(1, len(times) - 1)
    return times[-1] - times[0] + step, len(times)


async def test_timeline_shows_a_gap_as_two_spans(gateway: Gateway, recordings: Recordings, sdk: LocalApiSdk) -> None:
    channel = await add_channel(gateway)
    t0 = base_time()
    for start in (t0, t0 + 60, t0 + 300):
        await recordings.add(channel, start)
    response = await sdk.call("ControlRecordTimeline", ChannelId=channel, Start=t0 - 10, End=t0 + 400)
    assert response["Data"] == [{"Begin": t0, "End": t0 + 120}, {"Begin": t0 + 300, "End": t0 + 360}]
    empty = await sdk.call("ControlRecordTimeline", ChannelId=channel, Start=t0 + 130, End=t0 + 290)
    assert empty["Data"] is None


async def test_play_record_streams_a_range_across_a_segment_boundary(
    gateway: Gateway, recordings: Recordings, sdk: LocalApiSdk
) -> None:
    channel = await add_channel(gateway)
    t0 = base_time()
    await recordings.add(channel, t0)
    await recordings.add(channel, t0 + SEGMENT_SECONDS)
    response = await sdk.call("PlayRecord", ChannelId=channel, Start=t0 + 50, End=t0 + 70)
    url = response["Data"]["Flv"]
    assert f"/live/{channel}@" in url
    status, body = await fetch(url)
    assert status == 200
    seconds, frames = video_seconds(body)
    assert abs(seconds - 20) <= 1, seconds
    assert frames >= 19 * 4


async def test_control_record_seek_speed_pause_play_and_stop(
    gateway: Gateway, recordings: Recordings, sdk: LocalApiSdk
) -> None:
    channel = await add_channel(gateway)
    t0 = base_time()
    await recordings.add(channel, t0)
    url = (await sdk.call("PlayRecord", ChannelId=channel, Start=t0, End=t0 + 40))["Data"]["Flv"]
    session = url.split("@", 1)[1].split(".", 1)[0]
    # Seek: the next read starts 30 s in, so 10 s remain.
    await sdk.call("ControlRecord", ChannelId=channel, Session=session, ControlAction="play", Position=30)
    seconds, _ = video_seconds((await fetch(url))[1])
    assert abs(seconds - 10) <= 1, seconds
    # Speed: 2x plays the remaining 10 s of footage in 5 s.
    await sdk.call("ControlRecord", ChannelId=channel, Session=session, ControlAction="play", Scale=2)
    seconds, _ = video_seconds((await fetch(url))[1])
    assert abs(seconds - 5) <= 0.6, seconds
    # Pause: reads are refused until play.
    await sdk.call("ControlRecord", ChannelId=channel, Session=session, ControlAction="pause")
    assert (await fetch(url))[0] == 409
    await sdk.call("ControlRecord", ChannelId=channel, Session=session, ControlAction="play")
    assert (await fetch(url))[0] == 200
    # Stop: the session and its URL are gone.
    await sdk.call("ControlRecord", ChannelId=channel, Session=session, ControlAction="stop")
    assert (await fetch(url))[0] == 404
    again = await sdk.error("ControlRecord", {"ChannelId": channel, "Session": session, "ControlAction": "play"})
    assert again == "ResourceNotFound.StreamNotExistOrClose"


async def test_pause_ends_a_stream_in_progress_and_play_resumes_where_it_stopped(
    gateway: Gateway, recordings: Recordings, sdk: LocalApiSdk
) -> None:
    channel = await add_channel(gateway)
    t0 = base_time()
    # More footage than loopback socket buffers hold, so the remux is still running at the pause.
    for offset in range(0, PAUSE_SEGMENTS * SEGMENT_SECONDS, SEGMENT_SECONDS):
        await recordings.add(channel, t0 + offset)
    end = t0 + PAUSE_SEGMENTS * SEGMENT_SECONDS
    url = (await sdk.call("PlayRecord", ChannelId=channel, Start=t0, End=end))["Data"]["Flv"]
    session_id = url.split("@", 1)[1].split(".", 1)[0]
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        assert response.status == 200
        await response.content.readexactly(1024)  # the stream is running; the player reads slowly
        await sdk.call("ControlRecord", ChannelId=channel, Session=session_id, ControlAction="pause")
        async with asyncio.timeout(WAIT_SECONDS):
            await response.read()  # the server ends the response
    session = gateway.local_recordings.sessions.get(session_id)
    assert session is not None and session.paused and not session.streams
    assert 0 < session.position < end - t0


async def test_export_of_three_minutes_over_four_segments_is_one_mp4(
    gateway: Gateway, recordings: Recordings, sdk: LocalApiSdk
) -> None:
    channel = await add_channel(gateway, "yard")
    t0 = base_time()
    for offset in range(0, 4 * SEGMENT_SECONDS, SEGMENT_SECONDS):
        await recordings.add(channel, t0 + offset)
    created = await sdk.call("CreateVideoDownloadTask", ChannelId=channel, BeginTime=t0 + 30, EndTime=t0 + 210)
    task_id = created["Data"]["DownloadTaskId"]
    index = gateway.recording_index
    assert index is not None
    segments = await index.segments_between(channel, t0, t0 + 240)
    assert [segment.pins for segment in segments] == [1, 1, 1, 1]  # all four overlap the range
    async with asyncio.timeout(60):
        task = await gateway.local_recordings.exports.wait_finished(task_id)
    assert task.status is TaskStatus.COMPLETED, task.failure
    assert task.progress == 100
    assert [segment.pins for segment in await index.segments_between(channel, t0, t0 + 240)] == [0, 0, 0, 0]

    listed = await sdk.call("ListVideoDownloadTask", DownloadTaskId=task_id, WithPreviewUrl=1, UrlExpires=600)
    assert listed["Data"]["TotalCount"] == 1
    entry = listed["Data"]["List"][0]
    assert entry["Status"] == 2 and entry["ChannelName"] == "yard" and entry["VideoSize"] == task.size
    status, body = await fetch(entry["FileDownloadUrl"])
    assert status == 200 and len(body) == task.size
    seconds, _ = video_seconds(body)
    assert abs(seconds - 180) <= 1, seconds
    assert (await fetch(entry["PreviewUrl"]))[0] == 200

    tampered = entry["FileDownloadUrl"].replace("signature=", "signature=0")
    assert (await fetch(tampered))[0] == 403
    expired = gateway.local_recordings.export_url(task, lifetime=-5)
    assert (await fetch(expired))[0] == 403

    await sdk.call("BatchDeleteVideoDownloadTask", DownloadTaskIds=[task_id])
    assert (await sdk.call("ListVideoDownloadTask", DownloadTaskId=task_id))["Data"]["TotalCount"] == 0
    assert not task.path.exists()


async def test_an_export_that_must_be_complete_fails_on_a_gap(
    gateway: Gateway, recordings: Recordings, sdk: LocalApiSdk
) -> None:
    channel = await add_channel(gateway)
    t0 = base_time()
    await recordings.add(channel, t0)
    await recordings.add(channel, t0 + 120)
    strict = await sdk.call(
        "CreateVideoDownloadTask", ChannelId=channel, BeginTime=t0 + 30, EndTime=t0 + 150, CompletionPolicy=0
    )
    lenient = await sdk.call(
        "CreateVideoDownloadTask", ChannelId=channel, BeginTime=t0 + 30, EndTime=t0 + 150, CompletionPolicy=1
    )
    exports = gateway.local_recordings.exports
    async with asyncio.timeout(60):
        failed = await exports.wait_finished(strict["Data"]["DownloadTaskId"])
        done = await exports.wait_finished(lenient["Data"]["DownloadTaskId"])
    assert failed.status is TaskStatus.FAILED and "incomplete" in failed.failure
    assert done.status is TaskStatus.COMPLETED
    listed = await sdk.call("ListVideoDownloadTask", Status=3, DownloadTaskId=failed.task_id)
    assert listed["Data"]["List"][0]["FailedReason"] == failed.failure


async def test_bit_rate_from_known_byte_counts(gateway: Gateway, recordings: Recordings, sdk: LocalApiSdk) -> None:
    first, second, idle = [await add_channel(gateway) for _ in range(3)]
    now = time.time()
    await recordings.add(first, now - 130, size=750_000)  # 6 Mbit over 60 s = 100 kbps
    await recordings.add(first, now - 70, size=1_500_000)  # 12 Mbit over 60 s = 200 kbps
    await recordings.add(second, now - 65, size=375_000)  # 50 kbps
    response = await sdk.call("DescribeVideoBitRate", ChannelIds=[first, second, idle])
    assert response["Data"]["BitRates"] == [
        {"ChannelId": first, "Bitrate": 150.0},
        {"ChannelId": second, "Bitrate": 50.0},
        {"ChannelId": idle, "Bitrate": 0.0},
    ]


UNKNOWN_CHANNEL = "2f6b1b9e-0000-4000-8000-00000000dead"


def error_cases() -> list[Any]:
    """(action, params builder, code): ``c`` is a channel with footage, ``t`` its start."""
    now = 10**10
    cases: list[tuple[str, str, Any, str]] = []
    for action in ("ControlRecordTimeline", "PlayRecord"):
        cases += [
            (action, "start zero", lambda c, t: {"ChannelId": c, "Start": 0, "End": t}, "InvalidParameterValue.StartTimeZero"),
            (action, "end zero", lambda c, t: {"ChannelId": c, "Start": t, "End": 0}, "InvalidParameterValue.EndTimeZero"),
            (action, "start in future", lambda c, t: {"ChannelId": c, "Start": now, "End": now + 1}, "InvalidParameterValue.StartOverNowTime"),
            (action, "start after end", lambda c, t: {"ChannelId": c, "Start": t + 10, "End": t}, "InvalidParameterValue.StartOverEndTime"),
            (action, "start equals end", lambda c, t: {"ChannelId": c, "Start": t, "End": t}, "InvalidParameterValue.StartTimeGreaterThanOrEqualEndTime"),
            (action, "malformed channel", lambda c, t: {"ChannelId": "nope", "Start": t, "End": t + 10}, "InvalidParameterValue.InvalidChannelId"),
            (action, "unknown channel", lambda c, t: {"ChannelId": UNKNOWN_CHANNEL, "Start": t, "End": t + 10}, "ResourceNotFound"),
        ]
    cases += [
        ("PlayRecord", "stream type and resolution", lambda c, t: {"ChannelId": c, "Start": t, "End": t + 10, "StreamType": 1, "Resolution": "6"}, "UnsupportedOperation.StreamTypeOrResolution"),
        ("PlayRecord", "no footage", lambda c, t: {"ChannelId": c, "Start": t - 600, "End": t - 300}, "ResourceNotFound"),
        ("ControlRecord", "scale and position", lambda c, t: {"ChannelId": c, "Session": "x", "ControlAction": "play", "Scale": 2, "Position": 1}, "UnsupportedOperation.ScaleAndPosBothExist"),
        ("ControlRecord", "scale not offered", lambda c, t: {"ChannelId": c, "Session": "x", "ControlAction": "play", "Scale": 3}, "InvalidParameterValue.UnSupportScale"),
        ("ControlRecord", "unknown session", lambda c, t: {"ChannelId": c, "Session": "x", "ControlAction": "play"}, "ResourceNotFound.StreamNotExistOrClose"),
        ("ControlRecord", "unknown action", lambda c, t: {"ChannelId": c, "Session": "x", "ControlAction": "rewind"}, "InvalidParameterValue"),
        ("ControlRecord", "negative position", lambda c, t: {"ChannelId": c, "Session": "x", "ControlAction": "play", "Position": -1}, "InvalidParameterValue"),
        ("ControlRecord", "malformed channel", lambda c, t: {"ChannelId": "nope", "Session": "x", "ControlAction": "play"}, "InvalidParameterValue.InvalidChannelId"),
        ("CreateVideoDownloadTask", "begin after end", lambda c, t: {"ChannelId": c, "BeginTime": t + 10, "EndTime": t}, "InvalidParameterValue"),
        ("CreateVideoDownloadTask", "scale not offered", lambda c, t: {"ChannelId": c, "BeginTime": t, "EndTime": t + 10, "Scale": 3}, "InvalidParameterValue"),
        ("CreateVideoDownloadTask", "no footage", lambda c, t: {"ChannelId": c, "BeginTime": t - 600, "EndTime": t - 300}, "ResourceNotFound"),
        ("CreateVideoDownloadTask", "unknown channel", lambda c, t: {"ChannelId": UNKNOWN_CHANNEL, "BeginTime": t, "EndTime": t + 10}, "ResourceNotFound"),
        ("ListVideoDownloadTask", "bad sort rule", lambda c, t: {"SortRule": "Name"}, "InvalidParameterValue"),
        ("ListVideoDownloadTask", "url expiry over a day", lambda c, t: {"UrlExpires": 86_401}, "InvalidParameterValue"),
        ("DescribeVideoBitRate", "unknown channel", lambda c, t: {"ChannelIds": [c, UNKNOWN_CHANNEL]}, "InvalidParameterValue.ContainInvalidChannelId"),
        ("DescribeVideoBitRate", "too many channels", lambda c, t: {"ChannelIds": [c] * 3001}, "LimitExceeded.ChannelNumExceeded"),
        ("DescribeVideoBitRate", "missing list", lambda c, t: {}, "MissingParameter"),
    ]
    return [pytest.param(action, build, code, id=f"{action}-{name}") for action, name, build, code in cases]


@pytest.mark.parametrize(("action", "build", "code"), error_cases())
async def test_documented_error_codes(
    gateway: Gateway, recordings: Recordings, sdk: LocalApiSdk, action: str, build: Any, code: str
) -> None:
    channel = await add_channel(gateway)
    t0 = base_time()
    await recordings.add(channel, t0)
    assert await sdk.error(action, build(channel, t0)) == code
