"""``ivc-gateway doctor``: check what a site box needs, say what to do about each failure.

Each check returns PASS, WARN or FAIL with one line of evidence and, when not passing, the fix a
technician should try. The command exits 1 when anything FAILs, so it can gate an installation.
"""

from __future__ import annotations

import asyncio
import enum
import os
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import aiohttp

from bridges.onvif.discovery import DeviceFinder
from bridges.onvif.models import DeviceFault

from .config import Config
from .devices import DeviceManager
from .iss.client import IssClient, RetryPolicy
from .iss.errors import IssError, IssTransportError
from .iss.signing import Tc3Signer

WRITE_TEST_BYTES = 32 * 1024 * 1024
MIN_WRITE_MB_S = 10.0
MAX_CLOCK_SKEW_S = 60.0


class Verdict(enum.StrEnum):
    """How a check came out."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of the doctor's report."""

    name: str
    verdict: Verdict
    evidence: str
    fix: str = ""

    def render(self) -> str:
        """``PASS  name: evidence`` plus ``fix:`` on the next line when there is one."""
        line = f"{self.verdict.value:<5} {self.name}: {self.evidence}"
        return f"{line}\n      fix: {self.fix}" if self.fix and self.verdict is not Verdict.PASS else line


FAULT_FIXES = {
    DeviceFault.AUTH_FAILED: "the user name or password is wrong: set them in [[camera]] or [discovery] "
    "(an ONVIF user must exist on the camera, often separate from its web login)",
    DeviceFault.UNREACHABLE: "check power, cabling and the address; the camera must answer ONVIF on that port",
    DeviceFault.BAD_RESPONSE: "the camera's firmware answers malformed ONVIF; update its firmware",
    DeviceFault.UNSUPPORTED: "the device has no MAC or serial number: give it an id in its [[camera]] entry",
}


def check_clock_sync(run: Callable[[list[str]], str] | None = None) -> CheckResult:
    """Whether the system clock is NTP-synchronised (signatures fail beyond 5 minutes of skew)."""
    run = run or _run
    try:
        synced = run(["timedatectl", "show", "--property=NTPSynchronized", "--value"]).strip()
    except (OSError, subprocess.SubprocessError):
        return CheckResult("clock sync", Verdict.WARN, "timedatectl is not available to ask",
                           "make sure an NTP client (systemd-timesyncd, chrony) runs on this box")
    if synced == "yes":
        return CheckResult("clock sync", Verdict.PASS, "NTP synchronised")
    return CheckResult("clock sync", Verdict.FAIL, f"NTPSynchronized={synced or 'unknown'}",
                       "run: timedatectl set-ntp true (and allow UDP 123 to an NTP server)")


def _run(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, timeout=10, check=True).stdout


