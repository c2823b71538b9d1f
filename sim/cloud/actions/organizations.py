"""Organization tree: DescribeOrganization, plus the subtree lookup other groups use.

The tree's virtual root is ``"0"``: top-level organizations have ``ParentId`` "0" and every
``ParentIds`` path starts with it, so "0" names the whole account in filters.
"""

from __future__ import annotations

from ..records import DEVICE_ONLINE, Device, Organization
from ..schema import Params, Schema
from ..store import CloudStore
from .context import ActionContext, Result
from .rules import APP_ID

VIRTUAL_ROOT = "0"

DESCRIBE_ORGANIZATION: Schema = {}


def organization_exists(store: CloudStore, organization_id: str) -> bool:
    return organization_id == VIRTUAL_ROOT or store.get(Organization, organization_id) is not None


def subtree(store: CloudStore, organization_id: str) -> set[str]:
    """``organization_id`` and all its descendants."""
    members = {organization_id}
    for organization in store.all(Organization):
        if organization_id in organization.parent_ids.split(","):
            members.add(organization.organization_id)
    return members


def describe_organization(ctx: ActionContext, params: Params) -> Result:
    """Every organization with its device counts (devices directly in that organization)."""
    devices = ctx.store.all(Device)
    data = []
    for organization in ctx.store.all(Organization):
        own = [device for device in devices if device.organization_id == organization.organization_id]
        data.append(
            {
                "OrganizationId": organization.organization_id,
                "Name": organization.name,
                "ParentId": organization.parent_id,
                "Level": organization.level,
                "AppId": APP_ID,
                "ParentIds": organization.parent_ids,
                "Total": len(own),
                "Online": sum(1 for device in own if device.status == DEVICE_ONLINE),
            }
        )
    return {"Data": data}
