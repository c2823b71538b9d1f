"""Benchmark: discovery + probe + registration of a simulated site, with the cloud calls it took.

Starts a simulated site of N cameras, the cloud emulator (with the relay) and the gateway daemon
in one process, runs the first discovery round and counts what the gateway asked the cloud.
Goal: one AddUserDevice per device and no redundant calls. Prints ``name=value`` lines::

    python bench/registration.py --cameras 64
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import secrets
import tempfile
import time
from pathlib import Path

from gateway.config import load_config
from gateway.daemon import Gateway
from gateway.logs import configure_logging
from sim.cloud import CloudEmulator, seeds
from sim.site import SimulatedSite


def _config_text(state: Path, endpoint: str, secret_id: str, secret_key: str, network: str, password: str) -> str:
    return f"""
[gateway]
gateway_id = "{seeds.GATEWAY_ID}"
state_dir = "{state}"
[api]
listen = "127.0.0.1:0"
[cloud]
secret_id = "{secret_id}"
secret_key = "{secret_key}"
cluster_id = "{seeds.GUANGZHOU_CLUSTER_ID}"
organization_id = "{seeds.SITE_ORGANIZATION_ID}"
endpoint = "http://{endpoint}"
[relay]
url = "ws://{endpoint}/relay"
[discovery]
multicast = false
unicast_hosts = ["{network}"]
probe_timeout = "2s"
password = "{password}"
"""


async def main(args: argparse.Namespace) -> None:
    secret_id, secret_key = "AKIDbench", secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="registration-bench-") as workdir:
        root = Path(workdir)
        async with (
            CloudEmulator(root / "cloud", secret_id, secret_key) as cloud,
            SimulatedSite(state_dir=root / "site", cameras=args.cameras, nvrs=0, width=320, height=240,
                          host="127.88.0.0") as site,
        ):
            config_path = root / "gateway.toml"
            config_path.write_text(_config_text(root / "gw", cloud.endpoint, secret_id, secret_key, site.network, site.password))
            config_path.chmod(0o600)
            gateway = Gateway(load_config(config_path))
            started = time.monotonic()
            task = asyncio.create_task(gateway.run())
            await gateway.wait_for_rounds(1)
            elapsed = time.monotonic() - started
            records = await gateway.inventory.all()
            gateway.request_stop()
            await task
            calls = collections.Counter(call.action for call in cloud.calls())
            errors = collections.Counter(f"{call.action}:{call.code}" for call in cloud.calls() if call.code != "OK")
    registered = sum(1 for record in records if record.cloud_device_id)
    with_channel_ids = sum(1 for record in records if all(c.cloud_channel_id for c in record.channels))
    print(f"cameras={args.cameras}")
    print(f"registered={registered}")
    print(f"channel_ids_known={with_channel_ids}")
    print(f"wall_seconds={elapsed:.2f}")
    for action, count in sorted(calls.items()):
        print(f"calls_{action}={count}")
    for key, count in sorted(errors.items()):
        print(f"errors_{key}={count}")
    print(f"cloud_calls_total={sum(calls.values())}")
    print(f"add_user_device_per_device={calls['AddUserDevice'] / max(1, args.cameras):.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=64)
    configure_logging("warning")
    asyncio.run(main(parser.parse_args()))
