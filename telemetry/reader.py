"""Read side of the telemetry store: latest values, ranges (raw or bucketed), state timelines and the
quarantine. Long bucketed ranges are answered from the one-minute rollups, the edges from raw rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from common.paging import Key, Listing, Page, PageRequest, fetch_page
from telemetry.sqlfiles import QUERIES
from telemetry.timeutil import MINUTE, ceil_minute, floor_minute

BUCKETS: dict[str, timedelta] = {
    "1s": timedelta(seconds=1),
    "5s": timedelta(seconds=5),
    "10s": timedelta(seconds=10),
    "30s": timedelta(seconds=30),
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "10m": timedelta(minutes=10),
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "2h": timedelta(hours=2),
    "6h": timedelta(hours=6),
    "12h": timedelta(hours=12),
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
}
Row = dict[str, Any]


M = TypeVar("M", bound=BaseModel)
# Refused samples are never changed: `updated_since` reads when they arrived.
QUARANTINE = Listing(
    "quarantine",
    (Key("received_at", "time", descending=True), Key("id", "int", descending=True)),
    updated="received_at",
)


class TelemetryReader:
    def __init__(self, pool: AsyncConnectionPool, timezone: ZoneInfo, clock: Callable[[], datetime]) -> None:
        self._pool = pool
        self._clock = clock
        # Buckets start at the center's local midnight (a Monday, so weeks start on Monday).
        self.origin = datetime(2000, 1, 3, tzinfo=timezone)

    async def _select(self, query: str, **params: Any) -> list[Row]:
        """Rows as dicts; the pooled connection's own row factory is left alone."""
        cursor = getattr(QUERIES, f"{query}_cursor")
        async with self._pool.connection() as conn, cursor(conn, **params) as cur:
            names = [column.name for column in cur.description]
            return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]

    async def devices(self) -> list[str]:
        return [r["device_id"] for r in await self._select("devices")]

    async def series(self, device_id: str) -> list[Row]:
        return await self._select("series_of_device", device_id=device_id)

    async def latest(self, device_id: str | None = None) -> dict[str, list[Row]]:
        return {
            "numeric": await self._select("latest_numeric", device_id=device_id),
            "text": await self._select("latest_text", device_id=device_id),
            "states": await self._select("latest_states", device_id=device_id),
        }

    async def current_states(self, devices: list[str]) -> list[Row]:
        """State, last seen and the start of the current spell, per device (devices never seen are absent)."""
        return await self._select("current_states", devices=devices)

    async def raw_range(
        self, device_id: str, signal: str, start: datetime, end: datetime, limit: int, *, text: bool = False
    ) -> list[Row]:
        query = "raw_text_range" if text else "raw_range"
        return await self._select(query, device_id=device_id, signal=signal, start=start, end=end, limit=limit)

    async def bucketed_range(
        self, device_id: str, signal: str, start: datetime, end: datetime, width: timedelta
    ) -> list[Row]:
        """min, max, avg, last and count of good samples per bucket."""
        rollup_from = rollup_to = start
        if width % MINUTE == timedelta(0):
            async with self._pool.connection() as conn:
                watermark = await QUERIES.rollup_watermark(conn)
            if watermark is not None:
                rollup_from = ceil_minute(start)
                rollup_to = max(rollup_from, min(floor_minute(end), watermark))
        return await self._select(
            "bucketed_range",
            device_id=device_id,
            signal=signal,
            start=start,
            end=end,
            width=width,
            origin=self.origin,
            rollup_from=rollup_from,
            rollup_to=rollup_to,
        )

    async def timeline(self, device_id: str, start: datetime, end: datetime) -> list[Row]:
        """State intervals clipped to the window and to now."""
        return await self._select("state_timeline", device_id=device_id, start=start, end=end, now=self._clock())

    async def quarantined(self, device_id: str | None, request: PageRequest, model: type[M]) -> Page[M]:
        """Refused samples, newest first."""
        async with self._pool.connection() as conn:
            return await fetch_page(conn, QUARANTINE, QUERIES.quarantined.sql, {"device_id": device_id}, request, model)
