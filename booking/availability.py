"""Free time per device. The database does the whole cut (opening hours, closed days, maintenance, live
bookings, the grid, the minimum length) in one query read in binary; Python only picks alternatives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from booking.catalogue import Rules
from booking.rules import align_down, align_up, local_midnight
from booking.sqlfiles import QUERIES

Interval = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class Slot:
    device_id: str
    start: datetime
    end: datetime


async def free_slots(
    conn: AsyncConnection,
    device_ids: list[str],
    start: datetime,
    end: datetime,
    now: datetime,
    rules: Rules,
    zone: ZoneInfo,
) -> dict[str, list[Interval]]:
    """Bookable intervals per device (every device listed, free or not), on the grid, from `now` on and
    within the class's booking horizon.
    The grid counts from a local midnight; in a zone with daylight saving time a grid step that does not
    divide the shift (say 45 min) is off by the shift after it."""
    found: dict[str, list[Interval]] = {d: [] for d in device_ids}
    end = min(end, now + timedelta(days=rules.horizon_days))  # nothing beyond the horizon can be booked
    if end <= max(start, now):
        return found
    params = {
        "device_ids": device_ids,
        "start": start,
        "end": end,
        "now": now,
        "zone": zone.key,
        "step": rules.granularity,
        "origin": local_midnight(start, zone),
        "min_length": rules.min_booking,
    }
    async with conn.cursor(binary=True) as cur:
        await cur.execute(QUERIES.free_slots.sql, params)
        for device_id, lower, upper in await cur.fetchall():
            found[device_id].append((lower, upper))
    return found


def nearest(
    free: dict[str, list[Interval]], length: timedelta, wanted: datetime, rules: Rules, zone: ZoneInfo, limit: int = 5
) -> list[Slot]:
    """The free slots of the same length that start closest to the wanted start, at most two per device."""
    found: list[Slot] = []
    for device_id, intervals in free.items():
        options = []
        for lower, upper in intervals:
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
