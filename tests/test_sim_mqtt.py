"""The MQTT printer simulator over a real Mosquitto, seen through a bare paho subscriber as a consumer would
see it. The clock is driven by explicit ticks (speed 0), so nothing here depends on timing."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
from typing import Any

from fabhub.devservices import Mosquitto
from simulators.machine import Machine
from simulators.mqtt_printer import MqttPrinter, printer_profile
from tests.mqtt_listener import Listener

FIELDS = {
    "command",
    "msg",
    "sequence_id",
    "gcode_state",
    "mc_percent",
    "mc_remaining_time",
    "layer_num",
    "total_layer_num",
    "nozzle_temper",
    "nozzle_target_temper",
    "bed_temper",
    "bed_target_temper",
    "chamber_temper",
    "print_error",
    "hms",
    "gcode_file",
    "subtask_name",
    "spd_lvl",
    "big_fan1_speed",
    "cooling_fan_speed",
    "heatbreak_fan_speed",
    "wifi_signal",
}
NUMERIC = {
    "msg",
    "mc_percent",
    "mc_remaining_time",
    "layer_num",
    "total_layer_num",
    "nozzle_temper",
    "nozzle_target_temper",
    "bed_temper",
    "bed_target_temper",
    "chamber_temper",
    "print_error",
    "spd_lvl",
}
PUSHALL = json.dumps({"pushing": {"sequence_id": "0", "command": "pushall", "version": 1, "push_target": 1}})
_ids = itertools.count()


def make_printer(broker: Mosquitto, serial: str, machine: Machine | None = None, **kw: Any) -> MqttPrinter:
    machine = machine or Machine(1, printer_profile())
    kw.setdefault("speed", 0)
    return MqttPrinter(serial, "127.0.0.1", broker.port, machine, **kw)


def report_topic(serial: str) -> str:
    return f"device/{serial}/report"


async def test_reports_arrive_and_parse(mosquitto: Mosquitto) -> None:
    serial = "01S00A000000001"
    async with Listener(mosquitto, report_topic(serial)) as listener, make_printer(mosquitto, serial) as p:
        topic, payload = await listener.message()
        assert topic == f"device/{serial}/report"
        first = json.loads(payload)["print"]
        assert set(first) == FIELDS
        assert first["command"] == "push_status" and first["msg"] == 0
        assert first["gcode_state"] == "IDLE"
        assert first["print_error"] == 0 and first["hms"] == []
        assert all(isinstance(first[k], int | float) for k in NUMERIC)
        assert isinstance(first["mc_percent"], int) and isinstance(first["nozzle_temper"], float)
        assert all(isinstance(first[k], str) for k in ("big_fan1_speed", "cooling_fan_speed"))
        assert re.fullmatch(r"-\d+dBm", first["wifi_signal"])
        await p.tick(1)
        second = await listener.report()
        assert int(second["sequence_id"]) == int(first["sequence_id"]) + 1
        assert second == p.state


async def test_gcode_state_follows_the_machine(mosquitto: Mosquitto) -> None:
    serial = "01S00A000000002"
    async with Listener(mosquitto, report_topic(serial)) as listener, make_printer(mosquitto, serial) as p:
        await listener.report()
        p.machine.force("running", 7200)
        await p.tick(600)
        running = (await listener.reports_until(p))[-1]
        assert running["gcode_state"] == "RUNNING"
        assert 0 <= running["mc_percent"] <= 100 and running["mc_remaining_time"] > 0
        assert running["nozzle_target_temper"] == 220.0 and 100 < running["nozzle_temper"] <= 220.0
        assert 0 < running["layer_num"] <= running["total_layer_num"]

        p.machine.force("down", 900)
        await p.tick(300)
        failed = (await listener.reports_until(p))[-1]
        assert failed["gcode_state"] == "FAILED"
        assert failed["print_error"] == int(p.machine.state.alarm_code.replace("_", ""), 16) != 0
        assert len(failed["hms"]) == 1
        assert all(isinstance(failed["hms"][0][k], int) for k in ("attr", "code"))
        assert failed["nozzle_target_temper"] == 0.0 and failed["nozzle_temper"] < running["nozzle_temper"]

        await p.tick(900)  # the alarm clears and the machine carries on
        resumed = (await listener.reports_until(p))[-1]
        assert resumed["gcode_state"] == "RUNNING"
        assert resumed["print_error"] == 0 and resumed["hms"] == []


async def test_a_finished_print_shows_finish_until_the_next_job(mosquitto: Mosquitto) -> None:
    serial = "01S00A000000003"
    profile = printer_profile(idle_s=(100, 100), setup_s=(300, 300), ideal_cycle_s=1800, cycle_scatter=0)
    machine = Machine(3, profile)
    async with (
        Listener(mosquitto, report_topic(serial)) as listener,
        make_printer(mosquitto, serial, machine) as p,
    ):
        await listener.report()
        await p.tick(25 + 300 + 1800 + 30)  # the rest of the first idle spell, setup, one print
        reports = await listener.reports_until(p)
        states = [k for k, _ in itertools.groupby(r["gcode_state"] for r in reports)]
        assert states == ["PREPARE", "RUNNING", "FINISH"]
        finished = reports[-1]
        assert finished["mc_percent"] == 100 and finished["mc_remaining_time"] == 0
        assert finished["layer_num"] == finished["total_layer_num"] > 0
        assert finished["subtask_name"] in profile.programs

        await p.tick(120)
        nxt = (await listener.reports_until(p))[-1]
        assert nxt["gcode_state"] == "PREPARE" and nxt["mc_percent"] == 0


async def test_delta_mode_sends_changes_that_merge_into_the_state(mosquitto: Mosquitto) -> None:
    serial = "01P00A000000004"
    async with (
        Listener(mosquitto, report_topic(serial)) as listener,
        make_printer(mosquitto, serial, mode="delta", stringly=0.3) as p,
    ):
        first = await listener.report()
        assert set(first) == FIELDS
        merged = dict(first)

        async def step(sim_seconds: float) -> list[dict[str, Any]]:
            await p.tick(sim_seconds)
            deltas = await listener.reports_until(p)
            for delta in deltas:
                assert {"command", "sequence_id"} <= set(delta)
                for key, value in delta.items():
                    if key not in ("command", "sequence_id"):
                        assert json.dumps(merged.get(key)) != json.dumps(value), key
                merged.update(delta)
            assert merged == p.state
            return deltas

        (quiet,) = await step(0)
        assert set(quiet) <= {"command", "sequence_id", "wifi_signal"}  # nothing happened
        p.machine.force("running", 7200)
        assert (await step(60))[-1]["gcode_state"] == "RUNNING"
        assert "gcode_state" not in (await step(60))[-1]
        p.machine.force("down", 300)
        await step(30)
        await step(600)
        p.machine.force("idle", 600)
        await step(600)


async def test_pushall_gets_a_full_report(mosquitto: Mosquitto) -> None:
    serial = "01P00A000000005"
    async with (
        Listener(mosquitto, report_topic(serial)) as listener,
        make_printer(mosquitto, serial, mode="delta") as p,
    ):
        await listener.report()
        p.machine.force("running", 7200)
        await p.tick(60)
        await listener.reports_until(p)
        request = f"device/{serial}/request"
        for junk in (b"\xff not json", b'{"pushing": 5}', b'{"print": {"command": "stop"}}'):
            listener.client.publish(request, junk, qos=1)  # ignored, as a printer would
        listener.client.publish(request, PUSHALL, qos=1)
        answer = await listener.report()
        assert set(answer) == FIELDS
        assert answer == p.state


async def test_stringly_sends_numbers_as_strings(mosquitto: Mosquitto) -> None:
    serial = "01S00A000000006"
    async with (
        Listener(mosquitto, report_topic(serial)) as listener,
        make_printer(mosquitto, serial, stringly=1.0) as p,
    ):
        first = await listener.report()
        assert all(isinstance(first[k], str) for k in NUMERIC)
        assert float(first["nozzle_temper"]) > 0 and int(first["mc_percent"]) == 0
        assert first["gcode_state"] == "IDLE" and first["hms"] == []
        p.override({"layer_num": 250})  # overrides go out exactly as given
        await p.tick(1)
        assert (await listener.report())["layer_num"] == 250


async def test_publish_raw_and_override_deliver_what_was_asked(mosquitto: Mosquitto) -> None:
    serial = "01S00A000000007"
    async with (
        Listener(mosquitto, f"device/{serial}/#") as listener,
        make_printer(mosquitto, serial) as p,
    ):
        await listener.report()
        p.publish_raw(b"\x00\xff garbage")
        assert await listener.message() == (report_topic(serial), b"\x00\xff garbage")
        p.publish_raw(b'{"print": {', topic=f"device/{serial}/unknown")
        assert await listener.message() == (f"device/{serial}/unknown", b'{"print": {')

        p.override({"mc_percent": "abc", "layer_num": 250, "nozzle_temper": float("nan"), "extra": None})
        for _ in range(2):  # an override lasts until cleared
            await p.tick(1)
            _, payload = await listener.message()
            assert b'"nozzle_temper": NaN' in payload
            report = json.loads(payload)["print"]
            assert report["mc_percent"] == "abc" and report["layer_num"] == 250 and report["extra"] is None
            assert math.isnan(report["nozzle_temper"])
        p.clear_overrides()
        await p.tick(1)
        report = await listener.report()
        assert report["mc_percent"] == 0 and math.isfinite(report["nozzle_temper"]) and "extra" not in report


async def _run_script(broker: Mosquitto, serial: str, seed: int) -> list[bytes]:
    machine = Machine(11, printer_profile(idle_s=(100, 100), setup_s=(200, 400), ideal_cycle_s=1200))
    payloads = []
    async with (
        Listener(broker, report_topic(serial)) as listener,
        make_printer(broker, serial, machine, mode="delta", stringly=0.3, seed=seed) as p,
    ):
        payloads.append((await listener.message())[1])
        for sim_seconds in (30, 300, 600, 600, 900):
            await p.tick(sim_seconds)
            while True:
                payload = (await listener.message())[1]
                payloads.append(payload)
                if json.loads(payload)["print"]["sequence_id"] == p.state["sequence_id"]:
                    break
        p.machine.force("down", 300)
        await p.tick(60)
        payloads.append((await listener.message())[1])
    return payloads


async def test_same_seed_same_reports(mosquitto: Mosquitto) -> None:
    first = await _run_script(mosquitto, "01P00A000000008", seed=5)
    again = await _run_script(mosquitto, "01P00A000000009", seed=5)
    other = await _run_script(mosquitto, "01P00A000000010", seed=6)
    assert len(first) > 6
    assert first == again
    assert first != other


async def test_reconnecting_starts_with_a_full_report(mosquitto: Mosquitto) -> None:
    serial = "01P00A000000011"
    async with (
        Listener(mosquitto, report_topic(serial)) as listener,
        make_printer(mosquitto, serial, mode="delta") as p,
    ):
        await listener.report()
        p.machine.force("running", 7200)
        await p.tick(60)
        assert set((await listener.reports_until(p))[-1]) < FIELDS
        await p.disconnect()
        await p.tick(600)  # made while offline: lost
        await p.reconnect()
        back = (await listener.reports_until(p))[-1]
        assert set(back) == FIELDS and back == p.state
        assert back["gcode_state"] == "RUNNING"


async def test_survives_a_broker_restart(mosquitto: Mosquitto) -> None:
    serial = "01P00A000000012"
    async with (
        Listener(mosquitto, report_topic(serial)) as listener,
        make_printer(mosquitto, serial, mode="delta") as p,
    ):
        await listener.report()
        listener.subscribed.clear()
        await asyncio.to_thread(mosquitto.restart)
        await asyncio.wait_for(listener.subscribed.wait(), 10)

        async def ask() -> dict[str, Any]:
            while True:  # the printer may come back after the listener: ask until it answers
                listener.client.publish(f"device/{serial}/request", PUSHALL, qos=1)
                try:
                    return await asyncio.wait_for(listener.report(), 0.5)
                except TimeoutError:
                    continue

        report = await asyncio.wait_for(ask(), 10)
        assert set(report) == FIELDS and report["gcode_state"] == p.state["gcode_state"]


async def test_the_driver_loop_runs_the_clock(mosquitto: Mosquitto) -> None:
    serial = "01S00A000000013"
    machine = Machine(3, printer_profile(idle_s=(100, 100), setup_s=(300, 300), ideal_cycle_s=1800))
    async with (
        Listener(mosquitto, report_topic(serial)) as listener,
        make_printer(mosquitto, serial, machine, speed=3600, report_interval_s=0.1),
    ):
        seen = []
        while "FINISH" not in seen:  # a print's worth of simulated time, a second or so of real time
            seen.append((await listener.report())["gcode_state"])
        assert [k for k, _ in itertools.groupby(seen)] == ["IDLE", "PREPARE", "RUNNING", "FINISH"]
