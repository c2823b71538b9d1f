"""Snapshot storage and retention, the ListDeviceSnapshots window, and the RTSP keyframe fallback."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import av
import pytest

from bridges.errors import DeviceTimeout, DeviceUnreachable
from gateway.iss.errors import IssError
from gateway.snapshots import (
    FILE_NAME_RE,
    ROW_KEEP_SECONDS,
    SnapshotArchive,
    grab_keyframe_jpeg,
    page_bounds,
    snapshot_file_name,
    snapshot_window,
    with_credentials,
)
from gateway.store import StateStore
from tests.sim.conftest import StartRtspSource, rtsp_clip_cache, start_rtsp_source  # noqa: F401 - fixtures

CHANNEL = "2f6b1b9e-0000-4000-8000-00000000beef"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2025, 2, 26, 16, 58, 30, tzinfo=SHANGHAI).timestamp()
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100


@pytest.fixture
async def archive(tmp_path: Path) -> AsyncIterator[SnapshotArchive]:
    async with StateStore(tmp_path) as store:
        yield SnapshotArchive(store, tmp_path / "snapshots", max_per_channel=3)


async def add(archive: SnapshotArchive, created: float, *, session: str = "req-1", shot: int = 1, days: int = 7) -> str:
    record = await archive.add(
        CHANNEL, session, JPEG, "onvif", shot=shot, created_at=created, received_at=created + 0.2,
        expires_at=created + days * 86400,
    )
    return record.file_name


def test_file_names_sort_by_time_and_stay_inside_the_directory(tmp_path: Path) -> None:
    name = snapshot_file_name(NOW, "74A881E8-0cd1-4e2b", 3)
    assert FILE_NAME_RE.match(name) and name.endswith("_74a881e80cd1_03.jpg")
    assert name < snapshot_file_name(NOW + 0.001, "74A881E8-0cd1-4e2b", 3)
    archive = SnapshotArchive(None, tmp_path, 1)  # type: ignore[arg-type]
    for channel, file_name in ((CHANNEL, "../gateway.sqlite3"), ("..", name), (CHANNEL, "x.jpg")):
        with pytest.raises(ValueError):
            archive.path_of(channel, file_name)


async def test_stored_images_are_listed_with_the_spec_fields(archive: SnapshotArchive) -> None:
    file_name = await add(archive, NOW)
    assert (archive.directory / CHANNEL / file_name).read_bytes() == JPEG
    page = await archive.page(CHANNEL, NOW - 1, NOW + 1, 0, 10)
    assert page.total == 1
    info = page.records[0].snap_info(SHANGHAI, "https://d", "https://p")
    assert info == {
        "FileName": file_name, "DownloadUrl": "https://d", "ImageSize": len(JPEG),
        "CreatedTime": "2025-02-26 16:58:30", "ReceivedTime": "2025-02-26 16:58:30",
        "PreviewUrl": "https://p", "SessionId": "req-1",
    }
    assert list((archive.directory / CHANNEL).iterdir()) == [archive.directory / CHANNEL / file_name], "no partial file"


async def test_a_channel_keeps_at_most_its_limit_oldest_deleted_first(archive: SnapshotArchive) -> None:
    names = [await add(archive, NOW + i, shot=i + 1) for i in range(5)]
    page = await archive.page(CHANNEL, NOW - 1, NOW + 10, 0, 10)
    assert [r.file_name for r in page.records] == names
    assert [r.available for r in page.records] == [False, False, True, True, True]
    assert sorted(p.name for p in (archive.directory / CHANNEL).iterdir()) == names[2:]
    info = page.records[0].snap_info(SHANGHAI, "https://d", "https://p")
    assert (info["DownloadUrl"], info["PreviewUrl"]) == ("", ""), "an expired image is listed with empty URLs"


async def test_expired_images_are_swept_and_their_rows_forgotten_later(archive: SnapshotArchive) -> None:
    short = await add(archive, NOW, days=7, shot=1)
    long = await add(archive, NOW, days=30, shot=2)
    assert await archive.sweep(NOW + 7 * 86400 - 1) == 0
    assert await archive.sweep(NOW + 7 * 86400) == 1
    assert not (archive.directory / CHANNEL / short).exists() and (archive.directory / CHANNEL / long).exists()
    record = await archive.find(CHANNEL, short)
    assert record is not None and not record.available
    await archive.sweep(NOW + 7 * 86400 + ROW_KEEP_SECONDS)
    assert await archive.find(CHANNEL, short) is None
    assert (await archive.page(CHANNEL, NOW - 1, NOW + 1, 0, 10)).total == 1


async def test_pages(tmp_path: Path) -> None:
    async with StateStore(tmp_path) as store:
        await _pages(SnapshotArchive(store, tmp_path / "snapshots", max_per_channel=100))


async def _pages(archive: SnapshotArchive) -> None:
    names = [await add(archive, NOW + i, shot=i + 1) for i in range(7)]
    first = await archive.page(CHANNEL, NOW, NOW + 6, *page_bounds(1, 3))
    third = await archive.page(CHANNEL, NOW, NOW + 6, *page_bounds(3, 3))
    assert first.total == third.total == 7
    assert [r.file_name for r in first.records] == names[:3] and [r.file_name for r in third.records] == names[6:]
    assert (await archive.page(CHANNEL, NOW + 2, NOW + 3, 0, 10)).total == 2, "both ends included"


def test_the_default_window_is_the_sites_today() -> None:
    start, end = snapshot_window(None, None, NOW, SHANGHAI)
    assert dt.datetime.fromtimestamp(start, SHANGHAI) == dt.datetime(2025, 2, 26, tzinfo=SHANGHAI)
    assert end == pytest.approx(dt.datetime(2025, 2, 27, tzinfo=SHANGHAI).timestamp(), abs=0.001)
    assert snapshot_window(1740544738, 1740573538, NOW, SHANGHAI)[0] == 1740544738


@pytest.mark.parametrize(
    ("start", "end", "code"),
    [
        (int(NOW) + 1, None, "InvalidParameterValue.StartOverNowTime"),
        (int(NOW) - 10, int(NOW) - 20, "InvalidParameterValue.StartOverEndTime"),
    ],
)
def test_window_errors(start: int, end: int | None, code: str) -> None:
    with pytest.raises(IssError) as refused:
        snapshot_window(start, end, NOW, SHANGHAI)
    assert refused.value.code == code


def test_page_bounds() -> None:
    assert page_bounds(1, 200) == (0, 200) and page_bounds(3, 2000) == (4000, 2000)
    for size, code in ((2001, "InvalidParameterValue.PageSizeExceedLimit"), (0, "InvalidParameterValue.InvalidPageSize")):
        with pytest.raises(IssError) as refused:
            page_bounds(1, size)
        assert refused.value.code == code


def test_stream_credentials() -> None:
    assert with_credentials("rtsp://10.0.0.5:554/ch1", "admin", "p@ss:word") == "rtsp://admin:p%40ss%3Aword@10.0.0.5:554/ch1"
    assert with_credentials("rtsp://viewer:x@10.0.0.5/ch1", "admin", "y") == "rtsp://viewer:x@10.0.0.5/ch1"
    assert with_credentials("rtsp://10.0.0.5/ch1", "", "") == "rtsp://10.0.0.5/ch1"


async def test_a_keyframe_of_the_stream_becomes_a_jpeg(start_rtsp_source: StartRtspSource) -> None:  # noqa: F811
    source = await start_rtsp_source(["cam"])
    started = time.monotonic()
    image = await asyncio.to_thread(grab_keyframe_jpeg, source.url("cam"), 5.0, "127.0.0.1", "cam")
    assert time.monotonic() - started < 5.0
    with av.open(io.BytesIO(image), "r", format="image2pipe") as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (320, 240) and image[:2] == b"\xff\xd8"


async def test_an_unreachable_or_silent_stream_fails_in_bounded_time() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(DeviceUnreachable) as refused:
        await asyncio.to_thread(grab_keyframe_jpeg, f"rtsp://admin:secret@127.0.0.1:{port}/x", 2.0, "127.0.0.1", "cam")
    assert "secret" not in str(refused.value)

    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(DeviceTimeout):
            await asyncio.to_thread(grab_keyframe_jpeg, f"rtsp://127.0.0.1:{silent.getsockname()[1]}/x", 1.0, "127.0.0.1", "cam")
        assert time.monotonic() - started < 3.0
