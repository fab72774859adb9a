"""A CNC machine tool behind an OPC UA server, laid out along the OPC 40501-1 (MachineTool 1.02) browse
paths that the gateway reads. It only translates a `Machine`'s state: variables are written when the
machine changes, so subscriptions fire on change, and alarms arrive as `MT:AlertType` events, as on a real
umati machine. The machine's state is also told the Machinery way (OPC 40001-1 MachineryItemState: CurrentState
as text and its language-independent Id), and the enumerations carry their real DataTypes with EnumValues, as
a server built from the companion NodeSets has them. Fault-injection helpers give the gateway's tests bad status
codes, wrongly typed values, counter resets and an unreachable server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import Node, Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.event_generator import EventGenerator
from asyncua.server.user_managers import UserManager

from simulators.machine import Machine, MachineState

_log = logging.getLogger(__name__)

DI_URI = "http://opcfoundation.org/UA/DI/"
MA_URI = "http://opcfoundation.org/UA/Machinery/"
MT_URI = "http://opcfoundation.org/UA/MachineTool/"

# MachineryItemState_StateMachineType and its states as the Machinery NodeSet defines them: NodeIds in the
# Machinery namespace, with their StateNumbers. Source: github.com/OPCFoundation/UA-Nodeset, file
# Machinery/Opc.Ua.Machinery.NodeSet2.xml (Machinery 1.03.0 of 2023-08-01), commit
# a2d4ae8b337ff9f014878fc88f9b6acda0ff3674: ns=1;i=1002 MachineryItemState_StateMachineType,
# ns=1;i=5005 NotAvailable (StateNumber 0), ns=1;i=5004 OutOfService (1), ns=1;i=5007 NotExecuting (2),
# ns=1;i=5006 Executing (3).
MACHINERY_ITEM_STATE_TYPE = 1002
MACHINERY_STATES = {  # name -> (NodeId, StateNumber, NodeId of its StateNumber property)
    "NotAvailable": (5005, 0, 6039),
    "OutOfService": (5004, 1, 6038),
    "NotExecuting": (5007, 2, 6041),
    "Executing": (5006, 3, 6040),
}
# The machine's phase as a MachineryItemState: a short stop, setup and idle perform no activity; a fault makes the
# machine not functional. NotAvailable (switched off, energy saving) has no phase here.
MACHINERY_ITEM_STATE = {
    "running": "Executing",
    "microstop": "NotExecuting",
    "setup": "NotExecuting",
    "idle": "NotExecuting",
    "down": "OutOfService",
}
# Where MachineTool 1.02 puts it (MachineToolType/Monitoring/MachineTool, HasAddIn); the machine's
# MA:MachineryBuildingBlocks folder references the same object, which is where Machinery (OPC 40001-1) looks.
MACHINERY_ITEM_STATE_PATH = "MT:Monitoring/MT:MachineTool/MA:MachineryItemState"
BUILDING_BLOCKS = "MA:MachineryBuildingBlocks"

# Enumerations of the MachineTool NodeSet (same repository and commit, MachineTool/Opc.Ua.MachineTool.NodeSet2.xml):
# key -> (DataType id in the MachineTool namespace, its EnumValues property's id, BrowseName, names by value).
ENUMERATIONS: dict[str, tuple[int, int, str, tuple[str, ...]]] = {
    "operation_mode": (
        65,
        320,
        "MachineOperationMode",
        ("Manual", "Automatic", "Setup", "AutoWithManualIntervention", "Service", "Other"),
    ),
    "channel_state": (64, 266, "ChannelState", ("Active", "Interrupted", "Reset")),
}

# key -> (browse path below Objects/MA:Machines/inst:<device_id>, variant type). `inst:` is the instance
# namespace; vendor variables live there, as does the naming of channels, spindles and jobs.
VARIABLES: dict[str, tuple[str, ua.VariantType]] = {
    "operation_mode": ("MT:Monitoring/MT:MachineTool/MT:OperationMode", ua.VariantType.Int32),
    "feed_override": ("MT:Monitoring/MT:MachineTool/MT:FeedOverride", ua.VariantType.Double),
    "channel_state": ("MT:Monitoring/inst:Channel 1/MT:ChannelState", ua.VariantType.Int32),
    "spindle_rotating": ("MT:Monitoring/inst:Spindle 1/MT:IsRotating", ua.VariantType.Boolean),
    "spindle_override": ("MT:Monitoring/inst:Spindle 1/MT:Override", ua.VariantType.Double),
    "spindle_speed": ("MT:Monitoring/inst:Spindle 1/inst:ActSpeed", ua.VariantType.Double),
    "program": ("MT:Production/MT:ActiveProgram/MT:Name", ua.VariantType.String),
    "program_state": ("MT:Production/MT:ActiveProgram/MT:State/0:CurrentState", ua.VariantType.LocalizedText),
    "program_state_number": (
        "MT:Production/MT:ActiveProgram/MT:State/0:CurrentState/0:Number",
        ua.VariantType.UInt32,
    ),
    "job": ("MT:Production/MT:ProductionPlan/inst:Job 1/MT:Identifier", ua.VariantType.String),
    "parts_completed": (
        "MT:Production/MT:ProductionPlan/inst:Job 1/MT:PartsCompleted",
        ua.VariantType.UInt32,
    ),
    "parts_good": ("MT:Production/MT:ProductionPlan/inst:Job 1/MT:PartsGood", ua.VariantType.UInt32),
    "machinery_state": (f"{MACHINERY_ITEM_STATE_PATH}/0:CurrentState", ua.VariantType.LocalizedText),
    "machinery_state_id": (f"{MACHINERY_ITEM_STATE_PATH}/0:CurrentState/0:Id", ua.VariantType.NodeId),
}
MESSAGES = "MT:Notification/MT:Messages"

OPERATION_MODE = {"running": 1, "microstop": 1, "setup": 2, "idle": 0, "down": 4}  # MT:MachineOperationMode
CHANNEL_STATE = {"running": 0, "microstop": 1, "down": 1, "idle": 2, "setup": 2}  # MT:ChannelState
PROGRAM_STATE = {  # ProductionProgramStateMachineType: CurrentState and its StateNumber
    "setup": ("Initializing", 0),
    "running": ("Running", 1),
    "idle": ("Ended", 2),
    "microstop": ("Interrupted", 3),
    "down": ("Interrupted", 3),
}
ALARM_SEVERITY, CLEARED_SEVERITY = 700, 100


class _OneUser(UserManager):
    """asyncua user manager that admits a single username/password and nobody else."""

    def __init__(self, username: str, password: str | None) -> None:
        self.username, self.password = username, password

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        if username == self.username and password == self.password:
            return User(role=UserRole.User, name=username)
        return None


class OpcUaCnc:
    """The OPC UA face of one `Machine`, on `host:port` (port 0: a free one, in `port` and `endpoint` once
    started). With `speed` > 0 a background task steps the machine
    `tick_s * speed` simulated seconds every `tick_s` real seconds; with `speed=0` only explicit `tick()`
    calls move it, which is what makes test runs repeatable."""

    def __init__(
        self,
        device_id: str,
        port: int,
        machine: Machine,
        *,
        host: str = "127.0.0.1",
        speed: float = 1.0,
        tick_s: float = 0.1,
        username: str | None = None,
        password: str | None = None,
        certificate: str | Path | bytes | None = None,
        private_key: str | Path | bytes | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        if (certificate is None) != (private_key is None):
            raise ValueError("give both certificate and private_key, or neither")
        self.device_id, self.port, self.machine, self.host = device_id, port, machine, host
        self.speed, self.tick_s = speed, tick_s
        self.clock = clock  # stamps every value: a test on a compressed calendar passes its own
        self.namespace = f"urn:fabhub:sim:{device_id}"
        # Namespace 1 is the server's application URI, so it cannot be the instance namespace (4th).
        self.application_uri = f"{self.namespace}:server"
        self._username, self._password = username, password
        self._certificate, self._private_key = certificate, private_key
        # The operator's knobs and the spindle come from a generator of our own, so they stay repeatable
        # without disturbing the machine's.
        self._rng = random.Random(f"opcua-cnc:{machine.seed}")
        self._feed = self._spindle_override = 100.0
        self._nominal_rpm = self._rpm = 0.0
        self._job_count, self._job_program = 0, ""
        self._seen_changes = -1
        self._alarm: tuple[int, str, str] | None = None  # (changes, code, text) of the alarm being shown
        self._server: Server | None = None
        self._nodes: dict[str, Node] = {}
        self._machinery_ns = 0  # index of the Machinery namespace, known once the address space is built
        self._alerts: list[EventGenerator] = []
        self._published: dict[str, Any] = {}
        self._raw: set[str] = set()  # keys holding a wrongly typed value (see write_raw)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._running = False

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}/"

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen. The address space is built once (asyncua's standard nodes take ~2 s to load) and kept
        across stop/start, which only close and reopen the socket, as a controller reboot would."""
        if self._running:
            return
        async with self._lock:
            if self._server is None:
                self._server = await self._build()
                await self._publish(self.machine.state, advanced=False)
            if self._server.bserver is None:
                await self._server.start()
            else:
                await self._server.bserver.start()
            assert self._server.bserver is not None
            self.port = self._server.bserver.port  # port 0: the kernel's pick, kept across stop/start
        self._running = True
        if self.speed > 0:
            self._task = asyncio.create_task(self._run(), name=f"opcua-cnc {self.device_id}")

    async def stop(self) -> None:
        """Close the listening socket and every client connection; the address space stays as it was."""
        if not self._running:
            return
        self._running = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert self._server is not None
        assert self._server.bserver is not None
        await self._server.bserver.stop()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def __aenter__(self) -> OpcUaCnc:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            await self.tick(self.tick_s * self.speed)

    # -- simulation -----------------------------------------------------------------------------------

    async def tick(self, sim_seconds: float) -> None:
        """Step the machine and publish what changed (nothing is published before the first start)."""
        async with self._lock:
            state = self.machine.step(sim_seconds)
            if self._server is not None:
                await self._publish(state, advanced=sim_seconds > 0)

    def _values(self, state: MachineState, advanced: bool) -> dict[str, Any]:
        """The variables' values for `state`. The spindle jitters only when time moved, so publishing twice
        at the same instant changes nothing."""
        if state.changes != self._seen_changes:
            self._seen_changes = state.changes
            if state.phase == "running":  # the operator sets the knobs when (re)starting the cycle
                self._feed, self._spindle_override = self._knob(), self._knob()
                self._nominal_rpm = self._rng.uniform(8000.0, 12000.0)
            if state.phase == "setup" or state.program != self._job_program:
                self._job_count += 1
                self._job_program = state.program
        if state.phase != "running":
            self._rpm = 0.0
        elif advanced or not self._rpm:
            self._rpm = round(self._nominal_rpm * (1 + self._rng.uniform(-0.01, 0.01)), 1)
        text, number = PROGRAM_STATE[state.phase]
        item_state = MACHINERY_ITEM_STATE[state.phase]
        return {
            "operation_mode": OPERATION_MODE[state.phase],
            "feed_override": self._feed,
            "channel_state": CHANNEL_STATE[state.phase],
            "spindle_rotating": state.phase == "running",
            "spindle_override": self._spindle_override,
            "spindle_speed": self._rpm,
            "program": state.program,
            "program_state": ua.LocalizedText(text),
            "program_state_number": number,
            "job": f"{state.program} #{self._job_count}" if state.program else "",
            "parts_completed": state.parts_total,
            "parts_good": state.parts_good,
            "machinery_state": ua.LocalizedText(Text=item_state, Locale="en"),
            "machinery_state_id": _nodeid(MACHINERY_STATES[item_state][0], self._machinery_ns),
        }

    def _knob(self) -> float:
        """An override in percent: left at 100 most of the time, sometimes turned to 80..120."""
        return 100.0 if self._rng.random() < 0.8 else float(self._rng.randrange(80, 125, 5))

    async def _publish(self, state: MachineState, advanced: bool) -> None:
        now = self.clock()
        for key, value in self._values(state, advanced).items():
            if key not in self._raw and key in self._published and self._published[key] == value:
                continue
            variant = ua.Variant(value, VARIABLES[key][1])
            await self._store(key, _stamped(now, variant))
            self._published[key] = value
        alarm = None
        if state.phase == "down" and state.alarm_code:
            alarm = (state.changes, state.alarm_code, state.alarm_text or "")
        if alarm != self._alarm:
            if self._alarm is not None:
                await self._fire(self._alarm[1], self._alarm[2], active=False)
            if alarm is not None:
                await self._fire(alarm[1], alarm[2], active=True)
            self._alarm = alarm

    async def _fire(self, code: str, text: str, *, active: bool) -> None:
        for gen in self._alerts:
            gen.event.ErrorCode = code
            gen.event.Active = active
            gen.event.Severity = ALARM_SEVERITY if active else CLEARED_SEVERITY
            await gen.trigger(message=text)

    # -- fault injection ------------------------------------------------------------------------------

    async def set_status(self, key: str, status_code: int | ua.StatusCode) -> None:
        """Publish a bad quality (the value becomes null) on one variable until its value next changes."""
        code = status_code if isinstance(status_code, ua.StatusCode) else ua.StatusCode(ua.UInt32(status_code))
        await self._store(key, _stamped(self.clock(), status=code))

    async def write_raw(self, key: str, value: Any, variant_type: ua.VariantType) -> None:
        """Publish a value of the wrong type (e.g. a String in a Double) until the variable's value next
        changes. asyncua refuses such writes (BadTypeMismatch), so this one goes round its type check."""
        await self._store(key, _stamped(self.clock(), ua.Variant(value, variant_type)), raw=True)

    async def _store(self, key: str, dv: ua.DataValue, *, raw: bool = False) -> None:
        if self._server is None:
            raise RuntimeError("start the server first")
        node = self._nodes[key]
        if raw or key in self._raw:
            # What AddressSpace.write_attribute_value does, minus the type check that would refuse a wrongly
            # typed value, and that would refuse the correct type again while a wrong one is stored.
            data = self._server.iserver.aspace.get(node.nodeid)
            if data is None:
                raise KeyError(f"{key}: node {node.nodeid} is not in the address space")
            attr = data.attributes[ua.AttributeIds.Value]
            attr.value = dv
            for handle, callback in list(attr.datachange_callbacks.items()):
                try:
                    await callback(handle, dv)
                except Exception:
                    _log.exception("data change callback failed for %s", key)
        else:
            await node.write_value(dv)
        if raw:
            self._raw.add(key)
        else:
            self._raw.discard(key)

    # -- address space --------------------------------------------------------------------------------

    async def _build(self) -> Server:
        server = Server(user_manager=_OneUser(self._username, self._password) if self._username else None)
        await server.init()
        server.disable_clock()  # its task makes stop() wait up to a second
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"FabHub simulated CNC {self.device_id}")
        await server.set_application_uri(self.application_uri)
        policies = [ua.SecurityPolicyType.NoSecurity]
        if self._certificate is not None and self._private_key is not None:
            await server.load_certificate(self._certificate)
            await server.load_private_key(self._private_key)
            policies += [
                ua.SecurityPolicyType.Basic256Sha256_Sign,
                ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
            ]
        server.set_security_policy(policies)
        token = ua.UserNameIdentityToken if self._username else ua.AnonymousIdentityToken
        server.set_identity_tokens([token])

        ns = {"0": 0}
        for prefix, uri in (("DI", DI_URI), ("MA", MA_URI), ("MT", MT_URI), ("inst", self.namespace)):
            ns[prefix] = await server.register_namespace(uri)
        inst = ns["inst"]
        self._machinery_ns = ns["MA"]
        item_state_type = await _machinery_item_state_type(server, ns["MA"])
        enum_types = {key: await _enumeration(server, ns["MT"], *spec) for key, spec in ENUMERATIONS.items()}
        machines = await server.nodes.objects.add_folder(
            _nodeid("Machines", ns["MA"]), ua.QualifiedName("Machines", ns["MA"])
        )
        machine = await machines.add_object(_nodeid(self.device_id, inst), ua.QualifiedName(self.device_id, inst))

        nodes: dict[str, Node] = {"": machine}
        variable_paths = {path for path, _ in VARIABLES.values()}

        async def node_at(
            path: str, variant_type: ua.VariantType | None = None, data_type: ua.NodeId | None = None
        ) -> Node:
            """The node at `path`, creating objects along the way and a variable (or, under a variable,
            a property) at the end when a type is given."""
            if path in nodes:
                return nodes[path]
            parent_path, _, last = path.rpartition("/")
            parent = await node_at(parent_path)
            prefix, _, name = last.partition(":")
            qname = ua.QualifiedName(name, ns[prefix])
            nodeid = _nodeid(f"{self.device_id}/{_plain(path)}", inst)
            if variant_type is None:
                node = await parent.add_object(nodeid, qname)
            else:
                add = parent.add_property if parent_path in variable_paths else parent.add_variable
                node = await add(nodeid, qname, ua.get_default_value(variant_type), variant_type, data_type)
            nodes[path] = node
            return node

        # The MachineryItemState is an instance of its state machine type, so CurrentState and its Id come from
        # the type (FiniteStateMachineType's mandatory children), as on a server built from the NodeSet.
        parent_path, _, last = MACHINERY_ITEM_STATE_PATH.rpartition("/")
        item_state = await (await node_at(parent_path)).add_object(
            _nodeid(f"{self.device_id}/{_plain(MACHINERY_ITEM_STATE_PATH)}", inst),
            ua.QualifiedName(last.partition(":")[2], ns["MA"]),
            objecttype=item_state_type,
            instantiate_optional=False,
        )
        current_state = await item_state.get_child("0:CurrentState")
        nodes[MACHINERY_ITEM_STATE_PATH] = item_state
        nodes[f"{MACHINERY_ITEM_STATE_PATH}/0:CurrentState"] = current_state
        nodes[f"{MACHINERY_ITEM_STATE_PATH}/0:CurrentState/0:Id"] = await current_state.get_child("0:Id")
        building_blocks = await machine.add_folder(
            _nodeid(f"{self.device_id}/{_plain(BUILDING_BLOCKS)}", inst),
            ua.QualifiedName("MachineryBuildingBlocks", ns["MA"]),
        )
        await building_blocks.add_reference(item_state.nodeid, ua.ObjectIds.HasAddIn)

        self._nodes = {key: await node_at(path, vtype, enum_types.get(key)) for key, (path, vtype) in VARIABLES.items()}
        messages = await node_at(MESSAGES)
        await machine.add_reference(messages.nodeid, ua.ObjectIds.HasNotifier)

        alert_type = await server.create_custom_event_type(
            ns["MT"],
            "AlertType",
            ua.ObjectIds.BaseEventType,
            [("ErrorCode", ua.VariantType.String), ("Active", ua.VariantType.Boolean)],
        )
        # asyncua delivers an event only to subscribers of the node that emits it, so both emit it.
        for emitter in (messages, machine):
            gen = await server.get_event_generator(alert_type, emitter.nodeid)
            gen.event.SourceNode = machine.nodeid
            gen.event.SourceName = self.device_id
            self._alerts.append(gen)
        return server


