"""The MQTT path end to end: Bambu-style printer simulator -> Mosquitto -> gateway -> TimescaleDB."""

import json
from datetime import timedelta

import paho.mqtt.client as mqtt

from tests.gateway_rig import printer, rig

SERIAL = "01P00A391800002"  # printer-02 in devices.yaml


async def test_printer_states_values_and_bad_payloads(db_url, tmp_path, mosquitto):
    sim = printer(SERIAL, mosquitto.port, mode="delta")
    sim.machine.force("running", 3600)
    async with rig(db_url, tmp_path, {"printer-02": sim}, mqtt_url=mosquitto.url) as r:
        await sim.tick(60)
        await r.state_becomes("printer-02", "running")
        await r.until(
            "SELECT value FROM telemetry_sample WHERE device_id = 'printer-02' AND signal = 'temperature.nozzle'",
            lambda rows: bool(rows),
        )
        await r.until(
            "SELECT value FROM telemetry_text_sample WHERE device_id = 'printer-02' AND signal = 'program'",
            lambda rows: rows == [(sim.machine.state.program,)],
        )
        # delta reports merge into the last known state: a later delta without the program keeps it
        progress = sim.state["mc_percent"]
        await r.until(
            "SELECT value FROM telemetry_sample WHERE device_id = 'printer-02' AND signal = 'progress_pct' "
            "ORDER BY time DESC LIMIT 1",
            lambda rows: rows == [(float(progress),)],
        )
        sim.machine.force("down", 600)
        await sim.tick(1)
        await r.state_becomes("printer-02", "down")

        # garbage: malformed JSON, wrong types, out-of-range values, NaN; and another site's printer, whose
        # topic this gateway does not subscribe to: neither stored nor quarantined
        sim.publish_raw(b"{not json")
        sim.publish_raw(b'{"print": {"gcode_state": "RUNNING"}}', topic="device/UNKNOWN9/report")
        sim.override({"mc_percent": "abc", "nozzle_temper": 999.0, "bed_temper": float("nan")})
        await sim.tick(1)
        rows = await r.until(
            "SELECT device_id, signal, reason FROM telemetry_quarantine ORDER BY id",
            lambda rows: len(rows) >= 4,
        )
        reasons = {(d, s, reason.split(":")[0]) for d, s, reason in rows}
        assert ("printer-02", "payload", "malformed JSON") in reasons
        assert not [d for d, _s, _r in rows if d != "printer-02"]
        assert ("printer-02", "progress_pct", "not a number") in reasons
        assert ("printer-02", "temperature.nozzle", "out of range [-20.0, 350.0]") in reasons
        assert ("printer-02", "temperature.bed", "value is not finite") in reasons
        bad_values = await r.rows(
            "SELECT 1 FROM telemetry_sample WHERE device_id = 'printer-02' AND (value = 999 OR value = 'NaN')"
        )
        assert bad_values == []
        status = next(s for s in r.gateway.statuses if s.device_id == "printer-02")
        assert status.connection == "online"


async def test_silent_printer_goes_offline_and_comes_back(db_url, tmp_path, mosquitto):
    sim = printer(SERIAL, mosquitto.port)
    sim.machine.force("running", 3600)
    async with rig(db_url, tmp_path, {"printer-02": sim}, mqtt_url=mosquitto.url) as r:
        await sim.tick(1)
        await r.state_becomes("printer-02", "running")
        await sim.disconnect()
        await r.state_becomes("printer-02", "offline")
        await sim.reconnect()
        await sim.tick(1)
        await r.state_becomes("printer-02", "running")


class Silent:
    """A device that is there for the gateway's list but says nothing itself."""

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


async def test_messages_sent_while_fabhub_was_away_are_delivered(db_url, tmp_path, mosquitto):
    """QoS 1 with a persistent session: the broker keeps what arrives while the gateway is down."""
    sim = printer(SERIAL, mosquitto.port, mode="full")
    sim.machine.force("running", 3600)
    async with rig(db_url, tmp_path, {"printer-02": sim}, mqtt_url=mosquitto.url) as r:
        await sim.tick(1)
        await r.state_becomes("printer-02", "running")
    # the gateway is gone; the printer reports a failed print meanwhile
    witness = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="witness")
    witness.connect("127.0.0.1", mosquitto.port)
    witness.loop_start()
    payload = {"print": {"command": "push_status", "gcode_state": "FAILED", "print_error": 50348044}}
    witness.publish(f"device/{SERIAL}/report", json.dumps(payload), qos=1).wait_for_publish(10)
    witness.disconnect()
    witness.loop_stop()
    # the printer stays silent after that report: give it time before it counts as offline, so the state the
    # report set is still the latest when the test looks (on a loaded machine, 2 s may pass before it does)
    patient = {"printer-02": {"mqtt": {"offline_after": timedelta(minutes=1)}}}
    async with rig(db_url, tmp_path, {"printer-02": Silent()}, mqtt_url=mosquitto.url, overrides=patient) as r:
        await r.until(
            "SELECT value FROM telemetry_sample WHERE device_id = 'printer-02' AND signal = 'print_error'",
            lambda rows: (50348044.0,) in rows,
        )
        await r.state_becomes("printer-02", "down")


async def test_a_stream_cut_by_a_gateway_restart_arrives_whole(db_url, tmp_path, mosquitto):
    """Every report published is stored once, whether the gateway took it before its stop (passed on
    during the stop) or the broker kept it for the persistent session until the gateway came back."""
    silent = {"printer-02": Silent()}
    async with rig(db_url, tmp_path, silent, mqtt_url=mosquitto.url) as r:
        await r.until("SELECT 1", lambda rows: r.gateway.hub.connected.is_set())
    witness = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="witness-stream")
    witness.connect("127.0.0.1", mosquitto.port)
    witness.loop_start()
    n = 600
    async with rig(db_url, tmp_path, silent, mqtt_url=mosquitto.url) as r:
        await r.until("SELECT 1", lambda rows: r.gateway.hub.connected.is_set())
        for i in range(n):
            body = {"print": {"gcode_state": "RUNNING", "layer_num": i, "mc_percent": i % 100}}
            witness.publish(f"device/{SERIAL}/report", json.dumps(body), qos=1)
            if i == n // 2:
                break  # half now, while the gateway runs; the rest while it is away
        # the gateway stops here, in the middle of receiving
    for i in range(n // 2 + 1, n):
        body = {"print": {"gcode_state": "RUNNING", "layer_num": i, "mc_percent": i % 100}}
        witness.publish(f"device/{SERIAL}/report", json.dumps(body), qos=1).wait_for_publish(10)
    witness.loop_stop()
    async with rig(db_url, tmp_path, silent, mqtt_url=mosquitto.url) as r:
        layers = await r.until(
            "SELECT value FROM telemetry_sample WHERE device_id = 'printer-02' AND signal = 'layer' ORDER BY value",
            lambda rows: len(rows) >= n,
        )
        assert [v for (v,) in layers] == [float(i) for i in range(n)]
