"""One coordinator per device (the Home Assistant pattern): it owns the adapter's connection, turns its
readings into samples through the device's normalizer, and keeps one availability flag. A device that
stops answering is marked offline at once, logged once, retried at once and then with jittered backoff
capped at `reconnect_max` (so a machine back on the network is online within one such wait), and logged
once more when it is back."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from gateway.normalize import DeviceNormalizer, Emit, Output, Reading
from telemetry.model import Rejected

log = logging.getLogger(__name__)


class Adapter(Protocol):
    @property
    def interval(self) -> float:
        """Seconds between polls or keep-alives: the unit of the offline rule."""

    async def connect(self) -> None: ...

    async def run(self, emit: Emit) -> None:
        """Await `emit` with readings (and what the adapter refused) until the device is lost (raise)."""

    async def close(self) -> None: ...


@dataclass
class DeviceStatus:
    device_id: str
    protocol: str
    connection: str = "connecting"  # connecting | online | offline
    since: datetime | None = None
    last_sample: datetime | None = None
    state: str | None = None
    samples: int = 0
    quarantined: int = 0
    reconnects: int = 0
    last_error: str | None = None
    errors: Counter[str] = field(default_factory=Counter)


Sink = Callable[[Output], Awaitable[None]]


class DeviceCoordinator:
    def __init__(
        self,
        adapter: Adapter,
        normalizer: DeviceNormalizer,
        status: DeviceStatus,
        sink: Sink,
        clock: Callable[[], datetime],
        reconnect_max: float = 10.0,
        *,
        changed: Callable[[], None],
    ) -> None:
        """`changed` is called when the device's connection or state changes (its health is due at once)."""
        self.adapter = adapter
        self.normalizer = normalizer
        self.status = status
        self._sink = sink
        self._clock = clock
        self._reconnect_max = reconnect_max
        self._changed = changed

    async def run(self) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        beat = asyncio.create_task(self._heartbeat())
        try:
            while True:
                online_at: float | None = None
                try:
                    await self.adapter.connect()
                    self._online()
                    online_at = loop.time()
                    await self.adapter.run(self._readings)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # any failure of the link: the device is unreachable
                    # a link that held for a while starts the backoff afresh; one that drops at once does not
                    steady = online_at is not None and loop.time() - online_at >= self._reconnect_max
                    failures = 1 if steady else failures + 1
                    await self._offline(exc)
                finally:
                    await self.adapter.close()
                await asyncio.sleep(self.retry_delay(failures))
        finally:
            beat.cancel()

    def retry_delay(self, failures: int) -> float:
        """None before the first retry (a dropped packet costs nothing); then doubling from the poll interval
        up to `reconnect_max`, each wait drawn from its upper half so many devices do not retry in step."""
        if failures <= 1:
            return 0.0
        cap = min(self._reconnect_max, self.adapter.interval * 2 ** min(failures - 1, 20))
        return random.uniform(cap / 2, cap)

    async def _readings(self, readings: list[Reading], rejected: list[Rejected]) -> None:
        """The adapter awaits this for every batch, so the sink's back-pressure reaches the adapter."""
        out = self.normalizer.process(readings)
        out.rejected.extend(rejected)
        if out.samples or out.rejected:
            await self._deliver(out)

    async def _deliver(self, out: Output) -> None:
        if out.samples:
            self.status.samples += len(out.samples)
            self.status.last_sample = max(s.time for s in out.samples)
        self.status.quarantined += len(out.rejected)
        for r in out.rejected:
            self.status.errors[f"quarantined: {r.reason}"] += 1
        if out.rejected:
            first = out.rejected[0]
            log.warning("%s: quarantined %s=%r: %s", self.status.device_id, first.signal, first.value, first.reason)
        if self.status.state != self.normalizer.state:
            self.status.state = self.normalizer.state
            self._changed()
        await self._sink(out)

    def _online(self) -> None:
        if self.status.connection != "online":
            if self.status.connection == "offline":
                log.info("%s is back", self.status.device_id)
            self.status.connection = "online"
            self.status.since = self._clock()
            self._changed()

    async def _offline(self, exc: Exception) -> None:
        self.status.last_error = f"{type(exc).__name__}: {exc}"[:300]
        self.status.errors[type(exc).__name__] += 1
        if self.status.connection != "offline":
            log.warning("%s is unreachable: %s", self.status.device_id, self.status.last_error)
            self.status.connection = "offline"
            self.status.since = self._clock()
            self.status.reconnects += 1
            self._changed()
            await self._deliver(self.normalizer.offline(self._clock()))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.normalizer.heartbeat_every.total_seconds() / 4))
            out = self.normalizer.heartbeat(self._clock())
            if out.samples:
                await self._deliver(out)
