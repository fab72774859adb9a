"""The gateway as one service: a coordinator per device, the shared MQTT connection, the telemetry
writer with its disk spool, the devices' health in the database, and the metrics. The composition root
builds it and starts it. The board hears of what it reads from the database (telemetry.live), like every
other app process, not from the gateway's memory."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Protocol, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from common.tasks import cancel_and_wait
from gateway.adapters.modbus import ModbusAdapter
from gateway.adapters.mqtt import BrokerLink, MqttAdapter, MqttHub
from gateway.adapters.opcua import OpcUaAdapter
from gateway.config import (
    GatewayDevice,
    ModbusSettings,
    ModbusSignal,
    MqttSettings,
    MqttSignal,
    OpcUaSettings,
    OpcUaSignal,
)
from gateway.coordinator import Adapter, DeviceCoordinator, DeviceStatus
from gateway.health import UNAVAILABLE, GatewayFigures, HealthSink
from gateway.normalize import DeviceNormalizer, Output
from gateway.spool import Item, Policy, Spool
from telemetry.model import Rejected

log = logging.getLogger(__name__)


class SinkStats(Protocol):
    @property
    def written(self) -> int: ...


class Sink(Protocol):
    """Where the gateway's normalized output goes: the database (telemetry's BatchWriter) or the central
    broker (gateway.publish.Publisher)."""

    @property
    def stats(self) -> SinkStats: ...

    @property
    def pending(self) -> int: ...

    async def start(self) -> None: ...

    async def submit(self, items: Sequence[Item]) -> None: ...

    async def close(self, grace: float = 30.0) -> list[Item]: ...


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
        self._registry = registry

    def follow_spool(self, spool: Spool) -> None:
        """The spool's own counts (SpoolStats), read when scraped."""
        self._registry.register(_SpoolCounts(spool))


class _SpoolCounts(Collector):
    """Counters that follow SpoolStats rather than being counted twice: what went to disk while the database
    was away, what came back from it, what a full spool dropped, and failed replays."""

    HELP: ClassVar[tuple[tuple[str, str], ...]] = (
        ("spooled", "Samples written to the disk spool while the database was away"),
        ("replayed", "Samples replayed from the disk spool to the database"),
        ("dropped", "Samples dropped because the disk spool was full (FABHUB_SPOOL_POLICY)"),
        ("replay_failures", "Replays of a spooled batch that failed and will be retried"),
    )

    def __init__(self, spool: Spool) -> None:
        self._spool = spool

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, text in self.HELP:
            yield CounterMetricFamily(f"fabhub_gateway_spool_{name}", text, value=getattr(self._spool.stats, name))


