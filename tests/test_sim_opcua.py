"""The OPC UA CNC simulator seen from a bare asyncua client over a real socket: the OPC 40501 browse paths
resolve, values and alarm events follow the machine, and the fault-injection helpers do what the gateway's
fault tests expect. The simulators run with speed=0 and explicit ticks, so nothing depends on timing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, Node, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID

from simulators.machine import Machine
from simulators.opcua_cnc import OpcUaCnc

MA = "http://opcfoundation.org/UA/Machinery/"
MT = "http://opcfoundation.org/UA/MachineTool/"
DEVICE = "cnc-7"

# Written out from the brief rather than imported, so a wrong path in the simulator shows up here.
PATHS = {
    "operation_mode": "MT:Monitoring/MT:MachineTool/MT:OperationMode",
    "feed_override": "MT:Monitoring/MT:MachineTool/MT:FeedOverride",
    "channel_state": "MT:Monitoring/inst:Channel 1/MT:ChannelState",
    "spindle_rotating": "MT:Monitoring/inst:Spindle 1/MT:IsRotating",
    "spindle_override": "MT:Monitoring/inst:Spindle 1/MT:Override",
    "spindle_speed": "MT:Monitoring/inst:Spindle 1/inst:ActSpeed",
    "program": "MT:Production/MT:ActiveProgram/MT:Name",
    "program_state": "MT:Production/MT:ActiveProgram/MT:State/0:CurrentState",
    "program_state_number": "MT:Production/MT:ActiveProgram/MT:State/0:CurrentState/0:Number",
    "job": "MT:Production/MT:ProductionPlan/inst:Job 1/MT:Identifier",
    "parts_completed": "MT:Production/MT:ProductionPlan/inst:Job 1/MT:PartsCompleted",
    "parts_good": "MT:Production/MT:ProductionPlan/inst:Job 1/MT:PartsGood",
    "machinery_state": "MT:Monitoring/MT:MachineTool/MA:MachineryItemState/0:CurrentState",
    "machinery_state_id": "MT:Monitoring/MT:MachineTool/MA:MachineryItemState/0:CurrentState/0:Id",
}
TYPES = {
    "operation_mode": ua.VariantType.Int32,
    "feed_override": ua.VariantType.Double,
    "channel_state": ua.VariantType.Int32,
    "spindle_rotating": ua.VariantType.Boolean,
    "spindle_override": ua.VariantType.Double,
    "spindle_speed": ua.VariantType.Double,
    "program": ua.VariantType.String,
    "program_state": ua.VariantType.LocalizedText,
    "program_state_number": ua.VariantType.UInt32,
    "job": ua.VariantType.String,
    "parts_completed": ua.VariantType.UInt32,
    "parts_good": ua.VariantType.UInt32,
    "machinery_state": ua.VariantType.LocalizedText,
    "machinery_state_id": ua.VariantType.NodeId,
}
# MachineryItemState_StateMachineType's states in the Machinery NodeSet (UA-Nodeset Machinery/Opc.Ua.Machinery.NodeSet2.xml):
# name -> (NodeId in the Machinery namespace, StateNumber)
MACHINERY_STATES = {
    "NotAvailable": (5005, 0),
    "OutOfService": (5004, 1),
    "NotExecuting": (5007, 2),
    "Executing": (5006, 3),
}
TIMEOUT = 5.0


class Collector:
    """Subscription handler that queues what arrives."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        self.queue.put_nowait(val)

    def event_notification(self, event: Any) -> None:
        self.queue.put_nowait(event)

    async def until(self, predicate: Callable[[Any], bool]) -> Any:
        async with asyncio.timeout(TIMEOUT):
            while not predicate(item := await self.queue.get()):
                pass
        return item


async def resolve(client: Client, path: str, device: str = DEVICE) -> Node:
    """Translate a browse path below the machine object, namespace prefixes resolved via NamespaceArray."""
    ns = await client.get_namespace_array()
    index = {"0": 0, "MA": ns.index(MA), "MT": ns.index(MT), "inst": ns.index(f"urn:fabhub:sim:{device}")}
    segments = ["MA:Machines", f"inst:{device}", *(path.split("/") if path else [])]
    qnames = [f"{index[prefix]}:{name}" for prefix, _, name in (s.partition(":") for s in segments)]
    return await client.nodes.objects.get_child(qnames)


