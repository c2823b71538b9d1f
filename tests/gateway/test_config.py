"""Configuration: the example is valid, every kind of mistake names file, line and key (exit 78)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import EX_CONFIG, ConfigError, Duration, expand_hosts, load_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "gateway.example.toml"

MINIMAL = """\
[gateway]
name = "t"
state_dir = "state"
"""


def _write(tmp_path: Path, text: str, name: str = "gateway.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def _example_with_secrets(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    shutil.copy(EXAMPLE, path)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("cloud.secret_key", "api.secret_key", "onvif.password", "camera-door.password"):
        (secrets / name).write_text(f"value-of-{name}\n", encoding="utf-8")
    return path


def test_example_config_is_valid_and_documents_every_key(tmp_path: Path) -> None:
    config = load_config(_example_with_secrets(tmp_path))
    assert config.cloud is not None and config.cloud.secret_key == "value-of-cloud.secret_key"
    assert config.cameras[0].password == "value-of-camera-door.password"
    assert config.discovery.interval == Duration(300)
    assert config.recording.min_free_bytes == 2 * 10**9
    text = EXAMPLE.read_text(encoding="utf-8")
    from gateway import config as module

    for section, (cls, _array, _optional) in module._SECTIONS.items():
        for field in cls.__dataclass_fields__:
            assert f"\n{field} =" in text or f"\n{field}_file =" in text, f"{section}.{field} undocumented"


def test_check_config_cli_accepts_the_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(_example_with_secrets(tmp_path))]) == 0
    assert "OK (cloud mode" in capsys.readouterr().out


def test_minimal_config_is_standalone(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, MINIMAL))
    assert config.standalone and config.relay is None
    assert config.api.listen == "127.0.0.1:8640"
    assert config.recordings_dir == Path("state") / "recordings"


BAD_CONFIGS = [
    pytest.param(MINIMAL + "colour = 1\n", 4, "gateway.colour", "unknown key", id="unknown-key"),
    pytest.param(MINIMAL + "[cameras]\nhost = 'x'\n", 4, "cameras", "unknown section", id="unknown-section"),
    pytest.param(MINIMAL + "[api]\nlisten = 8640\n", 5, "api.listen", "must be a string", id="wrong-type"),
    pytest.param(MINIMAL + "[recording]\nsegment_seconds = 2\n", 5, "recording.segment_seconds", "out of range", id="below-min"),
    pytest.param(
        MINIMAL + "[recording]\nfull_disk_policy = 'panic'\n", 5, "recording.full_disk_policy", "not allowed", id="bad-choice"
    ),
    pytest.param(
        MINIMAL + "[cloud]\nsecret_id = 'a'\nsecret_key = 'b'\norganization_id = '1'\n",
        4,
        "cloud.cluster_id",
        "missing required key",
        id="missing-required",
    ),
    pytest.param(
        MINIMAL + "[cloud]\nsecret_id = 'a'\ncluster_id = 'c'\norganization_id = '1'\n",
        4,
        "cloud.secret_key",
        "missing; set secret_key",
        id="missing-secret",
    ),
    pytest.param(
        MINIMAL + "[cloud]\nsecret_id = 'a'\nsecret_key = 'b'\ncluster_id = 'c'\norganization_id = '1'\n",
        1,
        "gateway.gateway_id",
        "required when [cloud]",
        id="cloud-needs-gateway-id",
    ),
    pytest.param(MINIMAL + "[discovery]\ninterval = 'soon'\n", 5, "discovery.interval", "must be a duration", id="bad-duration"),
    pytest.param(
        MINIMAL + "[discovery]\nunicast_hosts = ['10.0.0.9-10.0.0.1']\n",
        5,
        "discovery.unicast_hosts[0]",
        "ends before it starts",
        id="bad-range",
    ),
    pytest.param(MINIMAL + "[[camera]]\nport = 80\n", 4, "camera[0].host", "missing required key", id="camera-without-host"),
    pytest.param(
        MINIMAL + "[[camera]]\nhost = 'a'\n\n[[camera]]\nhost = 'b'\nport = 0\n",
        9,
        "camera[1].port",
        "out of range",
        id="second-camera",
    ),
    pytest.param(MINIMAL + "[gateway.extra]\n", 4, "gateway.extra", "unknown key", id="nested-table"),
    pytest.param(MINIMAL + "[api]\nlisten = 'localhost'\n", 5, "api.listen", "HOST:PORT", id="bad-listen"),
    pytest.param(MINIMAL.replace('"t"', '"t"\ntimezone = "Mars/Base"'), 3, "gateway.timezone", "unknown time zone", id="bad-tz"),
    pytest.param(MINIMAL + "[relay]\nurl = 'http://x'\n", 5, "relay.url", "does not look right", id="relay-scheme"),
    pytest.param(MINIMAL + "[recording]\nenabled = 'yes'\n", 5, "recording.enabled", "true or false", id="bool"),
    pytest.param(MINIMAL + "[recording\n", 4, "(syntax)", "valid TOML", id="syntax"),
    pytest.param(
        MINIMAL + "[discovery]\npassword = 'a'\npassword_file = 'b'\n", 5, "discovery.password", "not both", id="secret-twice"
    ),
    pytest.param(MINIMAL + "[discovery]\ninterfaces = ['a', 2]\n", 5, "discovery.interfaces[1]", "must be a string", id="list-item"),
    pytest.param(MINIMAL + "[discovery]\ninterfaces = ['eth0']\n", 5, "discovery.interfaces[0]", "not an IPv4", id="interface"),
]


@pytest.mark.parametrize(("text", "line", "key", "message"), BAD_CONFIGS)
def test_bad_config_names_file_line_and_key(tmp_path: Path, text: str, line: int, key: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    expected_prefix = f"{path}:{line}: {key}: "
    matching = [p for p in caught.value.problems if p.startswith(expected_prefix)]
    assert matching, caught.value.problems
    assert message in matching[0]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = MINIMAL + "bogus = 1\n[api]\nlisten = 1\n[ptz]\nstep_seconds = 99\n"
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    keys = [p.split(": ")[1] for p in caught.value.problems]
    assert keys == ["gateway.bogus", "api.listen", "ptz.step_seconds"]


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_cli_exits_78_with_one_line_per_problem(tmp_path: Path, command: str) -> None:
    path = _write(tmp_path, MINIMAL + "colour = 1\n[ptz]\nstep_seconds = -1\n")
    args = [sys.executable, "-m", "gateway", "--config", str(path), command]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == EX_CONFIG
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"{path}:4: gateway.colour: unknown key; expected one of gateway_id, log_level, name, state_dir, timezone",
        f"{path}:6: ptz.step_seconds: must be a duration: seconds as a number or a string like \"30s\", \"5m\", \"1h\", not -1",
    ]


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, MINIMAL + "bogus = 1\n")
    monkeypatch.setenv("IVC_GATEWAY_CONFIG", str(path))
    assert main(["check-config"]) == EX_CONFIG


def test_secret_from_systemd_credentials(tmp_path: Path) -> None:
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "cloud.secret_key").write_text("from-systemd\n")
    (credentials / "ivc-gateway_camera.door.password").write_text("door-pass")  # loaded from a directory
    text = MINIMAL.replace('"t"', '"t"\ngateway_id = "gw"') + (
        "[cloud]\nsecret_id = 'a'\ncluster_id = 'c'\norganization_id = '1'\n[[camera]]\nhost = '10.0.0.2'\nname = 'door'\n"
    )
    config = load_config(_write(tmp_path, text), environ={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert config.cloud is not None and config.cloud.secret_key == "from-systemd"
    assert config.cameras[0].password == "door-pass"
    assert "from-systemd" not in repr(config)


def test_world_readable_file_with_inline_secret_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, MINIMAL + "[discovery]\npassword = 'hunter2'\n")
    assert load_config(path).warnings == ()
    path.chmod(0o644)
    warnings = load_config(path).warnings
    assert len(warnings) == 1 and "discovery.password" in warnings[0] and "chmod 600" in warnings[0]
    assert "hunter2" not in warnings[0]
    assert main(["check-config", str(path)]) == 0
    assert "warning:" in capsys.readouterr().err


def test_expand_hosts() -> None:
    assert expand_hosts(["10.0.0.1", "10.0.0.5-10.0.0.7", "10.0.1.0/30"]) == [
        "10.0.0.1", "10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.1.1", "10.0.1.2",
    ]
    with pytest.raises(ValueError, match="more than"):
        expand_hosts(["10.0.0.0/8"])