class Gateway:
    def __init__(
        self,
        devices: list[GatewayDevice],
        writer_factory: Callable[[Spool], Sink],
        spool_dir: Path,
        *,
        mqtt_url: str | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        spool_max_bytes: int = 1 << 30,
        spool_policy: Policy = "drop_oldest",
        client_id: str = "fabhub-gateway",
        health: HealthSink | None = None,
        gateway_id: str = "gateway",
        site: str | None = None,
    ) -> None:
        """`health`: where the devices' health goes, the table or the central broker (None: nowhere, for a
        benchmark without either);
        `gateway_id` and `site` say who reports it."""
        self.spool = Spool(spool_dir, max_bytes=spool_max_bytes, policy=spool_policy)
        self.writer = writer_factory(self.spool)
        self.metrics = GatewayMetrics(registry or CollectorRegistry())
        self._clock = clock
        self.health = health
        self.gateway_id = gateway_id
        self.site = site
        self._health_due = asyncio.Event()
        self._health_failing = False
        shared = any(d.protocol == "mqtt" and d.endpoint is None for d in devices)
        self.hub = self._hub(BrokerLink.from_url(mqtt_url, client_id)) if mqtt_url and shared else None
        self.own_hubs: list[MqttHub] = []  # devices that are their own broker
        self.coordinators = [self._coordinator(d) for d in devices]
        self._tasks: list[asyncio.Task[None]] = []
        # states, read when scraped
        self.metrics.spool_depth.set_function(lambda: self.spool.depth)
        self.metrics.follow_spool(self.spool)
        for protocol in ("opcua", "modbus", "mqtt"):
            self.metrics.online.labels(protocol).set_function(functools.partial(self._online, protocol))

    def _online(self, protocol: str) -> int:
        return sum(1 for s in self.statuses if s.protocol == protocol and s.connection == "online")

    @property
    def statuses(self) -> list[DeviceStatus]:
        return [c.status for c in self.coordinators]

    def _hub(self, link: BrokerLink) -> MqttHub:
        hub = MqttHub(link)
        hub.on_unknown = self._unknown_topic
        return hub

    @property
    def hubs(self) -> list[MqttHub]:
        return [*([self.hub] if self.hub is not None else []), *self.own_hubs]

    def _coordinator(self, device: GatewayDevice) -> DeviceCoordinator:
        status = DeviceStatus(device.id, device.protocol)
        adapter: Adapter
        settings = device.settings
        # A device's signals are of its settings' protocol (the config loader pairs them), which the type of
        # GatewayDevice does not say: hence the casts.
        if isinstance(settings, ModbusSettings):
            signals = cast("dict[str, ModbusSignal]", device.signals)
            adapter = ModbusAdapter(device.endpoint or "", settings, signals, status.errors, self._clock)
        elif isinstance(settings, OpcUaSettings):
            endpoint = device.endpoint or ""
            opcua_signals = cast("dict[str, OpcUaSignal]", device.signals)
            adapter = OpcUaAdapter(device.id, endpoint, settings, opcua_signals, status.errors, self._clock)
        elif isinstance(settings, MqttSettings) and device.endpoint is not None:
            hub = self._hub(BrokerLink.for_device(device.id, device.endpoint, settings))
            self.own_hubs.append(hub)
            mqtt_signals = cast("dict[str, MqttSignal]", device.signals)
            adapter = MqttAdapter(device.id, settings, mqtt_signals, hub, self._clock, own=True)
        elif isinstance(settings, MqttSettings):
            if self.hub is None:
                raise ValueError(f"{device.id} speaks MQTT but no broker is configured")
            mqtt_signals = cast("dict[str, MqttSignal]", device.signals)
            adapter = MqttAdapter(device.id, settings, mqtt_signals, self.hub, self._clock)
        else:  # pragma: no cover - the config union has three members
            raise TypeError(settings)
        normalizer = DeviceNormalizer(
            device.id, device.signals, device.states, device.heartbeat, device.counter_rules()
        )
        sink = self._sink_for(device.protocol)
        return DeviceCoordinator(
            adapter,
            normalizer,
            status,
            sink,
            self._clock,
            device.reconnect_max.total_seconds(),
            changed=self._health_due.set,
        )

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
            await self.writer.submit(out.items)

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
        if self.health is not None:
            await self._report(self.health)  # the devices are listed from the start, as connecting
            self._tasks.append(asyncio.create_task(self._reporting(self.health), name="gateway-health"))

    async def stop(self) -> None:
        """Stop listening, let the devices pass on what they already received, then stop them and the
        writer: what it cannot write goes to the spool. Idempotent."""
        if self.hubs:
            for hub in self.hubs:
                await hub.stop()
            for _ in range(50):
                if all(c.adapter.idle for c in self.coordinators if isinstance(c.adapter, MqttAdapter)):
                    break
                await asyncio.sleep(0.1)
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        for c in self.coordinators:
            await c.adapter.close()
        await self.writer.close(grace=5)

    async def _report(self, health: HealthSink) -> None:
        self._health_due.clear()
        figures = GatewayFigures(self.spool.depth, self.spool.stats.dropped, self.writer.pending)
        try:
            await health.report(self.gateway_id, self.site, self._clock(), self.statuses, figures)
        except UNAVAILABLE as exc:  # the next round tries again; meanwhile readers see the devices go unknown
            if not self._health_failing:
                log.warning("device health not reported, its destination unavailable: %s", exc)
            self._health_failing = True
        else:
            if self._health_failing:
                log.info("device health reported again")
            self._health_failing = False

    async def _reporting(self, health: HealthSink) -> None:
        """A round every `health.every` seconds, and at once when a device changes."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._health_due.wait(), health.every)
            await self._report(health)

    async def _watch(self) -> None:
        """The writer counts what it wrote, the metric follows it."""
        written = 0
        while True:
            self.metrics.samples_written.inc(self.writer.stats.written - written)
            written = self.writer.stats.written
            await asyncio.sleep(1)