async def machinery_state(client: Client, name: str) -> ua.NodeId:
    """The NodeId of a MachineryItemState state, in the Machinery namespace as this server numbers it."""
    return ua.NodeId(MACHINERY_STATES[name][0], (await client.get_namespace_array()).index(MA))


async def read_all(client: Client, device: str = DEVICE) -> dict[str, Any]:
    return {key: await (await resolve(client, path, device)).read_value() for key, path in PATHS.items()}


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[OpcUaCnc]:
    async with OpcUaCnc(DEVICE, 0, Machine(seed=7), speed=0) as server:
        yield server


@pytest.fixture
async def client(sim: OpcUaCnc) -> AsyncIterator[Client]:
    async with Client(sim.endpoint) as c:
        yield c


async def test_browse_paths_resolve(client: Client) -> None:
    for key, path in PATHS.items():
        node = await resolve(client, path)
        assert await node.read_node_class() == ua.NodeClass.Variable, key
        assert (await node.read_data_value()).Value.VariantType == TYPES[key], key
    for path in ("", "MT:Notification/MT:Messages"):
        notifier = await (await resolve(client, path)).read_event_notifier()
        assert ua.EventNotifier.SubscribeToEvents in notifier, path


async def test_values_follow_machine(sim: OpcUaCnc, client: Client) -> None:
    sim.machine.force("running", 3600)
    await sim.tick(10)
    values = await read_all(client)
    assert values["spindle_rotating"] is True
    assert values["channel_state"] == 0
    assert values["operation_mode"] == 1
    assert values["program_state"].Text == "Running"
    assert values["program_state_number"] == 1
    assert values["spindle_speed"] > 0
    assert values["program"] == sim.machine.state.program
    assert values["job"].startswith(sim.machine.state.program)
    assert values["machinery_state"].Text == "Executing"
    assert values["machinery_state_id"] == await machinery_state(client, "Executing")

    sim.machine.force("idle", 3600)
    await sim.tick(10)
    values = await read_all(client)
    assert values["spindle_rotating"] is False
    assert values["channel_state"] == 2
    assert values["operation_mode"] == 0
    assert values["program_state_number"] == 2
    assert values["spindle_speed"] == 0
    assert values["machinery_state"].Text == "NotExecuting"
    assert values["machinery_state_id"] == await machinery_state(client, "NotExecuting")

    sim.machine.force("setup", 3600)
    await sim.tick(10)
    assert (await read_all(client))["machinery_state_id"] == await machinery_state(client, "NotExecuting")


async def test_machinery_item_state_as_the_specs_place_it(sim: OpcUaCnc, client: Client) -> None:
    """One MachineryItemState, where MachineTool 1.02 puts it and where Machinery's building blocks find it;
    its CurrentState's Id is the state object of the Machinery NodeSet's state machine type."""
    sim.machine.force("running", 3600)
    await sim.tick(1)
    in_monitoring = await resolve(client, "MT:Monitoring/MT:MachineTool/MA:MachineryItemState")
    in_blocks = await resolve(client, "MA:MachineryBuildingBlocks/MA:MachineryItemState")
    assert in_monitoring.nodeid == in_blocks.nodeid
    ns = await client.get_namespace_array()
    state_type = await in_blocks.read_type_definition()
    assert (state_type.Identifier, ns[state_type.NamespaceIndex]) == (1002, MA)
    assert await client.get_node(state_type).read_browse_name() == ua.QualifiedName(
        "MachineryItemState_StateMachineType", ns.index(MA)
    )
    for name, (identifier, number) in MACHINERY_STATES.items():
        state = client.get_node(ua.NodeId(identifier, ns.index(MA)))
        assert await state.read_browse_name() == ua.QualifiedName(name, ns.index(MA))
        assert await (await state.get_child("0:StateNumber")).read_value() == number
        assert await state.read_type_definition() == ua.NodeId(ua.ObjectIds.StateType)
    current = await in_blocks.get_child("0:CurrentState")
    state_id = await (await current.get_child("0:Id")).read_value()
    assert await client.get_node(state_id).read_browse_name() == ua.QualifiedName("Executing", ns.index(MA))
    assert (await current.read_value()).Text == "Executing"


