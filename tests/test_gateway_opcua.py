"""The OPC UA path end to end: CNC simulator -> gateway -> TimescaleDB."""

from asyncua import ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID

from fabhub.devservices import free_port
from gateway.config import OpcUaSecurity
from simulators.machine import Machine, Profile
from simulators.opcua_cnc import OpcUaCnc
from tests.gateway_rig import cnc, rig


async def test_cnc_values_states_alarms_and_quality(db_url, tmp_path):
    sim = cnc("cnc-01")
    sim.machine.force("running", 3600)
    sim.machine.set_counters(41, 40)
    async with rig(db_url, tmp_path, {"cnc-01": sim}) as r:
        await sim.tick(1)
        await r.state_becomes("cnc-01", "running")
        speeds = await r.until(
            "SELECT value FROM telemetry_sample WHERE device_id = 'cnc-01' AND signal = 'spindle_speed'",
            lambda rows: any(v > 1000 for (v,) in rows),
        )
        assert all(0 <= v <= 40000 for (v,) in speeds)
        await r.until(
            "SELECT value FROM telemetry_text_sample WHERE device_id = 'cnc-01' AND signal = 'program'",
            lambda rows: (sim.machine.state.program,) in rows,
        )
        await r.until(
            "SELECT value FROM telemetry_sample WHERE device_id = 'cnc-01' AND signal = 'parts_total' "
            "ORDER BY time DESC LIMIT 1",
            lambda rows: rows == [(41,)],
        )
        # an alarm: down state and the alarm text from the event
        sim.machine.force("down", 600)
        await sim.tick(1)
        await r.state_becomes("cnc-01", "down")
        alarm = await r.until(
            "SELECT value FROM telemetry_text_sample WHERE device_id = 'cnc-01' AND signal = 'alarm' ORDER BY time",
            lambda rows: any(sim.machine.state.alarm_code in v for (v,) in rows),
        )
        assert sim.machine.state.alarm_text in alarm[-1][0]
        # the alarm clears when the machine runs again
        sim.machine.force("running", 3600)
        await sim.tick(1)
        await r.until(
            "SELECT value FROM telemetry_text_sample WHERE device_id = 'cnc-01' AND signal = 'alarm' "
            "ORDER BY time DESC LIMIT 1",
            lambda rows: rows == [("",)],
        )
        await r.state_becomes("cnc-01", "running")
        # a bad StatusCode becomes bad quality, not a value (channel_state: asyncua's server-side deadband
        # filter cannot compare a value-less bad status, so the test uses a signal without a deadband)
        await sim.set_status("channel_state", ua.StatusCodes.BadSensorFailure)
        await r.until(
            "SELECT value, quality FROM telemetry_sample WHERE device_id = 'cnc-01' AND signal = 'channel_state' "
            "ORDER BY time DESC LIMIT 1",
            lambda rows: rows == [(0.0, 2)],  # the last good value, marked bad
        )
        status = next(s for s in r.gateway.statuses if s.device_id == "cnc-01")
        assert status.errors["status BadSensorFailure"] >= 1


async def test_wrong_type_is_quarantined(db_url, tmp_path):
    sim = cnc("cnc-01")
    sim.machine.force("running", 3600)
    async with rig(db_url, tmp_path, {"cnc-01": sim}) as r:
        await sim.tick(1)
        await r.state_becomes("cnc-01", "running")
        await sim.write_raw("program_state_number", "fast", ua.VariantType.String)
        rows = await r.until(
            "SELECT signal, value, reason FROM telemetry_quarantine WHERE device_id = 'cnc-01'",
            lambda rows: any(s == "program_state" for s, _, _ in rows),
        )
        assert ("program_state", "fast", "expected a number, got text") in rows


async def test_server_restart_is_offline_then_back(db_url, tmp_path):
    sim = cnc("cnc-01")
    sim.machine.force("running", 3600)
    async with rig(db_url, tmp_path, {"cnc-01": sim}) as r:
        await sim.tick(1)
        await r.state_becomes("cnc-01", "running")
        await sim.stop()
        await r.state_becomes("cnc-01", "offline")
        await sim.start()
        await sim.tick(1)
        await r.state_becomes("cnc-01", "running")


async def test_username_and_password(db_url, tmp_path):
    def server() -> OpcUaCnc:
        sim = OpcUaCnc("cnc-01", free_port(), Machine(2, Profile()), speed=0, username="operator", password="s3cret")
        sim.machine.force("running", 3600)
        return sim

    async with rig(db_url, tmp_path, {"cnc-01": server()}) as r:
        # the shipped settings have no credentials: refused, offline, the reason kept
        await r.state_becomes("cnc-01", "offline")
        assert r.gateway.statuses[0].connection == "offline"
        assert r.gateway.statuses[0].last_error
    sim = server()
    with_login = {"opcua": {"username": "operator", "password": "s3cret"}}
    async with rig(db_url, tmp_path, {"cnc-01": sim}, overrides={"cnc-01": with_login}) as r:
        await sim.tick(1)
        await r.state_becomes("cnc-01", "running")
        assert r.gateway.statuses[0].connection == "online"


async def test_sign_and_encrypt_with_certificates(db_url, tmp_path):
    keys = {}
    for role, use in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key, cert = tmp_path / f"{role}.pem", tmp_path / f"{role}.der"
        uri = "urn:fabhub:sim:cnc-01:server" if role == "server" else "urn:fabhub:gateway"
        await setup_self_signed_certificate(key, cert, uri, "localhost", [use], {"organizationName": "FabHub"})
        keys[role] = (cert, key)
    sim = OpcUaCnc(
        "cnc-01", free_port(), Machine(2, Profile()), speed=0, username="operator", password="s3cret",
        certificate=keys["server"][0], private_key=keys["server"][1],
    )  # fmt: skip
    sim.machine.force("running", 3600)
    security = OpcUaSecurity(mode="SignAndEncrypt", certificate=keys["client"][0], private_key=keys["client"][1])
    login = {"opcua": {"username": "operator", "password": "s3cret", "security": security}}
    async with rig(db_url, tmp_path, {"cnc-01": sim}, overrides={"cnc-01": login}) as r:
        await sim.tick(1)
        await r.state_becomes("cnc-01", "running")
        assert r.gateway.statuses[0].connection == "online"
