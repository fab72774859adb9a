"""devices.yaml: the shipped file is valid and realistic; a broken one is reported problem by problem,
with file, line and key path, by the loader and by `fabhub devices check`."""

import subprocess
import sys
from collections import Counter
from decimal import Decimal

import pytest

from fabhub.devices import DeviceFileError, check_file, load_devices
from tests.http import REPO

BROKEN = """\
center:
  name: 实训中心
classes:
  cnc:
    name: CNC
    hourly_rate: abc
    billing_basis: weekly
    rules:
      granularity: 7x
  robot:
    name: Robot
    hourly_rate: 120.5
    rules:
      min_booking: 9h
devices:
  - id: cnc-01
    name: A
    class: cnc
    protocol: opcua
    endpoint: http://10.0.0.1
    opcua: {machine: "MA:Machines/inst:cnc-01"}
    signals:
      spindle_speed: {path: "MT:Monitoring/inst:Spindle 1/inst:ActSpeed", node: "ns=2;i=5"}
  - id: cnc-01
    name: B
    class: lathe
    protocol: modbus
    endpoint: tcp://h:99999
    signals:
      Bad-Name: {address: 1}
      mode: {address: 65535, type: uint32}
      flags: {address: 10, type: int24}
  - id: robot-01
    name: C
    class: robot
    protocol: modbus
    endpoint: tcp://10.0.0.9:502
    signals:
      robot_mode: {address: 258}
    states:
      - {state: running, when: {signal: robot_mdoe, eq: 7}}
  - id: printer-01
    name: D
    class: robot
    protocol: mqtt
    colour: red
    modbus: {unit: 1}
    mqtt: {topic: "printers/report", serial: "X1"}
"""


def test_shipped_file_is_valid_and_describes_the_center():
    devices = load_devices(REPO / "devices.yaml")
    by_class = Counter(d.class_ for d in devices.devices)
    assert by_class["cnc"] >= 2
    assert by_class["robot"] >= 2
    assert by_class["printer"] >= 3
    assert {d.protocol for d in devices.devices} == {"opcua", "modbus", "mqtt"}
    assert devices.classes["cnc"].hourly_rate == Decimal("180.00")
    assert all(isinstance(c.hourly_rate, Decimal) for c in devices.classes.values())


def test_every_problem_is_reported_with_line_and_key(tmp_path):
    path = tmp_path / "devices.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    problems = {(p.line, p.path): p.message for p in check_file(path)}
    assert problems == {
        (6, "classes.cnc.hourly_rate"): "Input should be a valid decimal",
        (7, "classes.cnc.billing_basis"): "Input should be 'booked', 'metered' or 'overage'",
        (9, "classes.cnc.rules.granularity"): "'7x' is not a duration like 500ms, 90s, 30m, 1.5h or 2d",
        (13, "classes.robot.rules"): "min_booking is longer than max_booking",
        (16, "devices[0].id"): "device id 'cnc-01' is used more than once",
        (20, "devices[0].endpoint"): "opcua endpoints look like opc.tcp://host:port, not 'http://10.0.0.1'",
        (23, "devices[0].signals.spindle_speed"): "give exactly one of node or path",
        (24, "devices[1].id"): "device id 'cnc-01' is used more than once",
        (26, "devices[1].class"): "unknown class 'lathe'; classes: cnc, robot",
        (28, "devices[1].endpoint"): "bad port in 'tcp://h:99999'",
        (
            30,
            "devices[1].signals.Bad-Name",
        ): "String should match pattern '^[a-z][a-z0-9_]{0,63}(\\.[a-z0-9_]{1,64}){0,3}$'",
        (31, "devices[1].signals.mode"): "runs past the last register: 65535 + 2 registers > 65536",
        (
            32,
            "devices[1].signals.flags.type",
        ): "Input should be 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'float32', 'float64', 'string' or 'bit'",
        (33, "devices[2]"): "states[0] uses undefined signal(s): robot_mdoe",
        (46, "devices[3].colour"): "Extra inputs are not permitted",
        (47, "devices[3].modbus"): "Extra inputs are not permitted",
        (48, "devices[3].mqtt.topic"): "the topic template must contain {serial} or {device_id}",
    }
    assert all(p.file == str(path) for p in check_file(path))


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("center: {name: x}\nclasses: [1,\n", 3, "YAML"),
        ("center: {name: x}\ncenter: {name: y}\n", 2, "duplicate key"),
        ("- just\n- a list\n", 1, "expected a mapping"),
        ("", 1, "expected a mapping"),
    ],
)
def test_unreadable_yaml(tmp_path, text, line, message):
    path = tmp_path / "devices.yaml"
    path.write_text(text)
    [problem] = check_file(path)
    assert problem.line == line
    assert message in problem.message


def test_missing_file(tmp_path):
    with pytest.raises(DeviceFileError, match="cannot read"):
        load_devices(tmp_path / "nope.yaml")


def fabhub(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fabhub.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )


def test_cli_check_exits_non_zero_and_lists_problems(tmp_path):
    path = tmp_path / "devices.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    result = fabhub("devices", "check", str(path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 17
    assert lines[0] == f"{path}:6:5: classes.cnc.hourly_rate: Input should be a valid decimal"


def test_cli_check_accepts_the_shipped_file():
    result = fabhub("devices", "check", "devices.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "devices.yaml: ok"


@pytest.mark.parametrize("command", [[], ["serve"], ["demo"], ["migrate"], ["devices"], ["devices", "check"]])
def test_every_command_has_help(command):
    result = fabhub(*command, "--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout


def test_cli_migrate_against_a_real_database(timescale_backend):
    import os

    name, url = timescale_backend.create()
    try:
        result = fabhub("migrate", env={**os.environ, "FABHUB_DATABASE_URL": url, "FABHUB_TIMESCALEDB": "require"})
        assert result.returncode == 0, result.stderr
        assert "nothing to apply; TimescaleDB active" in result.stderr  # the template is migrated already
    finally:
        timescale_backend.drop(name)


def test_cli_rejects_a_bad_setting():
    import os

    result = fabhub("migrate", env={**os.environ, "FABHUB_TIMEZONE": "Mars/Olympus"})
    assert result.returncode == 2
    assert "FABHUB_TIMEZONE" in result.stderr
    assert "unknown time zone" in result.stderr


def test_serve_refuses_a_broken_devices_file(tmp_path):
    import os

    path = tmp_path / "devices.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    data = tmp_path / "data"
    result = fabhub("serve", env={**os.environ, "FABHUB_DEVICES": str(path), "FABHUB_DATA_DIR": str(data)})
    assert result.returncode == 2
    assert f"{path}:7:5: classes.cnc.billing_basis" in result.stderr
    assert not data.exists()  # refused before starting a database
