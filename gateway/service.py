"""The gateway as one service: a coordinator per device, the shared MQTT connection, the telemetry
writer with its disk spool, and the metrics. The composition root builds it and starts it."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.adapters.modbus import ModbusAdapter
from gateway.adapters.mqtt import MqttAdapter, MqttHub
from gateway.adapters.opcua import OpcUaAdapter
from gateway.config import MODBUS_WIDTH, GatewayDevice, ModbusSettings, MqttSettings, OpcUaSettings
from gateway.coordinator import Adapter, DeviceCoordinator, DeviceStatus
from gateway.live import LiveHub
from gateway.normalize import DeviceNormalizer, Output
from gateway.spool import Policy, Spool
from telemetry.model import Rejected
from telemetry.writer import BatchWriter

log = logging.getLogger(__name__)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.samples_in = Counter("fabhub_gateway_samples_in", "Samples produced", ["protocol"], registry=registry)
        self.samples_written = Counter(
            "fabhub_gateway_samples_written", "Samples written to the database", registry=registry
        )
        self.errors = Counter("fabhub_gateway_errors", "Device link failures", ["protocol"], registry=registry)
        self.quarantined = Counter(
            "fabhub_gateway_quarantined", "Readings refused with a reason", ["protocol"], registry=registry
        )
        self.spool_depth = Gauge("fabhub_gateway_spool_depth", "Samples waiting in the disk spool", registry=registry)
        self.lag = Histogram(
            "fabhub_gateway_lag_seconds",
            "From a batch's oldest reading to its hand-over to the writer",
            ["protocol"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=registry,
        )
        self.online = Gauge("fabhub_gateway_devices_online", "Devices answering", ["protocol"], registry=registry)


class Gateway:
    def __init__(
        self,
        devices: list[GatewayDevice],
        writer_factory: Callable[[Spool], BatchWriter],
        spool_dir: Path,
        *,
        mqtt_url: str | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        spool_max_bytes: int = 1 << 30,
        spool_policy: Policy = "drop_oldest",
    ) -> None:
        self.spool = Spool(spool_dir, max_bytes=spool_max_bytes, policy=spool_policy)
        # Counter baselines outlive the process, so parts made while the gateway was down are still counted.
        self._baselines = spool_dir.parent / "counter-baselines.json"
        self.writer = writer_factory(self.spool)
        self.metrics = GatewayMetrics(registry or CollectorRegistry())
        self.live = LiveHub()
        self._clock = clock
        self.hub = MqttHub(mqtt_url) if mqtt_url and any(d.protocol == "mqtt" for d in devices) else None
        if self.hub is not None:
            self.hub.on_unknown = self._unknown_topic
        self.coordinators = [self._coordinator(d) for d in devices]
        self._load_baselines()
        self._tasks: list[asyncio.Task[None]] = []
        # states, read when scraped
        self.metrics.spool_depth.set_function(lambda: self.spool.depth)
        for protocol in ("opcua", "modbus", "mqtt"):
            self.metrics.online.labels(protocol).set_function(lambda p=protocol: self._online(p))

    def _online(self, protocol: str) -> int:
        return sum(1 for s in self.statuses if s.protocol == protocol and s.connection == "online")

    @property
    def statuses(self) -> list[DeviceStatus]:
        return [c.status for c in self.coordinators]

    def _coordinator(self, device: GatewayDevice) -> DeviceCoordinator:
        status = DeviceStatus(device.id, device.protocol)
        adapter: Adapter
        widths: dict[str, int] = {}
        settings = device.settings
        if isinstance(settings, ModbusSettings):
            adapter = ModbusAdapter(device.endpoint or "", settings, device.signals, status.errors, self._clock)
            widths = {n: 1 << (16 * MODBUS_WIDTH.get(s.type, 1)) for n, s in device.signals.items() if s.counter}
        elif isinstance(settings, OpcUaSettings):
            endpoint = device.endpoint or ""
            adapter = OpcUaAdapter(device.id, endpoint, settings, device.signals, status.errors, self._clock)
        elif isinstance(settings, MqttSettings):
            if self.hub is None:
                raise ValueError(f"{device.id} speaks MQTT but no broker is configured")
            adapter = MqttAdapter(device.id, settings, device.signals, self.hub, status.errors, self._clock)
        else:  # pragma: no cover - the config union has three members
            raise TypeError(settings)
        normalizer = DeviceNormalizer(device.id, device.signals, device.states, device.heartbeat, widths)
        return DeviceCoordinator(adapter, normalizer, status, self._sink_for(device.protocol), self._clock)

    def _sink_for(self, protocol: str) -> Callable[[Output], Awaitable[None]]:
        samples_in = self.metrics.samples_in.labels(protocol)
        quarantined = self.metrics.quarantined.labels(protocol)
        lag = self.metrics.lag.labels(protocol)

        async def sink(out: Output) -> None:
            now = self._clock()
            samples_in.inc(len(out.samples))
            quarantined.inc(len(out.rejected))
            if out.samples:  # the oldest sample of the batch: the lag a live view sees
                lag.observe(max(0.0, (now - min(s.time for s in out.samples)).total_seconds()))
            self.live.publish(out.samples)
            await self.writer.submit([*out.samples, *out.rejected])

        return sink

    async def _unknown_topic(self, rejected: Rejected) -> None:
        self.metrics.quarantined.labels("mqtt").inc()
        await self.writer.submit([rejected])

    async def start(self) -> None:
        await self.writer.start()
        if self.hub is not None:
            await self.hub.start()
        for c in self.coordinators:
            self._tasks.append(asyncio.create_task(c.run(), name=f"device-{c.status.device_id}"))
        self._tasks.append(asyncio.create_task(self._watch(), name="gateway-metrics"))

    async def stop(self) -> None:
        """Stop listening, let the devices pass on what they already received, then stop them and the
        writer: what it cannot write goes to the spool. Idempotent."""
        if self.hub is not None:
            await self.hub.stop()
            for _ in range(50):
                if all(c.adapter.idle for c in self.coordinators if isinstance(c.adapter, MqttAdapter)):
                    break
                await asyncio.sleep(0.1)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for c in self.coordinators:
            await c.adapter.close()
        self._save_baselines()
        await self.writer.close(grace=5)

    async def _watch(self) -> None:
        """The writer counts what it wrote, the metric follows it; counter baselines are saved now and then."""
        written = 0
        for tick in itertools.count():
            self.metrics.samples_written.inc(self.writer.stats.written - written)
            written = self.writer.stats.written
            if tick % 10 == 9:
                self._save_baselines()
            await asyncio.sleep(1)

    def _load_baselines(self) -> None:
        try:
            saved = json.loads(self._baselines.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable counter baselines %s: %s", self._baselines, exc)
            return
        for c in self.coordinators:
            entry = saved.get(c.status.device_id)
            if isinstance(entry, dict):
                c.normalizer.counters.update({k: int(v) for k, v in entry.items() if isinstance(v, int | float)})

    def _save_baselines(self) -> None:
        data = {c.status.device_id: c.normalizer.counters for c in self.coordinators if c.normalizer.counters}
        tmp = self._baselines.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(data))
            tmp.replace(self._baselines)
        except OSError as exc:
            log.warning("cannot save counter baselines to %s: %s", self._baselines, exc)
