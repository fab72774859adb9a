"""The board's events when the gateway runs in another process (`fabhub gateway`): the latest values are
read from the database once a second while someone watches, and what changed is published to the hub.
With the gateway in this process its own fan-out feeds the hub directly, within milliseconds."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import psycopg
from psycopg_pool import PoolTimeout

from gateway.live import LiveHub
from telemetry.model import Quality, Sample
from telemetry.reader import TelemetryReader

log = logging.getLogger(__name__)


class DatabaseFeed:
    def __init__(self, reader: TelemetryReader, hub: LiveHub, interval_s: float = 1.0) -> None:
        self.reader = reader
        self.hub = hub
        self.interval_s = interval_s
        self._seen: dict[tuple[str, str], datetime] = {}

    async def poll(self) -> None:
        latest = await self.reader.latest()
        changed = []
        for row in [*latest["numeric"], *latest["text"]]:
            changed += self._changed(row["device_id"], row["signal"], row["value"], row["time"], row["quality"])
        for row in latest["states"]:
            changed += self._changed(row["device_id"], "state", row["state"], row["time"], row["quality"])
        self.hub.publish(changed)

    def _changed(self, device_id: str, signal: str, value: float | str, time: datetime, quality: int) -> list[Sample]:
        key = (device_id, signal)
        if self._seen.get(key) == time:
            return []
        self._seen[key] = time
        return [Sample(time, device_id, signal, value, Quality(quality))]

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if not self.hub.subscribers:
                continue
            try:
                await self.poll()
            except (psycopg.Error, PoolTimeout) as exc:
                log.warning("live board feed: database unavailable: %s", exc)
