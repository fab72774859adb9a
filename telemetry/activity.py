"""Check-in evidence from the machines' own states, for the booking life-cycle. `booking` may not read
telemetry (DESIGN.md's package table), so the composition root hands this function to it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection

from common.rows import dict_rows
from telemetry.sqlfiles import QUERIES


@dataclass(frozen=True, slots=True)
class Activity:
    state_at_start: str | None  # the state the machine was in at the start (None: no row yet)
    first_active: datetime | None  # the first running/setup row within [start, until]
    online_after_start: bool  # any state other than offline within (start, until]


async def activity_after_start(
    conn: AsyncConnection, spans: Sequence[tuple[str, datetime, datetime]]
) -> list[Activity]:
    """One `Activity` per (device_id, start, until), in order."""
    if not spans:
        return []
    rows = await dict_rows(
        conn,
        QUERIES.activity_after_start.sql,
        {
            "device_ids": [device for device, _, _ in spans],
            "starts": [start for _, start, _ in spans],
            "untils": [until for _, _, until in spans],
        },
    )
    return [Activity(r["state_at_start"], r["first_active"], r["online_after_start"]) for r in rows]
