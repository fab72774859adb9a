"""Gateway benchmark: each protocol path against the bare library in the same run, ratios printed, then the whole
center (bench/center.py).

- MQTT (site broker): messages handled by the gateway (hub -> adapter -> delta merge -> normalizer) vs a bare paho
  subscriber that parses the same JSON. Both drain the same number of QoS 1 messages that Mosquitto queued for
  their persistent session, so the publisher's speed does not limit either.
- MQTT LAN: printers in LAN mode, each its own broker (TLS with its own certificate, user bblp, its access code),
  as Bambu printers are: the gateway with one GatewayDevice per printer (its own connection: `MqttHub.open`,
  `ca_file` = the printer's certificate, no host-name check, CN = serial) vs one bare paho client per printer with
  the same TLS trust and credentials, parsing the same JSON. The brokers (simulators.printer_broker, amqtt) run in
  a child process, so on a 2-core machine they have a core of their own and this process's CPU is the consumer's
  alone. Each round first queues the same reports for both sides' persistent sessions (made from inside each
  broker, as a printer's reports are: no publisher in the way), waits until amqtt has them, then each side
  connects to every printer and takes them all: the time runs from the first connect (TLS handshakes included)
  to the last report handled. amqtt's QoS 1 delivery is slow, and both sides meet the same brokers: when they
  set the pace, the rate ratio says little, so the consumer's CPU per report is printed beside it (bare/FabHub).
- OPC UA: notifications through the adapter, coordinator and normalizer vs a bare asyncua subscription to the same
  variables with the same sampling and publishing intervals; server and client in one process, as the anchor in
  DESIGN.md.
- Modbus: fields read and decoded by the adapter (its coalesced plan) and normalized vs a bare pymodbus loop
  issuing the same requests.

The gateway side hands its samples to a counting stand-in for the telemetry writer: the database path has its own
benchmark (bench/ingest.py), and here only the gateway's own cost is compared.

    .venv/bin/python bench/gateway_paths.py [--seconds 5] [--messages 20000] [--tls-printers 50] [--tls-messages 20000]
        [--rounds 2] [--protocols mqtt,opcua,modbus,lan] [--center-seconds 60] [--center-lan-printers 80 | --no-center]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import multiprocessing
import ssl
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
from amqtt.mqtt.constants import QOS_1
from asyncua import Client, Server
from pymodbus.client import AsyncModbusTcpClient

from fabhub.devices import load_devices
from fabhub.devservices import Mosquitto, free_port
from gateway.adapters.modbus import ModbusAdapter
from gateway.config import GatewayDevice, MqttSettings, MqttSignal, OpcUaSettings, OpcUaSignal
from gateway.normalize import DeviceNormalizer
from gateway.service import Gateway
from simulators.machine import Machine
from simulators.modbus_robot import ModbusRobot
from simulators.printer_broker import USERNAME, PrinterBroker

REPO = Path(__file__).resolve().parent.parent
NS = "urn:fabhub:bench"
HEARTBEAT = timedelta(seconds=60)
QUEUE = 100  # monitored-item queue on both sides, so every change is delivered to both
PROTOCOLS = {"mqtt": "MQTT", "opcua": "OPC UA", "modbus": "Modbus", "lan": "MQTT LAN"}  # --protocols -> line


@dataclass
class WriterStats:
    written: int = 0


@dataclass
class CountingWriter:
    """Stands in for the telemetry writer: counts what the gateway hands over."""

    samples: int = 0
    stats: WriterStats = field(default_factory=WriterStats)
    pending: int = 0

    async def start(self) -> None: ...

    async def submit(self, items: list) -> None:
        self.samples += len(items)

    async def close(self, grace: float = 0) -> list:
        return []


def gateway_for(devices: list[GatewayDevice], tmp: Path, mqtt_url: str | None = None) -> Gateway:
    return Gateway(devices, lambda spool: CountingWriter(), tmp / "spool", mqtt_url=mqtt_url)  # type: ignore[arg-type,return-value]


# -- MQTT -----------------------------------------------------------------------------------------------


def report(i: int) -> bytes:
    return json.dumps(
        {
            "print": {
                "command": "push_status",
                "sequence_id": str(i),
                "gcode_state": "RUNNING",
                "mc_percent": i % 101,
                "mc_remaining_time": 120 - i % 120,
                "layer_num": i % 300,
                "nozzle_temper": 220 + (i % 7) * 0.5,
                "bed_temper": 60 + (i % 5) * 0.5,
                "chamber_temper": 35.0,
                "print_error": 0,
                "subtask_name": "bench plate",
                "big_fan1_speed": "10",
            }
        }
    ).encode()


def publish_all(port: int, topics: list[str], n: int) -> None:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    infos = [pub.publish(topics[i % len(topics)], report(i), qos=1) for i in range(n)]
    for info in infos:
        info.wait_for_publish(60)
    pub.disconnect()
    pub.loop_stop()


def bare_mqtt_session(port: int, subscribe: bool) -> tuple[mqtt.Client, asyncio.Event, list[int]]:
    loop = asyncio.get_running_loop()
    connected, count = asyncio.Event(), [0]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-bare", clean_session=False)

    def on_connect(c: mqtt.Client, *_: object) -> None:
        if subscribe:
            c.subscribe("bare/+/report", qos=1)
        loop.call_soon_threadsafe(connected.set)

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        json.loads(m.payload)
        count[0] += 1

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client, connected, count


async def mqtt_round(broker: Mosquitto, n: int, tmp: Path) -> tuple[float, float]:
    serials = [f"BENCH{i:04d}" for i in range(10)]
    topics = [f"device/{s}/report" for s in serials]
    signals = {
        "gcode_state": MqttSignal(json="print.gcode_state", type="text"),
        "progress_pct": MqttSignal(json="print.mc_percent", min=0, max=100),
        "remaining_min": MqttSignal(json="print.mc_remaining_time"),
        "layer": MqttSignal(json="print.layer_num"),
        "temperature.nozzle": MqttSignal(json="print.nozzle_temper"),
        "temperature.bed": MqttSignal(json="print.bed_temper"),
    }
    devices = [
        GatewayDevice(
            f"printer-{i:02d}", "mqtt", None, MqttSettings(serial=s, pushall_on_connect=False), signals, [], HEARTBEAT
        )
        for i, s in enumerate(serials)
    ]
    # bare: create the session, let the broker queue n messages, then drain them
    client, connected, count = bare_mqtt_session(broker.port, subscribe=True)
    await asyncio.wait_for(connected.wait(), 10)
    await asyncio.sleep(0.3)
    client.disconnect()
    client.loop_stop()
    # each side has topics of its own, or one side's messages would queue up in the other's session
    await asyncio.to_thread(publish_all, broker.port, [t.replace("device/", "bare/") for t in topics], n)
    started = time.perf_counter()
    client, connected, count = bare_mqtt_session(broker.port, subscribe=False)
    while count[0] < n:
        await asyncio.sleep(0.005)
    bare = n / (time.perf_counter() - started)
    client.disconnect()
    client.loop_stop()

    # gateway: same dance with its own persistent session
    gw = gateway_for(devices, tmp, broker.url)
    await gw.start()
    await asyncio.wait_for(gw.hub.connected.wait(), 10)  # type: ignore[union-attr]
    await asyncio.sleep(0.3)
    await gw.stop()
    await asyncio.to_thread(publish_all, broker.port, topics, n)
    gw = gateway_for(devices, tmp, broker.url)
    started = time.perf_counter()
    await gw.start()
    hub = gw.hub
    assert hub is not None
    while not (
        hub.received >= n and not hub.queue and all(c.adapter.idle for c in gw.coordinators)  # type: ignore[attr-defined]
    ):
        await asyncio.sleep(0.005)
    ours = n / (time.perf_counter() - started)
    await gw.stop()
    return bare, ours


# -- MQTT, printers in LAN mode ------------------------------------------------------------------------
# Each printer is its own TLS broker (simulators.printer_broker). The brokers run in a child process, so
# that on a 2-core machine they have a core of their own and the consumer's cost is all this process's.

LAN_CODE = "27182818"  # the access code every simulated printer of the round takes
LAN_CODE_VARIABLE = "BENCH_PRINTER_ACCESS_CODE"
DRAIN_TIMEOUT_S = 60.0  # plus a second per 500 reports


def lan_serial(i: int) -> str:
    return f"01P00A{i:09d}"  # 15 characters, as a P1S's


def lan_brokers(n: int, cert_dir: str, conn: Connection) -> None:
    """The child process: n printers' brokers; commands come through `conn` (publish, settle, stop)."""
    asyncio.run(_lan_brokers(n, Path(cert_dir), conn))


