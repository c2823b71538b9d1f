"""``make demo``: the gateway's flow against a simulated cloud, narrated step by step.

Everything runs on loopback in a temporary directory and is torn down at the end.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from gateway.iss import IssError, Tc3Signer
from gateway.iss.client import IssClient
from sim.cloud import CloudEmulator

REGION = "ap-guangzhou"


def say(step: str, detail: Any = "") -> None:
    """Print one narrated step."""
    print(f"==> {step}" + (f": {detail}" if detail != "" else ""), flush=True)


async def demo(workdir: Path) -> None:
    """Run the flow; raise on anything unexpected."""
    secret_id, secret_key = "AKIDdemo", secrets.token_hex(16)
    async with CloudEmulator(workdir / "cloud", secret_id, secret_key) as cloud:
        say("cloud emulator listening", cloud.endpoint)
        async with IssClient(f"http://{cloud.endpoint}", Tc3Signer(secret_id, secret_key), region=REGION) as client:
            organizations = (await client.call("DescribeOrganization"))["Data"]
            organization = organizations[-1]
            say("organization", f"{organization['Name']} ({organization['OrganizationId']})")
            cluster = (await client.call("DescribeDeviceRegion"))["Data"][0]
            say("service node", f"{cluster['Label']} ({cluster['Value']})")
            gateway = (await client.call("ListGateways", {"PageNumber": 1, "PageSize": 10}))["Data"]["List"][0]
            say("gateway", f"{gateway['Name']} ({gateway['GatewayId']})")
            added = await client.call(
                "AddUserDevice",
                {
                    "Name": "front door",
                    "AccessProtocol": 3,
                    "Type": 1,
                    "OrganizationId": organization["OrganizationId"],
                    "ClusterId": cluster["Value"],
                    "GatewayId": gateway["GatewayId"],
                    "ProtocolType": 4,
                    "Ip": "127.0.0.11",
                    "Port": 80,
                    "Username": "admin",
                    "Password": "demo-password",
                },
                retry=False,
            )
            say("AddUserDevice", f"DeviceId {added['Data']['DeviceId']}")
            listed = await client.call("ListGatewayDevices", {"GatewayId": gateway["GatewayId"], "PageNumber": 1, "PageSize": 20})
            for device in listed["Data"]["List"]:
                say("ListGatewayDevices", f"{device['Name']} at {device['Ip']}:{device['Port']} ({device['DeviceId']})")
            try:
                await client.call("AddUserDevice", {"Name": "bad", "AccessProtocol": 3, "Type": 1,
                                                    "OrganizationId": organization["OrganizationId"],
                                                    "ClusterId": cluster["Value"], "GatewayId": gateway["GatewayId"],
                                                    "ProtocolType": 4, "Ip": "999.1.1.1", "Port": 80,
                                                    "Username": "admin", "Password": "x"}, retry=False)
            except IssError as err:
                say("a bad request is refused with the documented code", err.code)
    say("done")


def main() -> int:
    """Entry point of ``python -m sim.demo``."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="ivc-demo-") as workdir:
        asyncio.run(demo(Path(workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
