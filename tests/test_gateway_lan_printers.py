"""Bambu printers in LAN mode, as they ship: each its own TLS broker (user bblp, the access code, a
certificate issued to its serial), reached with a connection of its own next to the site broker's."""

import asyncio
import contextlib
import json
import ssl
import time
from datetime import timedelta

import pytest

from gateway.adapters.mqtt import BrokerLink, MqttHub
from gateway.adapters.tls import LinkRefused
from gateway.config import MqttSettings
from simulators.machine import Machine
from simulators.mqtt_printer import printer_profile
from simulators.printer_broker import LanPrinter, PrinterBroker
from tests.gateway_rig import ACCESS_CODE, eventually, printer, rig

X1C, P1S = "00M09A350100001", "01P00A391800002"
STATE = "SELECT state FROM telemetry_state WHERE device_id = %s ORDER BY time DESC LIMIT 1"


def lan_printer(serial: str, cert_dir, code: str = ACCESS_CODE, mode: str = "delta") -> LanPrinter:
    sim = LanPrinter(serial, Machine(7, printer_profile()), access_code=code, cert_dir=cert_dir, mode=mode, speed=0)
    sim.printer.machine.force("running", 3600)
    return sim


def status(r, device_id: str):
    return next(s for s in r.gateway.statuses if s.device_id == device_id)


async def test_a_lan_printer_and_a_site_broker_printer_in_one_gateway(db_url, tmp_path, mosquitto):
    lan = lan_printer(X1C, tmp_path / "certs", mode="delta")  # P1-style: only deltas, pushall for the rest
    site = printer(P1S, mosquitto.port, mode="full")
    site.machine.force("running", 3600)
    async with rig(db_url, tmp_path, {"printer-01": lan, "printer-02": site}, mqtt_url=mosquitto.url) as r:
        await lan.printer.tick(60)
        await site.tick(60)
        await r.state_becomes("printer-01", "running")
        await r.state_becomes("printer-02", "running")
        # the full report asked for on connecting gave every value, not only the last delta's
        rows = await r.until(
            "SELECT DISTINCT signal FROM telemetry_sample WHERE device_id = 'printer-01'",
            lambda rows: {"temperature.nozzle", "temperature.bed", "progress_pct"} <= {s for (s,) in rows},
        )
        assert rows
        assert len(r.gateway.own_hubs) == 1 and r.gateway.hub is not None
        assert status(r, "printer-01").connection == "online" and status(r, "printer-01").last_error is None


async def test_a_wrong_access_code_shows_as_the_device_error_and_recovers_when_it_is_right(db_url, tmp_path):
    lan = lan_printer(X1C, tmp_path / "certs", code="11112222")
    async with rig(db_url, tmp_path, {"printer-01": lan}, access_code="99998888", reconnect_max_s=1) as r:
        await eventually(lambda: status(r, "printer-01").reconnects >= 1 and status(r, "printer-01").last_error)
        await eventually(lambda: status(r, "printer-01").errors["LinkRefused"] >= 3)  # retried, never crashed
        s = status(r, "printer-01")
        assert s.connection == "offline" and "not authorized" in s.last_error, s.last_error
        # the technician reads the code off the printer's screen again: here the printer takes ours
        await lan.stop()
        fixed = LanPrinter(X1C, lan.printer.machine, access_code="99998888", cert_dir=tmp_path / "certs",
                           port=lan.broker.port, speed=0)  # fmt: skip
        await fixed.start()
        try:
            await fixed.printer.tick(60)
            await r.state_becomes("printer-01", "running", timeout=30)
            assert status(r, "printer-01").connection == "online"
        finally:
            await fixed.stop()