class _Tally(logging.Handler):
    """Counts the brokers' warnings by their first words instead of printing them."""

    def __init__(self, counts: Counter[str]) -> None:
        super().__init__(logging.WARNING)
        self.counts = counts

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[" ".join(record.getMessage().split()[:4])] += 1


def _consumer_sessions(brokers: list[PrinterBroker]) -> list[Any]:
    """amqtt's sessions on every broker: the two consumers' (PrinterBroker keeps its amqtt Broker as `_broker`;
    amqtt's `Broker.sessions` is public)."""
    return [session for broker in brokers for session, _ in broker._broker.sessions.values()]  # type: ignore[union-attr]


async def _settle(brokers: list[PrinterBroker], within: float) -> int:
    """Wait until every consumer's session is closed with nothing in flight; returns how many are not. amqtt
    reads the acknowledgements of a burst after sending it, and handles a DISCONNECT only once the queued
    messages of the session are acknowledged: a session looks connected for a while after its client left,
    and a report published meanwhile would go to the departed client instead of the session's queue."""
    deadline = time.monotonic() + within
    while True:
        busy = sum(1 for s in _consumer_sessions(brokers) if s.transitions.state != "disconnected" or s.inflight_out)
        if not busy or time.monotonic() > deadline:
            return busy
        await asyncio.sleep(0.05)