async def test_enumerations_carry_their_data_types(client: Client) -> None:
    """OperationMode and ChannelState hold Int32 values of the MachineTool NodeSet's enumerations, whose
    EnumValues tell the names, as on a server built from the NodeSet."""
    ns = await client.get_namespace_array()
    expected = {
        "operation_mode": (65, ["Manual", "Automatic", "Setup", "AutoWithManualIntervention", "Service", "Other"]),
        "channel_state": (64, ["Active", "Interrupted", "Reset"]),
    }
    for key, (identifier, names) in expected.items():
        data_type = await (await resolve(client, PATHS[key])).read_data_type()
        assert (data_type.Identifier, ns[data_type.NamespaceIndex]) == (identifier, MT), key
        node = client.get_node(data_type)
        supertype = (await node.get_references(ua.ObjectIds.HasSubtype, ua.BrowseDirection.Inverse))[0].NodeId
        assert supertype == ua.NodeId(ua.ObjectIds.Enumeration), key
        enum_values = await (await node.get_child("0:EnumValues")).read_value()
        assert [(v.Value, v.DisplayName.Text) for v in enum_values] == list(enumerate(names)), key


async def test_alarm_events(sim: OpcUaCnc, client: Client) -> None:
    ns = await client.get_namespace_array()
    alert_type = await client.nodes.base_event_type.get_child(f"{ns.index(MT)}:AlertType")
    on_messages, on_machine = Collector(), Collector()
    for collector, path in ((on_messages, "MT:Notification/MT:Messages"), (on_machine, "")):
        sub = await client.create_subscription(50, collector)
        await sub.subscribe_events(await resolve(client, path), alert_type)

    sim.machine.force("down", 600)
    await sim.tick(1)
    code, text = sim.machine.state.alarm_code, sim.machine.state.alarm_text
    raised = await on_messages.until(lambda e: e.ErrorCode == code)
    assert raised.Active is True
    assert raised.Severity == 700
    assert raised.Message.Text == text
    assert raised.SourceName == DEVICE
    assert (await on_machine.until(lambda e: e.ErrorCode == code)).Active is True
    values = await read_all(client)
    assert (values["operation_mode"], values["channel_state"], values["program_state_number"]) == (4, 1, 3)
    assert values["machinery_state"].Text == "OutOfService"
    assert values["machinery_state_id"] == await machinery_state(client, "OutOfService")

    sim.machine.force("running", 3600)
    await sim.tick(1)
    cleared = await on_messages.until(lambda e: e.ErrorCode == code)
    assert cleared.Active is False
    assert cleared.Severity == 100
    assert cleared.Message.Text == text


async def test_parts_counter_subscription(sim: OpcUaCnc, client: Client) -> None:
    node = await resolve(client, PATHS["parts_completed"])
    start = await node.read_value()
    collector = Collector()
    sub = await client.create_subscription(50, collector)
    await sub.subscribe_data_change(node)
    sim.machine.force("running", 3600)
    for _ in range(3):
        await sim.tick(600)  # the first part is done after one ideal cycle (240 s +- 8 %)
    assert await collector.until(lambda v: v > start) > start


async def test_set_status_then_recovers(sim: OpcUaCnc, client: Client) -> None:
    node = await resolve(client, PATHS["parts_good"])
    await sim.set_status("parts_good", ua.StatusCodes.BadSensorFailure)
    dv = await node.read_data_value(raise_on_bad_status=False)
    assert dv.StatusCode.value == ua.StatusCodes.BadSensorFailure
    with pytest.raises(ua.UaStatusCodeError):
        await node.read_value()

    state = sim.machine.state
    sim.machine.set_counters(state.parts_total + 5, state.parts_good + 5)
    await sim.tick(0)
    dv = await node.read_data_value()
    assert dv.StatusCode.is_good()
    assert dv.Value.Value == sim.machine.state.parts_good


async def test_write_raw_reaches_subscribers(sim: OpcUaCnc, client: Client) -> None:
    node = await resolve(client, PATHS["spindle_speed"])
    collector = Collector()
    sub = await client.create_subscription(50, collector)
    await sub.subscribe_data_change(node)
    sim.machine.force("running", 3600)
    await sim.tick(1)
    await sim.write_raw("spindle_speed", "n/a", ua.VariantType.String)
    assert await collector.until(lambda v: isinstance(v, str)) == "n/a"
    assert (await node.read_data_value()).Value.VariantType == ua.VariantType.String

    await sim.tick(1)  # the spindle speed jitters, so the next tick is a change
    assert isinstance(await collector.until(lambda v: isinstance(v, float)), float)
    assert (await node.read_data_value()).Value.VariantType == ua.VariantType.Double