async def _machinery_item_state_type(server: Server, ns: int) -> ua.NodeId:
    """MachineryItemState_StateMachineType with its four states, under their NodeSet NodeIds, so a state's Id
    leads a client to the state object (BrowseName, StateNumber) as on a real Machinery server."""
    fsm = server.get_node(ua.ObjectIds.FiniteStateMachineType)
    state_machine = await fsm.add_object_type(
        _nodeid(MACHINERY_ITEM_STATE_TYPE, ns), ua.QualifiedName("MachineryItemState_StateMachineType", ns)
    )
    for name, (identifier, number, number_id) in MACHINERY_STATES.items():
        # Made as a plain object and retyped: instantiating StateType would give its StateNumber a generated
        # NodeId in this namespace, which may be the NodeSet's id of another state.
        state = await state_machine.add_object(_nodeid(identifier, ns), ua.QualifiedName(name, ns))
        await state.delete_reference(ua.ObjectIds.BaseObjectType, ua.ObjectIds.HasTypeDefinition, bidirectional=False)
        await state.add_reference(ua.ObjectIds.StateType, ua.ObjectIds.HasTypeDefinition, bidirectional=False)
        await state.add_property(
            _nodeid(number_id, ns), ua.QualifiedName("StateNumber", 0), number, ua.VariantType.UInt32
        )
    return state_machine.nodeid