async def _publish(brokers: list[PrinterBroker], per_printer: int, first: int) -> None:
    """`per_printer` reports from every printer, numbered from `first`, as a printer in LAN mode makes them: from
    inside its own broker (amqtt's `internal_message_broadcast`), not through a client of it. Returns once each
    broker has queued them for every consumer session that is away (or passed them to those that are there)."""
    queued = [s.retained_messages.qsize() + per_printer for s in _consumer_sessions(brokers)]
    for i in range(per_printer):
        payload = report(first + i)
        for broker in brokers:
            await broker._broker.internal_message_broadcast(broker.report_topic, payload, QOS_1)  # type: ignore[union-attr]
    sessions = _consumer_sessions(brokers)
    deadline = time.monotonic() + 120
    while any(
        s.transitions.state == "disconnected" and s.retained_messages.qsize() < q
        for s, q in zip(sessions, queued, strict=True)
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("amqtt did not queue the reports for the sessions that are away within 120 s")
        await asyncio.sleep(0.02)


async def _lan_brokers(n: int, cert_dir: Path, conn: Connection) -> None:
    warnings: Counter[str] = Counter()
    amqtt_log = logging.getLogger("amqtt")
    amqtt_log.addHandler(_Tally(warnings))
    amqtt_log.propagate = False
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # amqtt's "Task exception was never retrieved": tallied
    brokers = [PrinterBroker(lan_serial(i), LAN_CODE, cert_dir) for i in range(n)]
    try:
        for broker in brokers:
            await broker.start()
        conn.send([(b.serial, b.url, str(b.cert_path)) for b in brokers])
        while True:
            command, *args = await asyncio.to_thread(conn.recv)
            if command == "stop":
                break
            started = time.perf_counter()
            if command == "settle":
                busy = await _settle(brokers, *args)
                conn.send((busy, dict(warnings)))
            else:
                await _publish(brokers, *args)
                conn.send(time.perf_counter() - started)
    finally:
        for broker in brokers:
            await broker.stop()


class BareLan:
    """A bare consumer of n printers: a paho client per printer with TLS trusting its certificate, bblp and the
    access code, QoS 1 on a persistent session; each report parsed with json.loads and counted."""

    def __init__(self, printers: list[tuple[str, str, str]]) -> None:
        self.counts = [0] * len(printers)  # one slot per client, each written by its own network thread only
        self.connected = [False] * len(printers)
        self.clients = []
        for k, (serial, url, cert) in enumerate(printers):
            tls = ssl.create_default_context(cafile=cert)
            tls.check_hostname = False  # the certificate names the serial, not the address
            client = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{serial}", clean_session=False
            )
            client.tls_set_context(tls)
            client.username_pw_set(USERNAME, LAN_CODE)
            client.on_connect = partial(self._on_connect, k, f"device/{serial}/report")
            client.on_message = partial(self._on_message, k)
            host, _, port = url.removeprefix("mqtts://").partition(":")
            client.connect_async(host, int(port))
            self.clients.append(client)

    def _on_connect(self, k: int, topic: str, client: mqtt.Client, *_: object) -> None:
        client.subscribe(topic, qos=1)
        self.connected[k] = True

    def _on_message(self, k: int, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        json.loads(message.payload)
        self.counts[k] += 1

    @property
    def received(self) -> int:
        return sum(self.counts)

    def start(self) -> None:
        for client in self.clients:
            client.loop_start()

    def stop(self) -> None:
        for client in self.clients:
            client.disconnect()
        for client in self.clients:
            client.loop_stop()


def lan_devices(printers: list[tuple[str, str, str]]) -> list[GatewayDevice]:
    """The shipped Bambu printer's signal map and state rules, one device per printer in LAN mode, its secret
    resolved from the environment the way the gateway's composition root does it."""
    model = next(d for d in load_devices(REPO / "devices.yaml").devices if d.protocol == "mqtt")
    devices = []
    for k, (serial, url, cert) in enumerate(printers):
        settings = MqttSettings(
            serial=serial,
            username=USERNAME,
            password_env=LAN_CODE_VARIABLE,
            ca_file=Path(cert),
            tls_verify_hostname=False,
            pushall_on_connect=False,  # only the queued reports, on both sides
            pushall_every=None,
        ).resolved({LAN_CODE_VARIABLE: LAN_CODE})
        devices.append(GatewayDevice(f"printer-{k:03d}", "mqtt", url, settings, model.signals, model.states, HEARTBEAT))
    return devices


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


@dataclass
class Drain:
    rate: float  # reports/s, from the first connect to the last report handled
    cpu_us: float  # this process's CPU per report (every thread)
    cpu_pct: float  # this process, % of one core
    broker_pct: float  # the brokers' process, % of one core
    machine_pct: float  # every process, % of one core (of 100 x cores)
    connect_s: float  # until every connection was up


class Meter:
    """CPU of this process, of the brokers' process and of the whole machine, and the time, from its start."""

    def __init__(self, broker_pid: int) -> None:
        self.broker_pid = broker_pid
        self.connect_s: float | None = None
        self.cpu, self.broker, self.machine = time.process_time(), _cpu(broker_pid), _busy()
        self.started = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def connected(self, every: bool) -> None:
        if every and self.connect_s is None:
            self.connect_s = self.elapsed

    def done(self, reports: int) -> Drain:
        elapsed, cpu = self.elapsed, time.process_time() - self.cpu
        return Drain(
            reports / elapsed,
            1e6 * cpu / reports,
            100 * cpu / elapsed,
            100 * (_cpu(self.broker_pid) - self.broker) / elapsed,
            100 * (_busy() - self.machine) / elapsed,
            self.connect_s or elapsed,
        )


def _busy() -> float:
    """CPU seconds the whole machine has spent busy."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


async def _drain_bare(printers: list[tuple[str, str, str]], total: int, broker_pid: int) -> Drain:
    meter = Meter(broker_pid)
    bare = BareLan(printers)
    bare.start()
    while bare.received < total:
        meter.connected(all(bare.connected))
        if meter.elapsed > DRAIN_TIMEOUT_S + total / 500:
            bare.stop()
            raise RuntimeError(
                f"bare: {bare.received} of {total} reports after {meter.elapsed:.0f} s,"
                f" {sum(bare.connected)} of {len(printers)} connected; per printer {bare.counts}"
            )
        await asyncio.sleep(0.005)
    drain = meter.done(total)
    bare.stop()
    return drain


async def _drain_gateway(devices: list[GatewayDevice], total: int, broker_pid: int, tmp: Path) -> Drain:
    meter = Meter(broker_pid)
    gw = gateway_for(devices, tmp)
    await gw.start()
    hubs = gw.own_hubs
    while not (
        sum(h.received for h in hubs) >= total
        and not any(h.queue for h in hubs)
        and all(c.adapter.idle for c in gw.coordinators)  # type: ignore[attr-defined]
    ):
        meter.connected(all(h.connected.is_set() for h in hubs))
        if meter.elapsed > DRAIN_TIMEOUT_S + total / 500:
            received = [h.received for h in hubs]
            states = Counter(f"{s.connection} {s.last_error}" for s in gw.statuses)
            await gw.stop()
            raise RuntimeError(
                f"FabHub: {sum(received)} of {total} reports after {meter.elapsed:.0f} s;"
                f" per printer {received}; {dict(states)}"
            )
        await asyncio.sleep(0.005)
    drain = meter.done(total)
    await gw.stop()
    return drain


class LanRig:
    """The child process with the printers' brokers, and the two consumers' persistent sessions on them."""

    def __init__(self, n: int, tmp: Path) -> None:
        self.n, self.tmp = n, tmp
        self.printers: list[tuple[str, str, str]] = []
        self.devices: list[GatewayDevice] = []
        self.numbered = 0
        self.warnings: dict[str, int] = {}  # the brokers' warnings, by their first words

    async def __aenter__(self) -> LanRig:
        context = multiprocessing.get_context("spawn")  # not a fork of a process with threads and a loop
        self.conn, child = context.Pipe()
        self.proc = context.Process(target=lan_brokers, args=(self.n, str(self.tmp / "certs"), child), daemon=True)
        self.proc.start()
        try:
            self.printers = await self._answer(120, "start")
            self.devices = lan_devices(self.printers)
            await self._sessions()
            await self.settle()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(("stop",))
        await asyncio.to_thread(self.proc.join, 20)
        if self.proc.is_alive():
            self.proc.kill()

    async def settle(self) -> None:
        self.conn.send(("settle", 60.0))
        busy, self.warnings = await self._answer(70, "settle down")
        if busy:
            raise RuntimeError(f"{busy} sessions on the printers' brokers still busy 60 s after their client left")

    async def publish(self, per_printer: int) -> float:
        """Queue `per_printer` reports on every printer for both sessions; returns how long that took."""
        self.conn.send(("publish", per_printer, self.numbered))
        self.numbered += per_printer
        return await self._answer(300, "queue the reports")

    async def _answer(self, within: float, what: str) -> Any:
        deadline = time.monotonic() + within
        while not await asyncio.to_thread(self.conn.poll, 0.2):
            if not self.proc.is_alive():
                raise RuntimeError(f"the printers' brokers exited (code {self.proc.exitcode}) before they could {what}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the printers' brokers did not {what} within {within:g} s")
        return self.conn.recv()

    async def _sessions(self) -> None:
        """Both consumers connect once and subscribe, so the brokers keep what comes next for their sessions;
        a first report on every printer shows that both are subscribed everywhere."""
        bare = BareLan(self.printers)
        bare.start()
        gw = gateway_for(self.devices, self.tmp)
        await gw.start()
        try:
            deadline = time.monotonic() + 60
            while not (all(bare.connected) and all(h.connected.is_set() for h in gw.own_hubs)):
                if time.monotonic() > deadline:
                    raise RuntimeError("the consumers did not connect to every printer within 60 s")
                await asyncio.sleep(0.05)
            for _ in range(10):
                await asyncio.sleep(0.5)  # the subscriptions' round trip
                await self.publish(1)
                deadline = time.monotonic() + 3
                while time.monotonic() < deadline:
                    if all(bare.counts) and all(s.connection == "online" for s in gw.statuses):
                        return
                    await asyncio.sleep(0.05)
            raise RuntimeError("the consumers do not receive every printer's reports")
        finally:
            bare.stop()
            await gw.stop()

    async def round(self, per_printer: int, gateway_first: bool) -> tuple[Drain, Drain, float]:
        """Queue the reports, then each consumer reconnects and takes all of them: (bare, ours, queueing s)."""
        queued_s = await self.publish(per_printer)
        total = per_printer * self.n
        pid = self.proc.pid
        assert pid is not None
        if gateway_first:
            ours = await _drain_gateway(self.devices, total, pid, self.tmp)
            await self.settle()
            bare = await _drain_bare(self.printers, total, pid)
        else:
            bare = await _drain_bare(self.printers, total, pid)
            await self.settle()
            ours = await _drain_gateway(self.devices, total, pid, self.tmp)
        await self.settle()
        return bare, ours, queued_s


# -- OPC UA -----------------------------------------------------------------------------------------------


async def opcua_server(port: int, k: int) -> tuple[Server, list]:
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/")
    ma = await server.register_namespace("http://opcfoundation.org/UA/Machinery/")
    inst = await server.register_namespace(NS)
    machines = await server.nodes.objects.add_object(ma, "Machines")
    machine = await machines.add_object(inst, "bench")
    variables = [await machine.add_variable(inst, f"v{i}", 0.0) for i in range(k)]
    await server.start()
    return server, variables


async def churn(variables: list, stop: asyncio.Event) -> None:
    x = 0.0
    while not stop.is_set():
        x += 1.0
        for v in variables:
            await v.write_value(x)
        await asyncio.sleep(0)


class BareHandler:
    def __init__(self) -> None:
        self.count = 0

    def datachange_notification(self, node: object, val: object, data: object) -> None:
        self.count += 1


async def opcua_round(seconds: float, k: int, tmp: Path) -> tuple[float, float]:
    port = free_port()
    server, variables = await opcua_server(port, k)
    stop = asyncio.Event()
    writer = asyncio.create_task(churn(variables, stop))
    try:
        client = Client(f"opc.tcp://127.0.0.1:{port}/")
        await client.connect()
        handler = BareHandler()
        sub = await client.create_subscription(50, handler)
        await sub.subscribe_data_change(variables, sampling_interval=10, queuesize=QUEUE)
        await asyncio.sleep(1)
        start_count, started = handler.count, time.perf_counter()
        await asyncio.sleep(seconds)
        bare = (handler.count - start_count) / (time.perf_counter() - started)
        await client.disconnect()

        settings = OpcUaSettings(
            machine="MA:Machines/inst:bench",
            namespaces={"inst": NS},
            publishing_interval=timedelta(milliseconds=50),
        )
        sampling = timedelta(milliseconds=10)
        signals = {
            f"v{i}": OpcUaSignal(path=f"inst:v{i}", sampling_interval=sampling, queue_size=QUEUE) for i in range(k)
        }
        endpoint = f"opc.tcp://127.0.0.1:{port}/"
        device = GatewayDevice("cnc-bench", "opcua", endpoint, settings, signals, [], HEARTBEAT)
        gw = gateway_for([device], tmp)
        await gw.start()
        status = gw.statuses[0]
        while status.connection != "online":
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)
        start_count, started = status.samples, time.perf_counter()
        await asyncio.sleep(seconds)
        ours = (status.samples - start_count) / (time.perf_counter() - started)
        await gw.stop()
    finally:
        stop.set()
        await writer
        await server.stop()
    return bare, ours


# -- Modbus -----------------------------------------------------------------------------------------------


async def modbus_round(seconds: float) -> tuple[float, float, int, int]:
    ur = next(d for d in load_devices(REPO / "devices.yaml").devices if d.protocol == "modbus")
    robot = ModbusRobot("robot-01", free_port(), Machine(1), speed=0)
    await robot.start()
    try:
        robot.machine.force("running", 3600)
        await robot.tick(1)
        adapter = ModbusAdapter(f"tcp://127.0.0.1:{robot.port}", ur.modbus, ur.signals, Counter())
        fields = len(ur.signals)
        requests = len(adapter.reads)

        client = AsyncModbusTcpClient("127.0.0.1", port=robot.port)
        await client.connect()
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            for read in adapter.reads:
                response = await client.read_holding_registers(read.address, count=read.count, device_id=1)
                assert not response.isError()
            done += fields
        bare = done / (time.perf_counter() - started)
        client.close()

        await adapter.connect()
        device = GatewayDevice(ur.id, "modbus", None, ur.modbus, ur.signals, ur.states, HEARTBEAT, ur.ideal_cycle_time)
        # as the gateway builds it, counters included (their raw values are handed on; the writer counts them)
        normalizer = DeviceNormalizer(ur.id, ur.signals, ur.states, HEARTBEAT, device.counter_rules())
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            readings = await adapter.poll()
            normalizer.process(readings)
            done += len(readings)
        ours = done / (time.perf_counter() - started)
        await adapter.close()
    finally:
        await robot.stop()
    return bare, ours, fields, requests


# -- main ---------------------------------------------------------------------------------------------------


def line(name: str, unit: str, bare: list[float], ours: list[float]) -> float:
    b, o = statistics.median(bare), statistics.median(ours)
    print(f"{name:8} bare {b:>9,.0f} {unit:8}  FabHub {o:>9,.0f} {unit:8}  ratio {o / b:.2f}  (goal >= 0.70)")
    return o / b


async def lan_rounds(args: argparse.Namespace, tmp: Path, results: dict) -> tuple[list, dict[str, int]]:
    drains = []
    async with LanRig(args.tls_printers, tmp) as rig:
        per_printer = max(1, args.tls_messages // args.tls_printers)
        for r in range(args.rounds):
            bare, ours, queued_s = await rig.round(per_printer, gateway_first=r % 2 == 1)
            drains.append((bare, ours, queued_s))
            results["MQTT LAN"][0].append(bare.rate)
            results["MQTT LAN"][1].append(ours.rate)
            print(f"round: MQTT LAN {ours.rate / bare.rate:.2f} (CPU {bare.cpu_us / ours.cpu_us:.2f})", flush=True)
    return drains, rig.warnings


def lan_cpu_line(drains: list[tuple[Drain, Drain, float]]) -> None:
    """Under the MQTT LAN line: the consumer's CPU per report, which the brokers' pace does not change."""
    b_cpu, o_cpu = (statistics.median(d[k].cpu_us for d in drains) for k in (0, 1))
    print(f"{'  its CPU':8} bare {b_cpu:>9,.0f} us/msg    FabHub {o_cpu:>9,.0f} us/msg    ratio {b_cpu / o_cpu:.2f}"
          "  (bare/FabHub: the consumer's CPU per report)")  # fmt: skip


def lan_notes(args: argparse.Namespace, drains: list[tuple[Drain, Drain, float]], warnings: dict[str, int]) -> None:
    per_printer = max(1, args.tls_messages // args.tls_printers)
    bare, ours = [d[0] for d in drains], [d[1] for d in drains]
    cores = 100 * (psutil.cpu_count() or 1)

    def med(side: list[Drain], name: str) -> float:
        return statistics.median(getattr(d, name) for d in side)

    def both(name: str, form: str = ".0f", unit: str = " %") -> str:
        return f"{med(bare, name):{form}}{unit} / {med(ours, name):{form}}{unit}"

    lines = [
        f"        (MQTT LAN: {args.tls_printers} printers in LAN mode, each its own amqtt TLS broker (bblp, access"
        f" code, own certificate) in a child process; {per_printer:,} QoS 1 reports per printer"
        f" ({per_printer * args.tls_printers:,} in all) queued for each side's persistent sessions, then taken from"
        f" the first connect to the last report handled; queueing took"
        f" {statistics.median(d[2] for d in drains):.1f} s)",
        f"        MQTT LAN, bare / FabHub: every connection up after {both('connect_s', '.2f', ' s')}; % of one core:"
        f" this process {both('cpu_pct')}, the brokers' {both('broker_pct')}, the whole machine"
        f" {both('machine_pct')} of {cores} %",
    ]
    if max(med(bare, "broker_pct"), med(ours, "broker_pct")) > 85:
        lines.append(
            "        the amqtt brokers were the limit (their process near a full core): both sides got what amqtt could"
            " send, so the rate ratio says little; the CPU ratio is the gateway's own cost"
        )
    elif max(med(bare, "machine_pct"), med(ours, "machine_pct")) > 0.9 * cores:
        lines.append(
            "        the machine was saturated (the brokers and other processes took the rest): the rates are what was"
            " left; the CPU ratio is the gateway's own cost"
        )
    if warnings:
        lines.append(f"        amqtt warnings (its 5 s wait for each PUBACK; no report lost): {json.dumps(warnings)}")
    print("\n".join(lines))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per OPC UA and Modbus round")
    parser.add_argument("--messages", type=int, default=20_000, help="MQTT messages per round (site broker)")
    parser.add_argument("--variables", type=int, default=50, help="OPC UA variables changing")
    parser.add_argument("--tls-printers", type=int, default=50, help="printers in LAN mode, each its own TLS broker")
    parser.add_argument("--tls-messages", type=int, default=20_000, help="reports per LAN-mode round, all printers")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--protocols", default=",".join(PROTOCOLS), help="rounds to run (default all)")
    parser.add_argument("--center-seconds", type=float, default=60.0, help="measuring time of the whole-center run")
    parser.add_argument("--center-lan-printers", type=int, default=80, help="of the center's 80 printers, in LAN mode")
    parser.add_argument("--no-center", action="store_true", help="skip the 200-device whole-center run")
    args = parser.parse_args()
    import tempfile

    wanted = {p.strip() for p in args.protocols.split(",")}
    if not wanted <= set(PROTOCOLS) or not wanted:
        parser.error(f"--protocols takes some of {', '.join(PROTOCOLS)}")
    results: dict[str, tuple[list[float], list[float]]] = {PROTOCOLS[k]: ([], []) for k in PROTOCOLS if k in wanted}
    fields = requests = 0
    if wanted - {"lan"}:
        broker = Mosquitto(extra=("max_queued_messages 0", "max_inflight_messages 0")).start()
        try:
            for _ in range(args.rounds):
                with tempfile.TemporaryDirectory() as tmp:
                    if "mqtt" in wanted:
                        b, o = await mqtt_round(broker, args.messages, Path(tmp))
                        results["MQTT"][0].append(b)
                        results["MQTT"][1].append(o)
                    if "opcua" in wanted:
                        b, o = await opcua_round(args.seconds, args.variables, Path(tmp))
                        results["OPC UA"][0].append(b)
                        results["OPC UA"][1].append(o)
                if "modbus" in wanted:
                    b, o, fields, requests = await modbus_round(args.seconds)
                    results["Modbus"][0].append(b)
                    results["Modbus"][1].append(o)
                ratios = ", ".join(f"{k} {v[1][-1] / v[0][-1]:.2f}" for k, v in results.items() if v[0])
                print(f"round: {ratios}", flush=True)
        finally:
            broker.stop()
    drains: list[tuple[Drain, Drain, float]] = []
    warnings: dict[str, int] = {}
    if "lan" in wanted:
        with tempfile.TemporaryDirectory() as tmp:
            drains, warnings = await lan_rounds(args, Path(tmp), results)
    print(f"gateway paths vs bare libraries, medians of {args.rounds} rounds, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    for name, unit in (("MQTT", "msg/s"), ("OPC UA", "notif/s"), ("Modbus", "fields/s"), ("MQTT LAN", "msg/s")):
        if name in results:
            line(name, unit, *results[name])
    if drains:
        lan_cpu_line(drains)
    notes = []
    if "mqtt" in wanted:
        notes.append(f"MQTT: {args.messages:,} QoS 1 messages over 10 printers on the site broker")
    if "opcua" in wanted:
        notes.append(f"OPC UA: {args.variables} variables, 10 ms sampling, 50 ms publishing")
    if "modbus" in wanted:
        notes.append(f"Modbus: {fields} fields in {requests} coalesced reads")
    if notes:
        print(f"        ({'; '.join(notes)})")
    if drains:
        lan_notes(args, drains, warnings)
    if not args.no_center:
        spec = importlib.util.spec_from_file_location("bench_center", Path(__file__).with_name("center.py"))
        assert spec is not None
        assert spec.loader is not None
        center = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(center)
        figures = await center.run_center(args.center_seconds, lan_printers=args.center_lan_printers)
        print(center.format_report(figures))


if __name__ == "__main__":
    asyncio.run(main())
