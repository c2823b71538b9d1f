"""Suite-wide guarantees: no test leaves a child process behind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


def child_processes(pid: int | None = None) -> list[tuple[int, str]]:
    """Live (non-zombie) children of ``pid`` (default: this process) as (pid, command line)."""
    parent = os.getpid() if pid is None else pid
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("PPid", "").strip() == str(parent) and not fields.get("State", "").startswith("Z"):
            children.append((int(entry.name), command))
    return children


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """After the whole run, every process a test started must be gone."""
    before = {pid for pid, _ in child_processes()}
    yield
    left = [(pid, command) for pid, command in child_processes() if pid not in before]
    assert left == [], f"processes left behind by the tests: {left}"
