"""What a fresh emulated account contains: an organization tree, service nodes and one gateway.

Ids are fixed so tests and docs can name them; the seed runs once per state directory.
"""

from __future__ import annotations

from .actions.rules import new_secret
from .records import GATEWAY_ONLINE, Cluster, Gateway, Organization
from .store import CloudStore

SEEDED_META_KEY = "seeded"

ROOT_ORGANIZATION_ID = "100"
SITE_ORGANIZATION_ID = "101"
GUANGZHOU_CLUSTER_ID = "5b1e0c52-7d3a-4f8e-9c61-2a4b8d0e6f13"
SHANGHAI_CLUSTER_ID = "9d7c3b1a-0e2f-4a6b-8c5d-7e1f3a2b4c6d"
GATEWAY_ID = "3c2f9a7e-1b4d-4e8a-9f06-5d7c1e2b3a48"
GATEWAY_GW_ID = "2b8d8734bc5e4f1a9d3c7e6f3ff984a8"
GATEWAY_NAME = "网关1"

GATEWAY_SERVICES = [
    {"Name": "网关服务", "Version": "v1.0.0", "LatestVersion": "v1.0.0", "UpgradeInfo": []},
]


async def seed_store(store: CloudStore, now: float) -> bool:
    """Create the seed records unless this store was seeded before; True if it seeded now."""
    if store.meta(SEEDED_META_KEY):
        return False
    async with store.transaction():
        store.put(Organization(ROOT_ORGANIZATION_ID, "总部", "0", "0", 1))
        store.put(
            Organization(SITE_ORGANIZATION_ID, "门店1", ROOT_ORGANIZATION_ID, f"0,{ROOT_ORGANIZATION_ID}", 2)
        )
        store.put(Cluster(GUANGZHOU_CLUSTER_ID, "广州一区", "ap-guangzhou"))
        store.put(Cluster(SHANGHAI_CLUSTER_ID, "上海一区", "ap-shanghai"))
        store.put(
            Gateway(
                gateway_id=GATEWAY_ID,
                gw_id=GATEWAY_GW_ID,
                name=GATEWAY_NAME,
                description="seed",
                cluster_id=GUANGZHOU_CLUSTER_ID,
                status=GATEWAY_ONLINE,
                created_at=now,
                secret=new_secret(),
                services=[dict(service) for service in GATEWAY_SERVICES],
            )
        )
        store.set_meta(SEEDED_META_KEY, "1")
    return True