async def _enumeration(
    server: Server, ns: int, identifier: int, enum_values_id: int, name: str, names: tuple[str, ...]
) -> ua.NodeId:
    """An enumeration DataType with its EnumValues property and its definition, as the NodeSet declares it."""
    dtype = await server.nodes.enum_data_type.add_data_type(_nodeid(identifier, ns), ua.QualifiedName(name, ns))
    values = [ua.EnumValueType(Value=i, DisplayName=ua.LocalizedText(n)) for i, n in enumerate(names)]
    await dtype.add_property(
        _nodeid(enum_values_id, ns),
        ua.QualifiedName("EnumValues", 0),
        values,
        ua.VariantType.ExtensionObject,
        _nodeid(ua.ObjectIds.EnumValueType),
    )
    definition = ua.EnumDefinition(
        Fields=[ua.EnumField(Value=i, DisplayName=ua.LocalizedText(n), Name=n) for i, n in enumerate(names)]
    )
    await dtype.write_data_type_definition(definition)
    return dtype.nodeid


def _nodeid(identifier: int | str, ns: int = 0) -> ua.NodeId:
    """A NodeId from a plain int or str identifier and namespace index."""
    # asyncua annotates NodeId's fields with its wire types (ua.Int32 | ua.String, ua.Int16) but takes plain ints
    # and strs, as its own examples and servers do.
    return ua.NodeId(identifier, ns)  # type: ignore[arg-type]


def _stamped(now: datetime, value: ua.Variant | None = None, status: ua.StatusCode | None = None) -> ua.DataValue:
    """A DataValue with both timestamps at `now` (and asyncua's default Good status unless `status`)."""
    # asyncua annotates the timestamps with its ua.DateTime subclass but takes plain datetimes, as its own server
    # stamps values with datetime.now(timezone.utc).
    code = ua.StatusCode() if status is None else status
    return ua.DataValue(value, code, SourceTimestamp=now, ServerTimestamp=now)  # type: ignore[arg-type]


def _plain(path: str) -> str:
    return "/".join(segment.partition(":")[2] for segment in path.split("/"))