async def test_counter_reset_is_published(sim: OpcUaCnc, client: Client) -> None:
    sim.machine.set_counters(2**32 - 1, 2**32 - 1)
    await sim.tick(0)
    assert await (await resolve(client, PATHS["parts_completed"])).read_value() == 2**32 - 1
    sim.machine.reset_counters()
    await sim.tick(0)
    assert await (await resolve(client, PATHS["parts_completed"])).read_value() == 0


async def test_background_ticks(sim: OpcUaCnc) -> None:
    sim.machine.force("running", 10**6)
    sim.speed = 3600.0  # about a part per tick
    await sim.restart()  # the ticking task starts with the server
    try:
        async with Client(sim.endpoint) as client:
            node = await resolve(client, PATHS["parts_completed"])
            start = await node.read_value()
            collector = Collector()
            sub = await client.create_subscription(50, collector)
            await sub.subscribe_data_change(node)
            assert await collector.until(lambda v: v > start) > start
            assert (await node.read_data_value()).SourceTimestamp.tzinfo is not None
    finally:
        sim.speed = 0
        await sim.restart()


async def test_stop_refuses_and_restart_keeps_counters(sim: OpcUaCnc) -> None:
    sim.machine.set_counters(1000, 990)
    await sim.tick(0)
    old = Client(sim.endpoint)
    await old.connect()
    await sim.stop()
    with pytest.raises(ConnectionRefusedError):
        await Client(sim.endpoint, timeout=2).connect()
    with contextlib.suppress(Exception):
        await old.disconnect()

    await sim.start()
    await sim.restart()
    async with Client(sim.endpoint) as again:
        values = await read_all(again)
    assert (values["parts_completed"], values["parts_good"]) == (1000, 990)


async def test_same_seed_same_values() -> None:
    sims = [OpcUaCnc(f"twin-{i}", 0, Machine(seed=42), speed=0) for i in range(2)]
    for s in sims:
        await s.start()
    try:
        async with Client(sims[0].endpoint) as a, Client(sims[1].endpoint) as b:
            seen = set()
            for _ in range(12):
                for s in sims:
                    await s.tick(900)
                values = await read_all(a, "twin-0")
                assert values == await read_all(b, "twin-1")
                seen.add(values["program_state_number"])
            assert len(seen) > 1  # the run went through more than one state
    finally:
        for s in sims:
            await s.stop()


async def test_username_and_certificates(tmp_path: Path) -> None:
    port = 0  # a free one, held from the start
    keys = {}
    for role, use in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key, cert = tmp_path / f"{role}.pem", tmp_path / f"{role}.der"
        uri = f"urn:fabhub:sim:{DEVICE}:server" if role == "server" else "urn:fabhub:test:client"
        await setup_self_signed_certificate(key, cert, uri, "localhost", [use], {"organizationName": "FabHub"})
        keys[role] = (cert, key)
    sim = OpcUaCnc(
        DEVICE,
        port,
        Machine(seed=1),
        speed=0,
        username="op",
        password="s3cret",
        certificate=keys["server"][0],
        private_key=keys["server"][1],
    )
    async with sim:
        endpoints = await Client(sim.endpoint).connect_and_get_server_endpoints()
        offered = {(e.SecurityPolicyUri.rpartition("#")[2], e.SecurityMode) for e in endpoints}
        assert offered == {
            ("None", ua.MessageSecurityMode.None_),
            ("Basic256Sha256", ua.MessageSecurityMode.Sign),
            ("Basic256Sha256", ua.MessageSecurityMode.SignAndEncrypt),
        }

        with pytest.raises(ua.uaerrors.BadIdentityTokenRejected):  # anonymous
            async with Client(sim.endpoint):
                pass
        wrong = Client(sim.endpoint)
        wrong.set_user("op")
        wrong.set_password("guess")
        with pytest.raises(ua.uaerrors.BadUserAccessDenied):
            await wrong.connect()

        secure = Client(sim.endpoint)
        secure.application_uri = "urn:fabhub:test:client"
        secure.set_user("op")
        secure.set_password("s3cret")
        cert, key = keys["client"]
        await secure.set_security_string(f"Basic256Sha256,SignAndEncrypt,{cert},{key}")
        async with secure:
            assert await (await resolve(secure, PATHS["program_state_number"])).read_value() == 2
