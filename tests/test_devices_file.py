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
    by_class = Counter(d.class_id for d in devices.machines)
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


def environment(**variables: str) -> dict[str, str]:
    """This process's environment without any FABHUB_ variable (tests/conftest.py removes them anyway), plus
    `variables`: what a command the tests run sees, stated explicitly."""
    import os

    return {**{k: v for k, v in os.environ.items() if not k.startswith("FABHUB_")}, **variables}


def fabhub(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The CLI in a process of its own, with `env` or else `environment()`."""
    return subprocess.run(
        [sys.executable, "-m", "fabhub.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment() if env is None else env,
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

    name, url = timescale_backend.create()
    try:
        result = fabhub("migrate", env=environment(FABHUB_DATABASE_URL=url, FABHUB_TIMESCALEDB="require"))
        assert result.returncode == 0, result.stderr
        assert "nothing to apply; TimescaleDB active" in result.stderr  # the template is migrated already
    finally:
        timescale_backend.drop(name)


def test_cli_rejects_a_bad_setting():

    result = fabhub("migrate", env=environment(FABHUB_TIMEZONE="Mars/Olympus"))
    assert result.returncode == 2
    assert "FABHUB_TIMEZONE" in result.stderr
    assert "unknown time zone" in result.stderr


def test_serve_refuses_a_broken_devices_file(tmp_path):

    path = tmp_path / "devices.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    data = tmp_path / "data"
    result = fabhub("serve", env=environment(FABHUB_DEVICES=str(path), FABHUB_DATA_DIR=str(data)))
    assert result.returncode == 2
    assert f"{path}:7:5: classes.cnc.billing_basis" in result.stderr
    assert not data.exists()  # refused before starting a database


LAN = """\
center: {name: x}
classes:
  printer: {name: P, hourly_rate: "30.00"}
devices:
  - id: printer-01
    name: X1C
    class: printer
    protocol: mqtt
    endpoint: mqtts://192.168.1.50:8883
    mqtt: {serial: "00M09A350100001", username: bblp, password_env: BAMBU_X1C_ACCESS_CODE, tls_verify_hostname: false}
  - id: printer-02
    name: P1S
    class: printer
    protocol: mqtt
    endpoint: mqtts://192.168.1.51:8883
    mqtt: {serial: "01P00A391800002", password: "12345678", tls_fingerprint: "AB:CD"}
  - id: printer-03
    name: A1
    class: printer
    protocol: mqtt
    mqtt: {serial: "03919A3B0500003", ca_file: bambu.pem}
  - id: printer-04
    name: A1 mini
    class: printer
    protocol: mqtt
    endpoint: mqtt://192.168.1.53:1883
    mqtt: {serial: "0300AA3B0500004", tls_fingerprint: "%s"}
  - id: cnc-01
    name: C
    class: printer
    protocol: opcua
    endpoint: opc.tcp://10.0.0.1:4840
    opcua: {machine: "MA:Machines/inst:cnc-01", username: "${CNC_USER}", password_env: CNC_PASSWORD,
            security: {mode: Sign, certificate: gw.der, private_key: gw.pem, private_key_password_env: GW_KEY}}
    signals:
      parts_total: {path: "MT:Production/MT:PartsCompleted", counter: true, reset_on: job}
""" % ("ab" * 32)


def test_lan_printer_connections_are_checked_with_line_and_key(tmp_path):
    path = tmp_path / "devices.yaml"
    path.write_text(LAN, encoding="utf-8")
    problems = {(p.line, p.path): p.message for p in check_file(path)}
    assert problems == {
        (10, "devices[0].mqtt"): "tls_verify_hostname: false without ca_file or tls_fingerprint would accept any"
        " certificate: pin the device's certificate (tls_fingerprint) or give the CA that signed it (ca_file)",
        (16, "devices[1].mqtt.password"): "secrets come from the environment: write ${VARIABLE} (or password_env:"
        " VARIABLE)",
        (16, "devices[1].mqtt.tls_fingerprint"): "a SHA-256 fingerprint is 64 hex digits (colons allowed)",
        (17, "devices[2]"): "TLS and login options belong to a device that is its own broker (endpoint: mqtts://...);"
        " the site broker's are in FABHUB_MQTT_URL",
        (22, "devices[3]"): "tls_fingerprint: only with an mqtts:// endpoint",
        (28, "devices[4]"): "signals.parts_total.reset_on names an undefined signal: job",
    }


def test_secrets_missing_from_the_environment_are_named_with_their_device_and_line(tmp_path):
    text = LAN.split("  - id: printer-02")[0].replace("tls_verify_hostname: false", "ca_file: bambu.pem")
    text += LAN[LAN.index("  - id: cnc-01") :].replace(", reset_on: job", "")
    path = tmp_path / "devices.yaml"
    path.write_text(text, encoding="utf-8")
    assert check_file(path) == []  # the file itself is fine: secrets are looked for where they are used
    problems = [str(p) for p in check_file(path, {"CNC_USER": "operator"})]
    assert problems == [
        f"{path}:10:55: devices[0].mqtt.password_env: printer-01 needs the environment variable"
        " BAMBU_X1C_ACCESS_CODE: not set",
        f"{path}:16:74: devices[1].opcua.password_env: cnc-01 needs the environment variable CNC_PASSWORD: not set",
        f"{path}:17:78: devices[1].opcua.security.private_key_password_env: cnc-01 needs the environment variable"
        " GW_KEY: not set",
    ]
    environ = {"CNC_USER": "operator", "CNC_PASSWORD": "pw", "GW_KEY": "k", "BAMBU_X1C_ACCESS_CODE": "12345678"}
    devices = load_devices(path, environ)
    from fabhub.gateway_setup import gateway_devices

    printer, cnc = gateway_devices(devices, environ)
    assert printer.settings.password == "12345678" and printer.settings.username == "bblp"
    assert (cnc.settings.username, cnc.settings.password) == ("operator", "pw")
    assert cnc.settings.security.private_key_password == "k"
    assert "12345678" not in path.read_text()


def test_serve_names_a_missing_access_code_before_starting_anything(tmp_path):
    import os

    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FABHUB_", "BAMBU_"))}
    result = fabhub("serve", env={**env, "FABHUB_DATA_DIR": str(data)})
    assert result.returncode == 2
    assert "devices[4].mqtt.password_env: printer-01 needs the environment variable BAMBU_PRINTER_01_ACCESS_CODE" in (
        result.stderr
    )
    assert not data.exists()
    check = fabhub("devices", "check", "devices.yaml", env=env)
    assert check.returncode == 0 and check.stdout.strip() == "devices.yaml: ok"
    assert "BAMBU_PRINTER_01_ACCESS_CODE: not set (needed where the gateway runs)" in check.stderr


OUT_OF_RANGE = """\
center: {name: x}
classes:
  cnc:
    name: C
    hourly_rate: "10.00"
    rules: {late_cancellation: 99999999999d, max_future_hours_per_org: 99999999999999999999}
subsidy_programs:
  p: {name: P, share: 0.2, classes: [cnc], valid_from: 2025-13-45, valid_to: 2025-12-31, annual_cap: 1e400}
devices:
  - id: robot-01
    name: R
    class: cnc
    protocol: modbus
    endpoint: tcp://10.0.0.9:502
    heartbeat: .inf
    ideal_cycle_time: -99999999999999999999999
    modbus: {poll_interval: 1e400, timeout: .nan, unit: 0x1ffffffffffffffffffffffff}
    signals:
      parts_total: {address: 1, counter: true, max_per_s: 1e999, scale: .nan}
      robot_mode: {address: %s, min: -.inf}
    states:
      - {state: running, when: {signal: robot_mode, gt: .nan}}
""" % ("9" * 5000)  # more digits than Python turns into an int


def test_values_out_of_range_are_problems_with_line_and_key(tmp_path):
    path = tmp_path / "devices.yaml"
    path.write_text(OUT_OF_RANGE, encoding="utf-8")
    problems = {(p.line, p.column, p.path): p.message for p in check_file(path)}
    assert problems == {
        (6, 13, "classes.cnc.rules.late_cancellation"): "'99999999999d' is out of range: a duration is positive and"
        " at most 366d",
        (6, 46, "classes.cnc.rules.max_future_hours_per_org"): "Input should be less than or equal to 100000",
        (8, 44, "subsidy_programs.p.valid_from"): "Input should be a valid date or datetime, month value is outside"
        " expected range of 1-12",
        (8, 90, "subsidy_programs.p.annual_cap"): "Input should be a finite number",
        (15, 5, "devices[0].heartbeat"): "inf is not a finite duration",
        (16, 5, "devices[0].ideal_cycle_time"): "-99999999999999999999999 is out of range: a duration is positive and"
        " at most 366d",
        (17, 14, "devices[0].modbus.poll_interval"): "inf is not a finite duration",
        (17, 36, "devices[0].modbus.timeout"): "nan is not a finite duration",
        (17, 51, "devices[0].modbus.unit"): "Input should be less than or equal to 247",
        (19, 48, "devices[0].signals.parts_total.max_per_s"): "Input should be a finite number",
        (19, 66, "devices[0].signals.parts_total.scale"): "Input should be a finite number",
        (20, 20, "devices[0].signals.robot_mode.address"): "Unable to parse input string as an integer, exceeded"
        " maximum size",
        (20, 5031, "devices[0].signals.robot_mode.min"): "Input should be a finite number",
        (22, 53, "devices[0].states[0].when.gt"): "Input should be a finite number",
    }


DEVICE = "devices:\n  - {id: r1, name: R, class: cnc, protocol: modbus, endpoint: 'tcp://h:502', %s}\n"
HEAD = "center: {name: x}\nclasses:\n  cnc: {name: C, hourly_rate: '10'}\n"


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (HEAD + DEVICE % "heartbeat: 2025-02-30", "5:78: devices[0].heartbeat", "'2025-02-30' is not a duration"),
        (HEAD + DEVICE % "heartbeat: !!int abc", "5:78: devices[0].heartbeat", "'abc' is not a duration"),
        (HEAD + DEVICE % "retired: !!bool maybe", "5:78: devices[0].retired", "valid boolean"),
        (HEAD + DEVICE % "name: !!binary aGk=", "5:78: devices[0].name", "unsupported YAML tag !!binary"),
        (HEAD + DEVICE % "modbus: !local {unit: 1}", "5:78: devices[0].modbus", "unsupported YAML tag !local"),
        (HEAD + DEVICE % "states: !!set {a}", "5:78: devices[0].states", "unsupported YAML tag !!set"),
        (HEAD + "devices: &a\n  - *a\n", "4:10: devices[0]", "an alias (*) inside its own anchor (&): a loop"),
        (HEAD + "x-a: &a {<<: *a}\n" + DEVICE % "", "4:10: x-a.<<", "an alias (*) inside its own anchor (&)"),
        (HEAD + DEVICE % "states: &s [{state: idle, all: *s}]", "5:104: devices[0].states[0].all", "a loop"),
        (HEAD + "devices:\n  - {id: [1], class: {a: 1}}\n  - {id: [1]}\n", "5:5: devices[0]", "discriminator"),
        (HEAD + "devices: " + "[" * 3000 + "]" * 3000 + "\n", "4:3009", "YAML: nested too deeply"),
    ],
)
def test_yaml_oddities_are_problems_with_line_and_key(tmp_path, text, where, message):
    path = tmp_path / "devices.yaml"
    path.write_text(text, encoding="utf-8")
    problems = [str(p) for p in check_file(path)]
    assert any(p.startswith(f"{path}:{where}: ") and message in p for p in problems), problems


PROBLEM_LINE = r"^\s*{path}:\d+:\d+: [\w.\[\]-]+: \S.*$"


def test_cli_check_and_serve_report_values_out_of_range_without_a_traceback(tmp_path):
    import re

    path = tmp_path / "devices.yaml"
    path.write_text(OUT_OF_RANGE, encoding="utf-8")
    check = fabhub("devices", "check", str(path))
    assert check.returncode == 1
    assert "Traceback" not in check.stdout + check.stderr
    lines = check.stdout.splitlines()
    assert len(lines) == 14
    assert all(re.match(PROBLEM_LINE.format(path=re.escape(str(path))), line) for line in lines), lines
    assert f"{path}:6:13: classes.cnc.rules.late_cancellation: '99999999999d' is out of range" in check.stdout

    data = tmp_path / "data"
    serve = fabhub("serve", env=environment(FABHUB_DEVICES=str(path), FABHUB_DATA_DIR=str(data)))
    assert serve.returncode == 2
    assert "Traceback" not in serve.stdout + serve.stderr
    problems = serve.stderr.splitlines()[1:]
    assert len(problems) == 14
    assert all(re.match(PROBLEM_LINE.format(path=re.escape(str(path))), line) for line in problems), problems
    assert not data.exists()


@pytest.mark.parametrize(
    "value", ["99999999999d", "1e400", ".nan", "-.inf", "9" * 30, "2025-13-45", "!!binary aGk=", "!x 1", "&a [*a]"]
)
def test_cli_check_never_prints_a_traceback_for_a_bad_duration(tmp_path, value):
    path = tmp_path / "devices.yaml"
    path.write_text(HEAD + DEVICE % f"heartbeat: {value}", encoding="utf-8")
    result = fabhub("devices", "check", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stdout.startswith(f"{path}:5:"), result.stdout  # the key, or the list an alias loops in
    assert ": devices[0].heartbeat" in result.stdout