@pytest.mark.parametrize("pin", ["right", "wrong"])
async def test_a_pinned_certificate(db_url, tmp_path, pin):
    lan = lan_printer(X1C, tmp_path / "certs")
    other = PrinterBroker("09X99", "00000000", tmp_path / "other")  # another device's certificate
    fingerprint = lan.broker.fingerprint if pin == "right" else other.fingerprint
    pinned = {"printer-01": {"mqtt": {"ca_file": None, "tls_fingerprint": fingerprint}}}
    async with rig(db_url, tmp_path, {"printer-01": lan}, overrides=pinned, reconnect_max_s=1) as r:
        if pin == "right":
            await lan.printer.tick(60)
            await r.state_becomes("printer-01", "running")
        else:
            await eventually(lambda: status(r, "printer-01").errors["CertificateMismatch"] >= 2)
            error = status(r, "printer-01").last_error
            assert "certificate mismatch: SHA-256 " in error and f"pinned {other.fingerprint}" in error
            assert await r.rows(STATE, "printer-01") in ([], [("offline",)])


async def test_a_certificate_issued_to_another_serial_or_not_by_the_trusted_ca_is_refused(db_url, tmp_path):
    lan = lan_printer(X1C, tmp_path / "certs")
    stranger = PrinterBroker(P1S, "00000000", tmp_path / "certs")  # same folder, another printer's certificate
    async with rig(db_url, tmp_path, {"printer-01": lan}, reconnect_max_s=1,
                   overrides={"printer-01": {"mqtt": {"ca_file": stranger.cert_path}}}) as r:  # fmt: skip
        await eventually(lambda: status(r, "printer-01").last_error is not None)
        assert "certificate mismatch" in status(r, "printer-01").last_error


async def test_an_unreadable_ca_file_is_the_devices_error_not_the_gateways(db_url, tmp_path, mosquitto):
    lan = lan_printer(X1C, tmp_path / "certs")
    site = printer(P1S, mosquitto.port, mode="full")
    site.machine.force("running", 3600)
    missing = {"printer-01": {"mqtt": {"ca_file": tmp_path / "nowhere" / "bambu.pem"}}}
    sims = {"printer-01": lan, "printer-02": site}
    async with rig(db_url, tmp_path, sims, mqtt_url=mosquitto.url, overrides=missing, reconnect_max_s=1) as r:
        await eventually(lambda: status(r, "printer-01").errors["LinkRefused"] >= 2)
        assert "nowhere/bambu.pem: cannot be read" in status(r, "printer-01").last_error
        await site.tick(60)
        await r.state_becomes("printer-02", "running")  # the others are served all the same


