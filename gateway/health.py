"""Device health in the database (gateway/migrations/001_device_health.sql), so every app process answers
`/api/v1/devices` alike, whether or not a gateway runs in it. The gateway writes a round every `every`
seconds and at once when a device's connection or state changes; a reader takes a device whose heartbeat
is older than `stale_rounds` rounds as `unknown` (its gateway stopped or lost the database)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Protocol

import psycopg
from psycopg_pool import AsyncConnectionPool

from gateway.coordinator import DeviceStatus
from gateway.sqlfiles import QUERIES

UNKNOWN = "unknown"  # the connection of a device no gateway reports now
# A HealthSink's destination is away: the database (a pool timeout is an OperationalError too), or the central
# broker (HealthPublisher). The next round tries again.
UNAVAILABLE = (psycopg.OperationalError, ConnectionError)


@dataclass(frozen=True, slots=True)
class GatewayFigures:
    spool_depth: int
    spool_dropped: int
    writer_pending: int


@dataclass(frozen=True, slots=True)
class HealthReport:
    """One gateway's round as it travels through the central broker (gateway.wire), HealthSink.report's
    arguments in one value."""

    gateway_id: str
    site: str | None
    heartbeat: datetime
    statuses: Sequence[DeviceStatus]
    figures: GatewayFigures


class HealthSink(Protocol):
    """Where a gateway's health rounds go: the table (a gateway that writes to the database) or the central
    broker (gateway.publish.HealthPublisher, for ingest workers to write to the table). One interface, so
    `Gateway` reports alike whichever it has."""

    @property
    def every(self) -> float: ...

    async def report(
        self,
        gateway_id: str,
        site: str | None,
        now: datetime,
        statuses: Sequence[DeviceStatus],
        figures: GatewayFigures,
    ) -> None: ...


def _json(value: object) -> object:
    """A status's times and its error Counter, for the statement's jsonb."""
    return value.isoformat() if isinstance(value, datetime) else dict(value)  # type: ignore[call-overload]


class HealthTable:
    def __init__(self, pool: AsyncConnectionPool, *, every: float = 5.0, stale_rounds: int = 3) -> None:
        self._pool = pool
        self.every = every
        self.stale_after = timedelta(seconds=every * stale_rounds)

    async def report(
        self,
        gateway_id: str,
        site: str | None,
        now: datetime,
        statuses: Sequence[DeviceStatus],
        figures: GatewayFigures,
    ) -> None:
        """Idempotent: a round older than the one stored (a redelivered or overtaken message from the central
        broker) changes nothing."""
        devices = [{f.name: getattr(s, f.name) for f in fields(s)} for s in statuses]
        async with self._pool.connection() as conn:
            await QUERIES.report_health(
                conn,
                gateway_id=gateway_id,
                site=site,
                heartbeat=now,
                devices=json.dumps(devices, default=_json),
                **asdict(figures),
            )

    async def devices(self, device_ids: list[str], now: datetime) -> dict[str, dict[str, Any]]:
        """The reported devices among `device_ids`, by id; a stale one reads `unknown` since its last
        heartbeat, its state unknown too."""
        async with (
            self._pool.connection() as conn,
            QUERIES.device_health_cursor(conn, devices=device_ids, fresh_after=now - self.stale_after) as cur,
        ):
            names = [c.name for c in cur.description or ()]
            rows = [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]
        for row in rows:
            if not row.pop("fresh"):
                row.update(connection=UNKNOWN, state=None, since=row["heartbeat"])
            del row["heartbeat"]
        return {row["device_id"]: row for row in rows}

    async def figures(self, now: datetime) -> GatewayFigures:
        async with self._pool.connection() as conn:
            row = await QUERIES.gateway_figures(conn, fresh_after=now - self.stale_after)
        return GatewayFigures(*row)
