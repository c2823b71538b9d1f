"""What a technician sees: ``GET /status`` (a page) and ``GET /status.json`` (``ivc-gateway status``).

Both are read-only and answer loopback clients only: the page shows the site's layout and the
API's signing rules do not fit a browser, so it is reachable on the box itself (or through an
SSH tunnel), never from the camera network. The page is rendered on the server, without
scripts: it must work on whatever browser a technician has.
"""

from __future__ import annotations

import html
import ipaddress
import shutil
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from . import __version__

if TYPE_CHECKING:
    from .daemon import Gateway

DAY: Final = 24 * 3600.0
TIMELINE_WIDTH: Final = 480


def _loopback_only(request: web.Request) -> None:
    remote = request.remote or ""
    try:
        if ipaddress.ip_address(remote.split("%")[0]).is_loopback:
            return
    except ValueError:
        pass
    raise web.HTTPForbidden(text="the status page answers on this box only (use an SSH tunnel)")


async def status_snapshot(gateway: Gateway, now: float | None = None) -> dict[str, Any]:
    """The gateway's state as plain JSON-able values."""
    now = time.time() if now is None else now
    records = await gateway.inventory.all()
    devices = []
    for record in records:
        channels = []
        for channel in record.channels:
            if channel.state == "removed":
                continue
            spans = await gateway.recording_spans(channel.channel_id, now - DAY, now)
            channels.append({
                "channel_id": channel.channel_id,
                "name": channel.name,
                "state": channel.state,
                "ptz": channel.ptz,
                "recording": gateway.is_recording(channel.channel_id),
                "recorded_last_24h_s": round(sum(end - start for start, end in spans)),
                "timeline": [[round(start - (now - DAY)), round(end - (now - DAY))] for start, end in spans],
                "snapshot_url": await gateway.latest_snapshot_url(channel.channel_id),
            })
        devices.append({
            "identity": record.identity,
            "device_id": record.device_id,
            "name": record.name,
            "kind": record.kind.value,
            "address": f"{record.host}:{record.port}",
            "model": f"{record.manufacturer} {record.model}".strip(),
            "state": record.state,
            "fault": record.fault,
            "channels": channels,
        })
    state_dir = gateway.config.gateway.state_dir
    disk = shutil.disk_usage(state_dir)
    return {
        "name": gateway.config.gateway.name,
        "version": __version__,
        "mode": "standalone" if gateway.config.standalone else "cloud",
        "cloud_link": "connected" if gateway.relay is not None and gateway.relay.connected.is_set()
        else ("not configured" if gateway.relay is None else "disconnected"),
        "outbox_depth": await gateway.outbox.depth() if gateway.outbox is not None else 0,
        "discovery_rounds": gateway.rounds_completed,
        "disk": {"path": str(state_dir), "free_bytes": disk.free, "total_bytes": disk.total},
        "devices": devices,
    }


def _timeline_svg(spans: list[list[int]]) -> str:
    bars = "".join(
        f'<rect x="{start / DAY * TIMELINE_WIDTH:.1f}" y="0" width="{max(1.0, (end - start) / DAY * TIMELINE_WIDTH):.1f}" '
        'height="12" class="rec"/>'
        for start, end in spans
    )
    return (f'<svg class="timeline" width="{TIMELINE_WIDTH}" height="12" role="img" aria-label="recorded in the last 24 h">'
            f'<rect x="0" y="0" width="{TIMELINE_WIDTH}" height="12" class="bg"/>{bars}</svg>')


def render_page(snapshot: dict[str, Any]) -> str:
    """The status page as HTML; every value is escaped."""
    e = html.escape
    rows = []
    for device in snapshot["devices"]:
        state = "fault: " + device["fault"] if device["fault"] else device["state"]
        rows.append(
            f'<tr class="device"><td colspan="5"><b>{e(device["name"])}</b> ({e(device["kind"].upper())}, '
            f'{e(device["model"])}) at {e(device["address"])} — <span class="state {e(device["state"])}">{e(state)}</span></td></tr>'
        )
        for channel in device["channels"]:
            image = (f'<img src="{e(channel["snapshot_url"])}" alt="snapshot" height="48">'
                     if channel["snapshot_url"] else "no snapshot yet")
            rows.append(
                f'<tr class="channel"><td>{e(channel["name"])}</td>'
                f'<td class="state {e(channel["state"])}">{e(channel["state"])}</td>'
                f'<td>{"recording" if channel["recording"] else "idle"}, '
                f'{channel["recorded_last_24h_s"] // 60} min in 24 h</td>'
                f'<td>{_timeline_svg(channel["timeline"])}</td><td>{image}</td></tr>'
            )
    disk = snapshot["disk"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(snapshot["name"])} — ivc-gateway</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; }} td {{ padding: 4px 10px; border-bottom: 1px solid #ddd; }}
tr.device td {{ background: #f3f5f8; padding-top: 10px; }}
.online {{ color: #17813a; }} .offline, .faulty {{ color: #b3261e; }}
svg .bg {{ fill: #eee; }} svg .rec {{ fill: #2f7bd8; }}
</style></head><body>
<h1>{e(snapshot["name"])}</h1>
<p>ivc-gateway {e(snapshot["version"])}, {e(snapshot["mode"])} mode · cloud link: {e(snapshot["cloud_link"])} ·
outbox: {snapshot["outbox_depth"]} waiting · disk: {disk["free_bytes"] / 1e9:.1f} GB free of
{disk["total_bytes"] / 1e9:.1f} GB · {len(snapshot["devices"])} devices</p>
<table><tr><th>Channel</th><th>State</th><th>Recording</th><th>Last 24 h</th><th>Snapshot</th></tr>
{"".join(rows)}
</table></body></html>
"""


def status_routes(gateway: Gateway) -> Callable[[web.Application], None]:
    """Routes to add to the local API app."""

    async def page(request: web.Request) -> web.Response:
        _loopback_only(request)
        return web.Response(text=render_page(await status_snapshot(gateway)), content_type="text/html")

    async def as_json(request: web.Request) -> web.Response:
        _loopback_only(request)
        return web.json_response(await status_snapshot(gateway))

    def add(app: web.Application) -> None:
        app.router.add_get("/status", page)
        app.router.add_get("/status.json", as_json)

    return add
