"""Free time per device and the bookable slots in it. The database subtracts bookings and maintenance from
the opening hours (multiranges, one query); Python only cuts the result to the class's grid."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from booking.catalogue import Rules
from booking.rules import align_down, align_up
from booking.sqlfiles import QUERIES

Interval = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class Slot:
    device_id: str
    start: datetime
    end: datetime


async def free_time(
    conn: AsyncConnection, device_ids: list[str], start: datetime, end: datetime, zone: ZoneInfo
) -> dict[str, list[Interval]]:
    found: dict[str, list[Interval]] = {}
    async for device_id, free in QUERIES.free_time(conn, device_ids=device_ids, start=start, end=end, zone=zone.key):
        found[device_id] = [(r.lower, r.upper) for r in free]
    return found


def bookable(free: list[Interval], rules: Rules, now: datetime, zone: ZoneInfo) -> list[Interval]:
    """Free intervals cut to the grid, from now on, at least one minimum booking long."""
    out = []
    for lower, upper in free:
        start = align_up(max(lower, now), rules.granularity, zone)
        end = align_down(upper, rules.granularity, zone)
        if end - start >= rules.min_booking:
            out.append((start, end))
    return out


def nearest(
    free: dict[str, list[Interval]], length: timedelta, wanted: datetime, rules: Rules, zone: ZoneInfo, limit: int = 5
) -> list[Slot]:
    """The free slots of the same length that start closest to the wanted start, at most two per device."""
    found: list[Slot] = []
    for device_id, intervals in free.items():
        options = []
        for lower, upper in intervals:
            if upper - lower < length:
                continue
            latest = align_down(upper - length, rules.granularity, zone)
            if latest < lower:
                continue
            clamped = min(max(wanted, lower), latest)
            for start in {align_down(clamped, rules.granularity, zone), align_up(clamped, rules.granularity, zone)}:
                if lower <= start <= latest:
                    options.append(Slot(device_id, start, start + length))
        options.sort(key=lambda s: abs(s.start - wanted))
        found.extend(options[:2])
    found.sort(key=lambda s: (abs(s.start - wanted), s.start, s.device_id))
    return found[:limit]