async def test_the_access_code_is_never_sent_to_a_device_failing_the_pin(tmp_path):
    """The pin is checked inside the handshake, before CONNECT: an impostor presenting another certificate
    receives not one byte of MQTT, so never the access code."""
    impostor = PrinterBroker(X1C, ACCESS_CODE, tmp_path / "impostor")  # only its certificate is used
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(impostor.cert_path, impostor.key_path)
    received: list[bytes] = []

    async def listen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            received.append(await reader.read(1024))
        except (OSError, ssl.SSLError):  # the client hung up in the middle of TLS: nothing was sent either
            received.append(b"")
        with contextlib.suppress(OSError, ssl.SSLError):
            writer.close()

    server = await asyncio.start_server(listen, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    settings = MqttSettings(serial=X1C, username="bblp", tls_fingerprint="ab" * 32)
    link = BrokerLink.for_device(
        "printer-01", f"mqtts://127.0.0.1:{port}", settings.model_copy(update={"password": "31415926"})
    )
    hub = MqttHub(link)
    try:
        with pytest.raises(LinkRefused, match=f"certificate mismatch: SHA-256 {impostor.fingerprint}"):
            await hub.open(5)
        await eventually(lambda: received != [])
        assert received == [b""]  # the connection closed without a CONNECT
    finally:
        await hub.stop()
        server.close()
        await server.wait_closed()


async def test_report_times_from_the_payload_and_one_count_per_problem(db_url, tmp_path, mosquitto):
    """`time_json` takes a report's own time (epoch seconds, milliseconds or ISO 8601); an impossible one
    refuses the report with its reason. Each refused report counts once in the device's errors."""
    sim = printer(P1S, mosquitto.port, mode="full")
    override = {"printer-02": {"mqtt": {"time_json": "print.timestamp", "offline_after": timedelta(minutes=5)}}}
    async with rig(db_url, tmp_path, {"printer-02": sim}, mqtt_url=mosquitto.url, overrides=override) as r:
        await eventually(lambda: r.gateway.hub.connected.is_set())
        await r.state_becomes("printer-02", "idle")  # the answer to the gateway's full-report request came first
        topic = f"device/{P1S}/report"
        sent_at = int(time.time()) + 60  # a printer whose clock runs a minute ahead: later than what it sent before
        sim.publish_raw(json.dumps({"print": {"gcode_state": "RUNNING", "timestamp": sent_at}}).encode(), topic)
        rows = await r.until(
            "SELECT extract(epoch FROM time)::bigint, state FROM telemetry_state WHERE device_id = 'printer-02'",
            lambda rows: (sent_at, "running") in rows,
        )
        assert rows
        later_ms = (sent_at + 10) * 1000
        sim.publish_raw(json.dumps({"print": {"gcode_state": "FAILED", "timestamp": later_ms}}).encode(), topic)
        await r.until(
            "SELECT extract(epoch FROM time)::bigint, state FROM telemetry_state WHERE device_id = 'printer-02'",
            lambda rows: (sent_at + 10, "down") in rows,
        )
        ahead = int(time.time()) + 3600
        sim.publish_raw(json.dumps({"print": {"gcode_state": "IDLE", "timestamp": ahead}}).encode(), topic)
        sim.publish_raw(b'{"print": {"gcode_state": ', topic)
        quarantined = await r.until(
            "SELECT reason FROM telemetry_quarantine WHERE device_id = 'printer-02' ORDER BY id",
            lambda rows: len(rows) == 2,
        )
        assert "ahead of the gateway's clock" in quarantined[0][0] and "malformed JSON" in quarantined[1][0]
        assert await r.state("printer-02") == "down"  # the refused report changed nothing
        errors = status(r, "printer-02").errors
        assert sum(errors.values()) == 2 and all(n == 1 for n in errors.values()), errors


async def test_a_printer_back_on_the_network_is_online_at_the_next_retry(db_url, tmp_path):
    lan = lan_printer(X1C, tmp_path / "certs")
    async with rig(db_url, tmp_path, {"printer-01": lan}, reconnect_max_s=2) as r:
        await lan.printer.tick(60)
        await r.state_becomes("printer-01", "running")
        await lan.broker.stop()  # the printer leaves the network
        await r.state_becomes("printer-01", "offline")
        await eventually(lambda: status(r, "printer-01").errors["ConnectionRefusedError"] >= 3)
        await lan.broker.start()
        failed = status(r, "printer-01").errors["ConnectionRefusedError"]
        await lan.printer.reconnect()
        await lan.printer.tick(60)
        await r.state_becomes("printer-01", "running")
        # at most the attempt already under way failed; the next one found it
        assert status(r, "printer-01").errors["ConnectionRefusedError"] <= failed + 1


async def test_the_devices_route_of_the_running_app_names_a_refused_access_code(db_url, pool, tmp_path):
    from accounts.model import Role
    from tests.accounts_rig import as_role
    from tests.gateway_rig import ACCESS_CODE_VARIABLE, LAN, devices_for
    from tests.http import serve

    lan = lan_printer(X1C, tmp_path / "certs", code="11112222")
    await lan.start()
    environ = {ACCESS_CODE_VARIABLE: "99998888"}  # what the gateway's machine was given
    mqtt = {**LAN, "ca_file": lan.broker.cert_path}
    devices = devices_for(["printer-01"], {}, {"printer-01": {"endpoint": lan.url, "mqtt": mqtt}})
    try:
        async with serve(db_url, devices=devices, run_gateway=True, data_dir=tmp_path, environ=environ) as api:
            api.headers.update(await as_role(pool, api, Role.technician))

            async def refused() -> bool:
                body = (await api.get("/api/v1/devices/printer-01")).json()
                return "not authorized" in (body["last_error"] or "")

            await eventually(refused)
            body = (await api.get("/api/v1/devices/printer-01")).json()
            assert body["connection"] == "offline" and body["protocol"] == "mqtt"
            assert body["errors"]["LinkRefused"] >= 1
    finally:
        await lan.stop()
