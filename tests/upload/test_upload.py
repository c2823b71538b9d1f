"""Recording upload plans: due segments reach the emulator's receiver once each, failures resume."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.config import Duration, UploadSection
from gateway.iss.client import IssClient
from gateway.recordings import RecordingIndex
from gateway.schedule import TimeSection
from gateway.store import StateStore
from gateway.upload import (
    Backoff,
    PassResult,
    Uploader,
    UploadPlan,
    UploadPlanner,
    UploadService,
    due_windows,
)
from sim.cloud import CloudEmulator

from .conftest import SITE_ZONE, THURSDAY, WEDNESDAY, Recordings, UploadSite, local

BACKOFF = Backoff(base=30, ceiling=600)
UPLOAD_NOW = local(THURSDAY, 0, 30)
WAIT_SECONDS = 10.0


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


@pytest.fixture
async def planner(client: IssClient, site: UploadSite) -> UploadPlanner:
    planner = UploadPlanner(client, SITE_ZONE)
    await planner.refresh()
    return planner


def make_uploader(
    store: StateStore,
    index: RecordingIndex,
    session: aiohttp.ClientSession,
    cloud: CloudEmulator,
    concurrency: int = 2,
) -> Uploader:
    return Uploader(
        store,
        index,
        session,
        cloud.upload_url,
        concurrency=concurrency,
        timeout=10,
        backoff=BACKOFF,
        clock=lambda: UPLOAD_NOW,
    )


async def add_night(recordings: Recordings, site: UploadSite) -> tuple[list[Path], list[Path]]:
    """Wednesday's segments: (due ones, ones no plan section asks for)."""
    due = [await recordings.add(site.planned, local(WEDNESDAY, 0, minute)) for minute in (0, 10, 50)]
    not_due = [
        await recordings.add(site.planned, local(WEDNESDAY, 1, 30)),  # after the device section
        await recordings.add(site.planned, local(WEDNESDAY - dt.timedelta(days=1), 0, 20)),  # Tuesday
        await recordings.add(site.unplanned, local(WEDNESDAY, 0, 20)),  # a channel in no plan
    ]
    return due, not_due


def received_name(path: Path) -> str:
    return f"{path.parts[-4]}/{path.name}"


async def assert_received_once(cloud: CloudEmulator, paths: list[Path]) -> None:
    received = {upload.name: upload for upload in cloud.uploads()}
    assert sorted(received) == sorted(received_name(path) for path in paths)
    for path in paths:
        upload = received[received_name(path)]
        assert upload.times == 1
        original, stored = await asyncio.gather(
            asyncio.to_thread(path.read_bytes), asyncio.to_thread(cloud.upload_path(upload.name).read_bytes)
        )
        assert upload.bytes == len(original) and stored == original


async def pins_of(recordings: Recordings, channel_id: str) -> list[int]:
    return [segment.pins for segment in await recordings.all_of(channel_id)]


def test_due_windows_follow_the_previous_days_device_sections() -> None:
    plan = UploadPlan(
        "p",
        upload_sections=(
            TimeSection(1, 23 * 3600, 1800),
            TimeSection(4, 0, 7200),
        ),  # Mon 23:00-00:30, Thu 0-2
        device_sections=(TimeSection(7, 0, 3600), TimeSection(3, 0, 3600), TimeSection(3, 7200, 9000)),
        scale=1,
        channel_ids=("c",),
    )
    sunday = WEDNESDAY - dt.timedelta(days=3)
    monday = sunday + dt.timedelta(days=1)
    # Tuesday 00:10 is still inside Monday's section, which uploads Sunday.
    tuesday_early = local(monday + dt.timedelta(days=1), 0, 10)
    assert [(w.start, w.end) for w in due_windows(plan, tuesday_early, SITE_ZONE)] == [
        (local(sunday, 0), local(sunday, 1))
    ]
    assert [(w.start, w.end) for w in due_windows(plan, UPLOAD_NOW, SITE_ZONE)] == [
        (local(WEDNESDAY, 0), local(WEDNESDAY, 1)),
        (local(WEDNESDAY, 2), local(WEDNESDAY, 2, 30)),
    ]
    assert due_windows(plan, local(THURSDAY, 2), SITE_ZONE) == []  # the section's end is exclusive
    assert due_windows(plan, local(WEDNESDAY, 0, 30), SITE_ZONE) == []


async def test_planner_reads_the_plan_from_the_cloud(planner: UploadPlanner, site: UploadSite) -> None:
    plan = planner.plans[site.plan_id]
    assert plan.channel_ids == (site.planned,)
    assert (plan.upload_sections, plan.device_sections, plan.scale) == (
        (TimeSection(4, 0, 7200),),
        (TimeSection(3, 0, 3600),),
        1,
    )
    assert set(planner.due(UPLOAD_NOW)) == {site.plan_id}
    assert planner.due(local(THURSDAY, 3)) == {}


async def test_due_segments_arrive_once_and_pins_are_released(
    cloud: CloudEmulator,
    planner: UploadPlanner,
    site: UploadSite,
    store: StateStore,
    index: RecordingIndex,
    session: aiohttp.ClientSession,
    recordings: Recordings,
) -> None:
    due, _ = await add_night(recordings, site)

    assert await make_uploader(store, index, session, cloud).run_pass(planner) == PassResult(
        queued=3, uploaded=3
    )
    await assert_received_once(cloud, due)
    assert await pins_of(recordings, site.planned) == [0] * 5

    # A second pass, and a fresh uploader over the same database (a restart), send nothing again.
    assert await make_uploader(store, index, session, cloud).run_pass(planner) == PassResult()
    assert (
        await make_uploader(store, index, session, cloud).run_pass(planner, local(THURSDAY, 1))
        == PassResult()
    )
    await assert_received_once(cloud, due)
    rows = await store.fetchall("SELECT state, attempts, uploaded_at FROM uploads")
    assert [(row["state"], row["attempts"]) for row in rows] == [("uploaded", 1)] * 3
    assert all(row["uploaded_at"] == UPLOAD_NOW for row in rows)


