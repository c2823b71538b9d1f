"""Technician commands: ``ivc-gateway discover`` (without the daemon) and ``status`` (asks it)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from bridges.onvif.discovery import DeviceFinder

from .config import Config, parse_listen
from .devices import DeviceManager, ProbeOutcome

COLUMNS = ("ADDRESS", "VENDOR", "MODEL", "IDENTITY", "CH", "PTZ", "AUTH", "SKEW", "FOUND BY")


def outcome_row(outcome: ProbeOutcome) -> dict[str, Any]:
    """One device as plain values (the ``--json`` form)."""
    address = outcome.candidate.address
    row: dict[str, Any] = {
        "address": f"{address.host}:{address.port}",
        "source": str(outcome.candidate.source),
        "auth": "ok" if outcome.ok else ("failed" if outcome.fault.value == "auth_failed" else "-"),
        "fault": outcome.fault.value,
        "detail": outcome.detail,
    }
    description = outcome.description
    if description is not None:
        row.update(
            vendor=description.manufacturer,
            model=description.model,
            identity=description.identity,
            kind=description.kind.value,
            channels=len(description.channels),
            ptz=any(channel.ptz for channel in description.channels),
            clock_skew_s=round(description.clock_skew, 1),
            streams=[channel.main_uri for channel in description.channels],
        )
    return row


def render_table(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width table a technician reads on a small terminal."""
    cells = [COLUMNS]
    for row in rows:
        if "identity" in row:
            cells.append((
                row["address"], row["vendor"] or "?", row["model"] or "?", row["identity"], str(row["channels"]),
                "yes" if row["ptz"] else "no", row["auth"], f"{row['clock_skew_s']:+.0f}s", row["source"],
            ))
        else:
            cells.append((row["address"], "-", "-", f"({row['fault']}: {row['detail']})"[:60], "-", "-",
                          row["auth"], "-", row["source"]))
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)).rstrip() for line in cells]
    found = sum(1 for row in rows if "identity" in row)
    lines.append(f"{found} device(s) answered, {len(rows) - found} failed")
    return "\n".join(lines)


async def discover(config: Config, *, as_json: bool) -> str:
    """Run one discovery round, probe every candidate, and describe what answered."""
    manager = DeviceManager(config, DeviceFinder(config.discovery, config.cameras))
    try:
        outcomes = await manager.run_round()
    finally:
        await manager.close()
    rows = [outcome_row(outcome) for outcome in sorted(outcomes, key=lambda o: (o.candidate.address.host, o.candidate.address.port))]
    return json.dumps(rows, ensure_ascii=False, indent=2) if as_json else render_table(rows)


class DaemonUnreachable(Exception):
    """The running daemon's local API did not answer."""


def status_url(config: Config) -> str:
    """Where the running daemon answers ``/status.json`` (wildcard listens are asked on loopback)."""
    host, port = parse_listen(config.api.listen)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/status.json"


def fetch_status(config: Config, timeout: float = 10.0) -> dict[str, Any]:
    """The daemon's status document."""
    url = status_url(config)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - our own loopback URL
            return dict(json.load(answer))
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise DaemonUnreachable(f"the gateway does not answer at {url} ({err}); is it running? "
                                "systemctl status ivc-gateway") from err


def render_status(status: dict[str, Any]) -> str:
    """The status document as a technician reads it."""
    disk = status["disk"]
    lines = [
        f"{status['name']} (ivc-gateway {status['version']}, {status['mode']} mode)",
        f"cloud link: {status['cloud_link']}   outbox: {status['outbox_depth']} waiting   "
        f"disk: {disk['free_bytes'] / 1e9:.1f} GB free of {disk['total_bytes'] / 1e9:.1f} GB",
    ]
    devices = status["devices"]
    online = sum(1 for device in devices if device["state"] == "online")
    channels = [channel for device in devices for channel in device["channels"]]
    lines.append(f"devices: {online}/{len(devices)} online   channels: "
                 f"{sum(1 for c in channels if c['state'] == 'online')}/{len(channels)} online, "
                 f"{sum(1 for c in channels if c['recording'])} recording")
    for device in devices:
        fault = f" ({device['fault']})" if device["fault"] else ""
        lines.append(f"  {device['name']}  {device['address']}  {device['state']}{fault}")
        for channel in device["channels"]:
            lines.append(f"    {channel['name']}  {channel['state']}  "
                         f"{'recording' if channel['recording'] else 'not recording'}  {channel['channel_id']}")
    return "\n".join(lines)
