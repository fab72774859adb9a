"""The OPC UA path end to end: CNC simulator -> gateway -> TimescaleDB."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.adapters.opcua import CLOCK_AHEAD_ERROR
from gateway.config import OpcUaSecurity, OpcUaSignal, StateRule
from simulators.machine import Machine, Profile
from simulators.opcua_cnc import OpcUaCnc
from tests import gateway_rig
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
        sim = OpcUaCnc("cnc-01", 0, Machine(2, Profile()), speed=0, username="operator", password="s3cret")
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
        "cnc-01", 0, Machine(2, Profile()), speed=0, username="operator", password="s3cret",
        certificate=keys["server"][0], private_key=keys["server"][1],
    )  # fmt: skip
    sim.machine.force("running", 3600)
    # the gateway's key encrypted, as it is stored on site; its password, like the login, from the environment
    key = serialization.load_pem_private_key(keys["client"][1].read_bytes(), None)
    encryption = serialization.BestAvailableEncryption(b"key-password")
    keys["client"][1].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    security = OpcUaSecurity(
        mode="SignAndEncrypt",
        certificate=keys["client"][0],
        private_key=keys["client"][1],
        private_key_password_env="GATEWAY_KEY_PASSWORD",
    )
    login = {"opcua": {"username": "${CNC_USER}", "password_env": "CNC_PASSWORD", "security": security}}
    environ = {"CNC_USER": "operator", "CNC_PASSWORD": "s3cret", "GATEWAY_KEY_PASSWORD": "key-password"}
    async with rig(db_url, tmp_path, {"cnc-01": sim}, overrides={"cnc-01": login}, environ=environ) as r:
        await sim.tick(1)
        await r.state_becomes("cnc-01", "running")
        assert r.gateway.statuses[0].connection == "online"


# -- Machinery and MachineTool values: NodeIds, LocalizedText, enumerations, source timestamps ------------------

MA = "http://opcfoundation.org/UA/Machinery/"
# MachineryItemState_StateMachineType's states (UA-Nodeset Machinery/Opc.Ua.Machinery.NodeSet2.xml), as the
# adapter tells a NodeId: the namespace by its URI, so the text is the same on every server.
EXECUTING, NOT_EXECUTING, OUT_OF_SERVICE = (f"nsu={MA};i={i}" for i in (5006, 5007, 5004))
ITEM_STATE = "MA:MachineryBuildingBlocks/MA:MachineryItemState/0:CurrentState"
MACHINERY_SIGNALS = {
    "machinery_state_id": {"path": f"{ITEM_STATE}/0:Id"},  # NodeId
    "machinery_state": {"path": ITEM_STATE, "mode": "poll"},  # LocalizedText, read every poll
    "server_state": {"node": "i=2259"},  # ServerStatus/State: an enumeration whose DataType has EnumStrings
}
MACHINERY_RULES = [
    {"state": "down", "when": {"signal": "machinery_state_id", "eq": OUT_OF_SERVICE}},
    {"state": "running", "when": {"signal": "machinery_state_id", "eq": EXECUTING}},
    {"state": "idle"},
]


def machinery_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """cnc-01 as shipped plus the Machinery signals, its state derived from the MachineryItemState id alone."""
    shipped = gateway_rig.devices_for

    def devices_for(ids: list[str], ports: dict[str, int], overrides: dict | None = None) -> Any:
        file = shipped(ids, ports, overrides)
        signals = {name: OpcUaSignal.model_validate(spec) for name, spec in MACHINERY_SIGNALS.items()}
        states = [StateRule.model_validate(rule) for rule in MACHINERY_RULES]
        devices = [
            d.model_copy(update={"signals": {**d.signals, **signals}, "states": states}) if d.id == "cnc-01" else d
            for d in file.devices
        ]
        return file.model_copy(update={"devices": devices})

    monkeypatch.setattr(gateway_rig, "devices_for", devices_for)


class SourceClock:
    """The simulator's clock, `skew` off ours, remembering every time it stamped a value with."""

    def __init__(self, skew: timedelta = timedelta(0)) -> None:
        self.skew = skew
        self.stamps: set[datetime] = set()

    def __call__(self) -> datetime:
        now = datetime.now(UTC) + self.skew
        self.stamps.add(now)
        return now


def cnc_with(clock: SourceClock) -> OpcUaCnc:
    return OpcUaCnc("cnc-01", 0, Machine(2, Profile(ideal_cycle_s=240)), speed=0, clock=clock)


async def text_becomes(r: Any, signal: str, value: str) -> datetime:
    """Wait until the latest text of `signal` is `value`; the time of its first sample with that value."""
    latest = (
        "SELECT value FROM telemetry_text_sample WHERE device_id = 'cnc-01' AND signal = %s ORDER BY time DESC LIMIT 1"
    )
    await r.until(latest, lambda rows: rows == [(value,)], signal)
    first = "SELECT min(time) FROM telemetry_text_sample WHERE device_id = 'cnc-01' AND signal = %s AND value = %s"
    return (await r.rows(first, signal, value))[0][0]