async def test_nothing_is_queued_outside_the_upload_sections(
    cloud: CloudEmulator,
    planner: UploadPlanner,
    site: UploadSite,
    store: StateStore,
    index: RecordingIndex,
    session: aiohttp.ClientSession,
    recordings: Recordings,
) -> None:
    await add_night(recordings, site)
    uploader = make_uploader(store, index, session, cloud)
    assert await uploader.run_pass(planner, local(THURSDAY, 2, 30)) == PassResult()
    assert await uploader.run_pass(planner, local(WEDNESDAY, 0, 30)) == PassResult()
    assert cloud.uploads() == []
    assert await pins_of(recordings, site.planned) == [0] * 5


async def test_failed_uploads_are_retried_later_without_duplicates(
    cloud: CloudEmulator,
    planner: UploadPlanner,
    site: UploadSite,
    store: StateStore,
    index: RecordingIndex,
    session: aiohttp.ClientSession,
    recordings: Recordings,
) -> None:
    due, _ = await add_night(recordings, site)
    # aiohttp resends an idempotent PUT once after a dropped connection, so it takes two drops.
    cloud.inject_fault("Upload", drop=True, times=2)
    cloud.inject_fault("Upload", http_status=503, times=1)
    uploader = make_uploader(store, index, session, cloud, concurrency=1)

    assert await uploader.run_pass(planner) == PassResult(queued=3, uploaded=1, failed=2)
    assert [upload.name for upload in cloud.uploads()] == [received_name(due[2])]
    pins = await pins_of(recordings, site.planned)
    assert sorted(pins) == [0, 0, 0, 1, 1]  # the two still queued stay pinned
    errors = await store.fetchall(
        "SELECT last_error FROM uploads WHERE state = 'pending' ORDER BY segment_path"
    )
    assert errors[0]["last_error"].startswith("ServerDisconnected") and errors[1]["last_error"] == "HTTP 503"

    # Not before the backoff has passed; then resumed, each file still sent once.
    assert await uploader.run_pass(planner, UPLOAD_NOW + 10) == PassResult()
    assert await uploader.run_pass(planner, UPLOAD_NOW + BACKOFF.delay(1)) == PassResult(uploaded=2)
    await assert_received_once(cloud, due)
    assert await pins_of(recordings, site.planned) == [0] * 5
    attempts = await store.fetchall("SELECT attempts FROM uploads ORDER BY segment_path")
    assert [row["attempts"] for row in attempts] == [2, 2, 1]


async def test_a_vanished_file_is_given_up_and_unpinned(
    cloud: CloudEmulator,
    planner: UploadPlanner,
    site: UploadSite,
    store: StateStore,
    index: RecordingIndex,
    session: aiohttp.ClientSession,
    recordings: Recordings,
) -> None:
    due, _ = await add_night(recordings, site)
    await asyncio.to_thread(due[0].unlink)
    assert await make_uploader(store, index, session, cloud).run_pass(planner) == PassResult(
        queued=3, uploaded=2, missing=1
    )
    await assert_received_once(cloud, due[1:])
    assert await pins_of(recordings, site.planned) == [0] * 5


async def test_a_deleted_plan_releases_its_queue(
    cloud: CloudEmulator,
    client: IssClient,
    planner: UploadPlanner,
    site: UploadSite,
    store: StateStore,
    index: RecordingIndex,
    session: aiohttp.ClientSession,
    recordings: Recordings,
) -> None:
    await add_night(recordings, site)
    cloud.inject_fault("Upload", http_status=503)
    uploader = make_uploader(store, index, session, cloud)
    assert (await uploader.run_pass(planner)).failed == 3
    unknown = UploadPlanner(client, SITE_ZONE)  # never refreshed: the queue must survive it
    assert await uploader.run_pass(unknown, UPLOAD_NOW + 3600) == PassResult()
    await client.call("DeleteRecordBackupPlan", {"PlanId": site.plan_id})
    await planner.refresh()
    assert await uploader.run_pass(planner, UPLOAD_NOW + 3600) == PassResult(abandoned=3)
    assert await pins_of(recordings, site.planned) == [0] * 5
    assert cloud.uploads() == []


async def test_service_uploads_in_the_background_and_closes(
    cloud: CloudEmulator,
    client: IssClient,
    site: UploadSite,
    store: StateStore,
    index: RecordingIndex,
    recordings: Recordings,
) -> None:
    due, _ = await add_night(recordings, site)
    config = UploadSection(url=cloud.upload_url, timeout=Duration(10), concurrency=2)
    service = UploadService(
        config, client, store, index, SITE_ZONE, pass_interval=0.05, clock=lambda: UPLOAD_NOW
    )
    await service.start()
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while len(cloud.uploads()) < len(due):
                await asyncio.sleep(0.02)
    finally:
        await service.close()
    await service.close()  # idempotent
    await assert_received_once(cloud, due)


async def test_service_is_off_without_a_url(
    cloud: CloudEmulator, client: IssClient, store: StateStore, index: RecordingIndex
) -> None:
    service = UploadService(UploadSection(), client, store, index, SITE_ZONE)
    await service.start()
    assert service.uploader is None
    await service.close()
    assert cloud.calls("ListRecordBackupPlans") == []
