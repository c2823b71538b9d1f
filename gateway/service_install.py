"""``ivc-gateway install-service``: put the systemd unit, user and folders in place.

The unit's ExecStart is pointed at the ``ivc-gateway`` program that runs this command, so the
service runs exactly what the technician installed. ``--root`` installs into another tree (a
package build, or a test); systemd is only asked to reload when installing into ``/`` on a
machine where systemd runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

UNIT_NAME = "ivc-gateway.service"
CHECKOUT = Path(__file__).resolve().parent.parent
"""The source tree holding ``systemd/`` and ``config/`` (for an editable or in-tree install)."""


@dataclass(frozen=True, slots=True)
class InstallPlan:
    """Where each file goes, relative to the target root."""

    unit: Path = Path("etc/systemd/system") / UNIT_NAME
    sysusers: Path = Path("usr/lib/sysusers.d/ivc-gateway.conf")
    tmpfiles: Path = Path("usr/lib/tmpfiles.d/ivc-gateway.conf")
    config: Path = Path("etc/ivc-gateway/gateway.toml")
    credentials: Path = Path("etc/ivc-gateway/credentials")


def render_unit(template: str, executable: str) -> str:
    """The unit text with ExecStart running ``executable``."""
    return re.sub(r"^ExecStart=\S+", f"ExecStart={executable}", template, count=1, flags=re.MULTILINE)


def current_executable() -> str:
    """The absolute path of the installed ``ivc-gateway`` program next to this interpreter."""
    candidate = Path(sys.executable).with_name("ivc-gateway")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("ivc-gateway")
    if found is None:
        raise FileNotFoundError("the ivc-gateway program is not installed next to this Python")
    return str(Path(found).resolve())


def install(root: Path, executable: str, checkout: Path = CHECKOUT) -> list[str]:
    """Install into ``root`` from the ``checkout``'s files; return one line per action."""
    plan = InstallPlan()
    source = checkout / "systemd"
    done = []
    unit = root / plan.unit
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(render_unit((source / UNIT_NAME).read_text(encoding="utf-8"), executable), encoding="utf-8")
    done.append(f"wrote {unit}")
    for name, target in (("ivc-gateway.sysusers", plan.sysusers), ("ivc-gateway.tmpfiles", plan.tmpfiles)):
        destination = root / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, destination)
        done.append(f"wrote {destination}")
    credentials = root / plan.credentials
    credentials.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = root / plan.config
    if config.exists():
        done.append(f"kept {config}")
    else:
        shutil.copyfile(checkout / "config" / "gateway.example.toml", config)
        config.chmod(0o640)
        done.append(f"wrote {config} (edit the lines marked CHANGE, then: ivc-gateway check-config {config})")
    if root == Path("/") and Path("/run/systemd/system").is_dir():
        for command in (["systemd-sysusers"], ["systemd-tmpfiles", "--create"], ["systemctl", "daemon-reload"]):
            subprocess.run(command, check=True)
            done.append("ran " + " ".join(command))
        done.append("start it with: systemctl enable --now ivc-gateway")
    else:
        done.append("systemd is not running here (or --root was given): nothing was reloaded")
    return done