async def test_machinery_state_id_text_and_enumeration_names(db_url, tmp_path, monkeypatch):
    machinery_config(monkeypatch)
    clock = SourceClock()
    sim = cnc_with(clock)
    sim.machine.force("running", 3600)
    phases = [
        # phase, derived state, CurrentState/Id, CurrentState, OperationMode's name
        ("running", "running", EXECUTING, "Executing", "Automatic"),
        ("idle", "idle", NOT_EXECUTING, "NotExecuting", "Manual"),
        ("down", "down", OUT_OF_SERVICE, "OutOfService", "Service"),
        ("running", "running", EXECUTING, "Executing", "Automatic"),
    ]
    async with rig(db_url, tmp_path, {"cnc-01": sim}) as r:
        for phase, state, state_id, state_text, mode in phases:
            sim.machine.force(phase, 3600)
            await sim.tick(1)
            await r.state_becomes("cnc-01", state)
            # each reading carries the time the server stamped its value with (subscribed and polled alike)
            assert await text_becomes(r, "machinery_state_id", state_id) in clock.stamps, phase
            assert await text_becomes(r, "machinery_state", state_text) in clock.stamps, phase
            assert await text_becomes(r, "operation_mode.name", mode) in clock.stamps, phase
        # the enumeration itself still comes as its number
        await r.until(
            "SELECT value FROM telemetry_sample WHERE device_id = 'cnc-01' AND signal = 'operation_mode' "
            "ORDER BY time DESC LIMIT 1",
            lambda rows: rows == [(1.0,)],
        )
        await text_becomes(r, "channel_state.name", "Active")  # MachineTool's ChannelState: EnumValues
        await text_becomes(r, "server_state.name", "Running")  # ServerState: EnumStrings
        # a number outside its enumeration: the number goes on, its name is quarantined
        await sim.write_raw("operation_mode", 9, ua.VariantType.Int32)
        await r.until(
            "SELECT value FROM telemetry_sample WHERE device_id = 'cnc-01' AND signal = 'operation_mode' "
            "ORDER BY time DESC LIMIT 1",
            lambda rows: rows == [(9.0,)],
        )
        await r.until(
            "SELECT signal, value, reason FROM telemetry_quarantine WHERE device_id = 'cnc-01'",
            lambda rows: ("operation_mode.name", "9", "not a value of its enumeration") in rows,
        )


async def test_node_id_forms_and_unknown_namespace(db_url, tmp_path, monkeypatch):
    machinery_config(monkeypatch)
    sim = cnc_with(SourceClock())
    sim.machine.force("running", 3600)
    async with rig(db_url, tmp_path, {"cnc-01": sim}) as r:
        await sim.tick(1)
        await r.state_becomes("cnc-01", "running")
        async with Client(sim.endpoint) as client:
            ns = await client.get_namespace_array()
        guid = uuid.UUID("09087e75-8e5e-499b-954f-f2a9603db28a")
        forms = [
            (ua.NodeId("Job 1", ns.index(sim.namespace)), f"nsu={sim.namespace};s=Job 1"),
            (ua.NodeId(guid, ns.index(MA), ua.NodeIdType.Guid), f"nsu={MA};g={guid}"),
            (ua.NodeId(b"\x01\x02\xff", ns.index(MA), ua.NodeIdType.ByteString), f"nsu={MA};b=AQL/"),
            (ua.NodeId(2259, 0), "i=2259"),  # namespace 0 needs no URI
        ]
        for node_id, text in forms:
            await sim.write_raw("machinery_state_id", node_id, ua.VariantType.NodeId)
            await text_becomes(r, "machinery_state_id", text)
        # an index the namespace array does not have: no text that could be mistaken for a state
        await sim.write_raw("machinery_state_id", ua.NodeId(7, len(ns) + 3), ua.VariantType.NodeId)
        reason = f"NodeId namespace index {len(ns) + 3} is not in the server's namespace array"
        await r.until(
            "SELECT signal, reason FROM telemetry_quarantine WHERE device_id = 'cnc-01'",
            lambda rows: ("machinery_state_id", reason) in rows,
        )


async def test_server_clock_ahead_keeps_values_on_our_clock(db_url, tmp_path):
    clock = SourceClock(skew=timedelta(hours=1))
    sim = cnc_with(clock)
    sim.machine.force("running", 3600)
    async with rig(db_url, tmp_path, {"cnc-01": sim}) as r:
        await sim.tick(1)
        await r.state_becomes("cnc-01", "running")  # the values are kept
        program = sim.machine.state.program
        await text_becomes(r, "program", program)
        sim.machine.force("idle", 3600)
        await sim.tick(1)
        await r.state_becomes("cnc-01", "idle")
        rows = await r.rows("SELECT time FROM telemetry_text_sample WHERE device_id = 'cnc-01'")
        assert rows
        assert all(t < min(clock.stamps) for (t,) in rows)  # on our clock, not the server's hour ahead
        status = next(s for s in r.gateway.statuses if s.device_id == "cnc-01")
        assert status.errors[CLOCK_AHEAD_ERROR] == 1  # one wrong clock, counted once
