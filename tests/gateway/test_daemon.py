"""The daemon process: starts, answers /healthz, stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path


def test_run_serves_healthz_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway]\nstate_dir = "{tmp_path / "state"}"\n[api]\nlisten = "127.0.0.1:0"\n')
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(config), "run"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        port = None
        for line in process.stderr:
            found = re.search(r"local API listening listen=127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found[1])
            if "ready" in line:
                break
        assert port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            health = json.load(answer)
        assert health["status"] == "ok" and health["schema"] >= 1
        process.send_signal(signal.SIGTERM)
        rest = process.stderr.read()
        assert process.wait(timeout=30) == 0
        assert "gateway stopped" in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (tmp_path / "state" / "gateway.sqlite3").exists()