def check_disk(config: Config) -> list[CheckResult]:
    """Free space against the recording floor, and sequential write speed of the state disk."""
    directory = config.recordings_dir
    directory.mkdir(parents=True, exist_ok=True)
    usage = shutil.disk_usage(directory)
    floor = max(config.recording.min_free_bytes, usage.total * config.recording.min_free_percent / 100)
    free = CheckResult(
        "disk space",
        Verdict.PASS if usage.free > 2 * floor else (Verdict.WARN if usage.free > floor else Verdict.FAIL),
        f"{usage.free / 1e9:.1f} GB free of {usage.total / 1e9:.1f} GB at {directory} (floor {floor / 1e9:.1f} GB)",
        "free space or add a disk; recordings older than the floor will be evicted",
    )
    probe = directory / ".doctor-write-test"
    started = time.monotonic()
    try:
        with probe.open("wb") as handle:
            block = os.urandom(1024 * 1024)
            for _ in range(WRITE_TEST_BYTES // len(block)):
                handle.write(block)
            handle.flush()
            os.fsync(handle.fileno())
        rate = WRITE_TEST_BYTES / 1e6 / max(time.monotonic() - started, 1e-6)
    except OSError as err:
        return [free, CheckResult("disk write", Verdict.FAIL, f"cannot write to {directory}: {err.strerror}",
                                  "check the disk is mounted read-write and owned by the service user")]
    finally:
        probe.unlink(missing_ok=True)
    speed = CheckResult(
        "disk write speed",
        Verdict.PASS if rate >= MIN_WRITE_MB_S else Verdict.FAIL,
        f"{rate:.0f} MB/s sequential with fsync",
        f"the disk is slower than {MIN_WRITE_MB_S:.0f} MB/s: use a faster disk or record fewer channels",
    )
    return [free, speed]


async def check_cloud(config: Config) -> list[CheckResult]:
    """The cloud endpoint answers, our clock agrees with it, and the key and gateway are accepted."""
    cloud = config.cloud
    if cloud is None:
        return [CheckResult("cloud", Verdict.PASS, "standalone mode (no [cloud] section)")]
    url = cloud.endpoint if "://" in cloud.endpoint else f"https://{cloud.endpoint}"
    results = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=cloud.timeout)) as session:
            async with session.post(url, data=b"{}") as response:
                date = response.headers.get("Date")
    except (aiohttp.ClientError, TimeoutError) as err:
        return [CheckResult("cloud reachable", Verdict.FAIL, f"{url}: {err}",
                            "check DNS, the default route and that HTTPS (443) to the endpoint is allowed")]
    results.append(CheckResult("cloud reachable", Verdict.PASS, url))
    if date:
        skew = time.time() - parsedate_to_datetime(date).timestamp()
        results.append(CheckResult(
            "clock vs cloud", Verdict.PASS if abs(skew) <= MAX_CLOCK_SKEW_S else Verdict.FAIL,
            f"{skew:+.0f} s", "synchronise the clock (timedatectl set-ntp true); signatures fail beyond 5 minutes",
        ))
    client = IssClient(url, Tc3Signer(cloud.secret_id, cloud.secret_key), region=cloud.region,
                       timeout=cloud.timeout, retry=RetryPolicy(attempts=1))
    try:
        await client.call("DescribeGateway", {"GatewayId": config.gateway.gateway_id})
    except IssError as err:
        fix = ("check cloud.secret_id and cloud.secret_key (API keys page of the console)"
               if err.code.startswith("AuthFailure") else "check gateway.gateway_id against the console's gateway list")
        results.append(CheckResult("cloud credentials", Verdict.FAIL, err.code, fix))
    except IssTransportError as err:
        results.append(CheckResult("cloud credentials", Verdict.FAIL, str(err), "the endpoint does not speak the iss API"))
    else:
        results.append(CheckResult("cloud credentials", Verdict.PASS, f"key accepted, gateway {config.gateway.gateway_id} known"))
    finally:
        await client.close()
    return results


async def check_cameras(config: Config) -> list[CheckResult]:
    """Every camera discovery finds is reachable and accepts our credentials; multicast works."""
    finder = DeviceFinder(config.discovery, config.cameras)
    manager = DeviceManager(config, finder)
    try:
        outcomes = await manager.run_round()
    finally:
        await manager.close()
    results = []
    for outcome in sorted(outcomes, key=lambda o: (o.candidate.address.host, o.candidate.address.port)):
        address = f"{outcome.candidate.address.host}:{outcome.candidate.address.port}"
        if outcome.description is not None:
            model = f"{outcome.description.manufacturer} {outcome.description.model}".strip()
            results.append(CheckResult(f"camera {address}", Verdict.PASS,
                                       f"{model}, {len(outcome.description.channels)} channel(s), login OK"))
        else:
            results.append(CheckResult(f"camera {address}", Verdict.FAIL, f"{outcome.fault.value}: {outcome.detail}",
                                       FAULT_FIXES.get(outcome.fault, "")))
    if config.discovery.multicast:
        heard = finder.last_report.multicast if finder.last_report else 0
        if heard:
            results.append(CheckResult("multicast discovery", Verdict.PASS, f"{heard} device(s) answered WS-Discovery"))
        else:
            results.append(CheckResult("multicast discovery", Verdict.WARN, "no device answered WS-Discovery",
                                       "multicast may be blocked on this network: list camera addresses in "
                                       "[discovery] unicast_hosts or [[camera]] entries"))
    if not outcomes:
        results.append(CheckResult("cameras", Verdict.FAIL, "no camera found",
                                   "check the box is on the camera network; add [[camera]] entries or unicast_hosts"))
    return results


async def run_checks(config: Config, *, clock_check: Callable[[], CheckResult] = check_clock_sync) -> list[CheckResult]:
    """Every check, in the order a technician fixes things."""
    results = [CheckResult("config", Verdict.PASS, f"{config.path} is valid")]
    results.append(clock_check())
    results.extend(await asyncio.to_thread(check_disk, config))
    steps: list[Callable[[Config], Awaitable[list[CheckResult]]]] = [check_cloud, check_cameras]
    for step in steps:
        results.extend(await step(config))
    return results

