"""Gateway benchmark: each protocol path against the bare library in the same run, ratios printed, then
the whole center (bench/center.py).

- MQTT: messages handled by the gateway (hub -> adapter -> delta merge -> normalizer) vs a bare paho
  subscriber that parses the same JSON. Both drain the same number of QoS 1 messages that the broker
  queued for their persistent session, so the publisher's speed does not limit either.
- OPC UA: notifications through the adapter, coordinator and normalizer vs a bare asyncua subscription
  to the same variables with the same sampling and publishing intervals; server and client in one
  process, as the anchor in DESIGN.md.
- Modbus: fields read and decoded by the adapter (its coalesced plan) and normalized vs a bare pymodbus
  loop issuing the same requests.

The gateway side hands its samples to a counting stand-in for the telemetry writer: the database path
has its own benchmark (bench/ingest.py), and here only the gateway's own cost is compared.

    .venv/bin/python bench/gateway.py [--seconds 5] [--messages 20000] [--center-seconds 60 | --no-center]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file would shadow the gateway package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import paho.mqtt.client as mqtt
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

REPO = Path(__file__).resolve().parent.parent
NS = "urn:fabhub:bench"
HEARTBEAT = timedelta(seconds=60)
QUEUE = 100  # monitored-item queue on both sides, so every change is delivered to both


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
        hub.received >= n and not hub.queue and all(c.adapter._inbox.empty() for c in gw.coordinators)  # type: ignore[attr-defined]
    ):
        await asyncio.sleep(0.005)
    ours = n / (time.perf_counter() - started)
    await gw.stop()
    return bare, ours


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
        normalizer = DeviceNormalizer("robot-01", ur.signals, ur.states, timedelta(seconds=60))
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
    print(f"{name:7} bare {b:>9,.0f} {unit}   FabHub {o:>9,.0f} {unit}   ratio {o / b:.2f}  (goal >= 0.70)")
    return o / b


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per OPC UA and Modbus round")
    parser.add_argument("--messages", type=int, default=20_000, help="MQTT messages per round")
    parser.add_argument("--variables", type=int, default=50, help="OPC UA variables changing")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--center-seconds", type=float, default=60.0)
    parser.add_argument("--no-center", action="store_true", help="skip the 200-device whole-center run")
    args = parser.parse_args()
    import tempfile

    results: dict[str, tuple[list[float], list[float]]] = {"MQTT": ([], []), "OPC UA": ([], []), "Modbus": ([], [])}
    broker = Mosquitto(extra=("max_queued_messages 0", "max_inflight_messages 0")).start()
    try:
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                b, o = await mqtt_round(broker, args.messages, Path(tmp))
                results["MQTT"][0].append(b)
                results["MQTT"][1].append(o)
                b, o = await opcua_round(args.seconds, args.variables, Path(tmp))
                results["OPC UA"][0].append(b)
                results["OPC UA"][1].append(o)
            b, o, fields, requests = await modbus_round(args.seconds)
            results["Modbus"][0].append(b)
            results["Modbus"][1].append(o)
            print("round: " + ", ".join(f"{k} {v[1][-1] / v[0][-1]:.2f}" for k, v in results.items()), flush=True)
    finally:
        broker.stop()
    print(f"gateway paths vs bare libraries, medians of {args.rounds} rounds, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    line("MQTT", "msg/s", *results["MQTT"])
    line("OPC UA", "notif/s", *results["OPC UA"])
    line("Modbus", "fields/s", *results["Modbus"])
    print(f"        (MQTT: {args.messages:,} QoS 1 messages over 10 printers; OPC UA: {args.variables} variables, "
          f"10 ms sampling, 50 ms publishing; Modbus: {fields} fields in {requests} coalesced reads)")  # fmt: skip
    if not args.no_center:
        spec = importlib.util.spec_from_file_location("bench_center", Path(__file__).with_name("center.py"))
        assert spec is not None
        assert spec.loader is not None
        center = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(center)
        figures = await center.run_center(args.center_seconds)
        print("whole center (200 devices):")
        for key, value in figures.items():
            print(f"  {key}: {value}")


if __name__ == "__main__":
    asyncio.run(main())
