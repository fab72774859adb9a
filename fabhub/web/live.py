"""The live fan-out of one app process: every batch the database announces (telemetry.live, whichever
process wrote it) goes to each subscriber (a browser's event stream). A subscriber
that falls behind is not allowed to hold memory or slow the others: its queue is bounded, and on overflow
it is told to resynchronize from a fresh snapshot instead."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime

import psycopg
from psycopg_pool import PoolTimeout

from gateway.health import UNKNOWN, HealthTable
from telemetry.model import STATE_SIGNAL as STATE
from telemetry.model import Sample
from telemetry.reader import TelemetryReader

log = logging.getLogger(__name__)

RESYNC = "resync"


class LiveHub:
    def __init__(self, queue_size: int = 512) -> None:
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[list[Sample] | str]] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, samples: Iterable[Sample]) -> None:
        batch = list(samples)
        if not batch:
            return
        for queue in self._subscribers:
            try:
                queue.put_nowait(batch)
            except asyncio.QueueFull:
                while not queue.empty():  # what it missed is lost anyway: start it over from a snapshot
                    queue.get_nowait()
                queue.put_nowait(RESYNC)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[list[Sample] | str]]:
        queue: asyncio.Queue[list[Sample] | str] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)


class SilentGateways:
    """The board's devices whose gateway stopped reporting. A gateway that died, hangs or lost the database
    writes nothing more, so no notification can say so: each app process reads the health table every round,
    sends its boards `unknown` for the devices of a silent gateway, and their stored state again once their
    gateway reports. Meanwhile no stored state of such a device reaches the boards (the listener's catch-up
    after a reconnect would send one): it would claim a state no gateway vouches for now."""

    def __init__(
        self,
        health: HealthTable,
        reader: TelemetryReader,
        devices: list[str],
        hub: LiveHub,
        clock: Callable[[], datetime],
    ) -> None:
        self._health = health
        self._reader = reader
        self._devices = devices
        self._hub = hub
        self._clock = clock
        self.unknown: set[str] = set()
        self._failing = False

    def publish(self, samples: Iterable[Sample]) -> None:
        """The hub's publish, for the listener: a silent gateway's devices keep `unknown`."""
        self._hub.publish(s for s in samples if s.signal != STATE or s.device_id not in self.unknown)

    async def check(self) -> None:
        rows = await self._health.devices(self._devices, self._clock())
        unknown = {d for d, row in rows.items() if row["connection"] == UNKNOWN}
        silent, back = sorted(unknown - self.unknown), sorted(self.unknown - unknown)
        self.unknown = unknown
        changes = [Sample(rows[d]["since"], d, STATE, UNKNOWN) for d in silent]
        if back:
            states = await self._reader.current_states(back)
            changes += [Sample(r["since"], r["device_id"], STATE, r["state"]) for r in states]
        self._hub.publish(changes)

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except (psycopg.Error, PoolTimeout) as exc:  # the next round tries again
                if not self._failing:
                    log.warning("board: device health unreadable, database unavailable: %s", exc)
                self._failing = True
            else:
                self._failing = False
            await asyncio.sleep(self._health.every)
