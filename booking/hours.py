"""When the center is open: the weekly pattern of opening hours (local time), the closed days and the make-up
working days (调休: a day the pattern leaves closed that opens with another weekday's hours). The
pattern is replaced as a whole, so an admin never leaves it half edited; every change is audited with the
state before and after, and the answer lists the bookings ahead that the new hours no longer cover (they
stay booked: changing the hours cancels nobody)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from accounts import audit
from accounts.model import Principal, Role
from booking.maintenance import clean_reason
from booking.sqlfiles import QUERIES
from common.errors import Forbidden, Invalid, NotFound
from common.rows import dict_rows

MAX_INTERVALS = 100
MAX_REASON = 200
MAX_DAYS = 366  # one year's closed or make-up days at a time
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_DAY_END = 24 * 60


@dataclass(frozen=True, slots=True)
class Opening:
    """One opening interval of a weekday (ISO, 1 = Monday), 'HH:MM' local time; `closes` may be '24:00'."""

    weekday: int
    opens: str
    closes: str


@dataclass(frozen=True, slots=True)
class HoursChange:
    intervals: list[Opening]
    bookings_outside_hours: list[dict[str, Any]]


def _minutes(value: str) -> int | None:
    match = _CLOCK.match(value.strip())
    if match is None:
        return None
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        return None
    return hours * 60 + minutes


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def validate(pattern: Iterable[Opening]) -> list[Opening]:
    """The pattern normalised ('8:00' -> '08:00') and sorted, or Invalid naming every problem."""
    items = list(pattern)
    if len(items) > MAX_INTERVALS:
        raise Invalid(f"at most {MAX_INTERVALS} opening intervals")
    problems: list[str] = []
    spans: list[tuple[int, int, int]] = []
    for i, item in enumerate(items):
        where = f"interval {i + 1} ({item.weekday} {item.opens}-{item.closes})"
        opens, closes = _minutes(item.opens), _minutes(item.closes)
        if not 1 <= item.weekday <= 7:
            problems.append(f"{where}: weekday must be 1 (Monday) to 7 (Sunday)")
        if opens is None or opens >= _DAY_END:
            problems.append(f"{where}: opens must be a time HH:MM from 00:00 to 23:59")
        if closes is None:
            problems.append(f"{where}: closes must be a time HH:MM from 00:01 to 24:00")
        if opens is not None and closes is not None and opens >= closes:
            problems.append(f"{where}: opens must be before closes (use 24:00 for midnight)")
        elif opens is not None and closes is not None and 1 <= item.weekday <= 7:
            spans.append((item.weekday, opens, closes))
    spans.sort()
    for (day_a, opens_a, closes_a), (day_b, opens_b, closes_b) in pairwise(spans):
        if day_a == day_b and opens_b < closes_a:
            problems.append(
                f"weekday {day_a}: {_clock(opens_a)}-{_clock(closes_a)} overlaps {_clock(opens_b)}-{_clock(closes_b)}"
            )
    if problems:
        raise Invalid(f"the opening hours are not valid: {'; '.join(problems)}", problems=problems)
    return [Opening(day, _clock(opens), _clock(closes)) for day, opens, closes in spans]


def _check_admin(principal: Principal) -> None:
    if principal.role != Role.admin:
        raise Forbidden("only admins change opening hours and closed days")


async def opening_hours(conn: AsyncConnection) -> list[Opening]:
    return [Opening(**row) for row in await dict_rows(conn, QUERIES.opening_hours.sql)]


async def open_time(
    conn: AsyncConnection, start: datetime, end: datetime, zone: ZoneInfo
) -> list[tuple[datetime, datetime]]:
    """The open intervals of [start, end): what a calendar greys out is exactly what a booking is refused."""
    found = await QUERIES.open_time(conn, start=start, end=end, zone=zone.key)
    return [(r.lower, r.upper) for r in found or []]


async def _outside(
    conn: AsyncConnection, now: datetime, zone: ZoneInfo, window: tuple[datetime, datetime] | None = None
) -> list[dict[str, Any]]:
    start, end = window or (None, None)
    params = {"now": now, "zone": zone.key, "window_start": start, "window_end": end}
    return await dict_rows(conn, QUERIES.bookings_outside_hours.sql, params)


async def replace_opening_hours(
    conn: AsyncConnection, principal: Principal, pattern: Iterable[Opening], now: datetime, zone: ZoneInfo
) -> HoursChange:
    """Replaces the whole weekly pattern (an empty pattern closes the center until hours are set again)."""
    _check_admin(principal)
    after = validate(pattern)
    async with conn.transaction():
        await QUERIES.lock_hours(conn)
        before = await opening_hours(conn)
        if before != after:
            await QUERIES.delete_opening_hours(conn)
            await QUERIES.insert_opening_hours(
                conn,
                weekdays=[o.weekday for o in after],
                opens=[o.opens for o in after],
                closes=[o.closes for o in after],
            )
            await audit.record(
                conn,
                now,
                principal,
                "replace",
                "opening_hours",
                "weekly",
                before=[asdict(o) for o in before],
                after=[asdict(o) for o in after],
            )
        outside = await _outside(conn, now, zone)
    return HoursChange(after, outside)


async def closed_days(conn: AsyncConnection, start: date, end: date) -> list[dict[str, Any]]:
    """Closed days in [start, end)."""
    return await dict_rows(conn, QUERIES.closed_days.sql, {"start": start, "end": end})


def _local_day(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), zone)
    return start, datetime.combine(day + timedelta(days=1), time(), zone)


def _check_batch(days: Mapping[date, Any]) -> None:
    if len(days) > MAX_DAYS:
        raise Invalid(f"at most {MAX_DAYS} days at once")


async def put_closed_day(
    conn: AsyncConnection, principal: Principal, day: date, reason: str, now: datetime, zone: ZoneInfo
) -> dict[str, Any]:
    """Closes the center on `day` (local calendar), or changes the reason. Returns the day, its reason and the
    confirmed bookings on it."""
    outside = await put_closed_days(conn, principal, {day: reason}, now, zone)
    return {"day": day, "reason": reason.strip(), "bookings_outside_hours": outside}


async def put_closed_days(
    conn: AsyncConnection, principal: Principal, days: Mapping[date, str], now: datetime, zone: ZoneInfo
) -> list[dict[str, Any]]:
    """Closes the center on each day (a year's public holidays at once), all or none; returns the confirmed
    bookings on them, which stay booked for the admin to sort out."""
    return await _put_days(conn, principal, "closed_day", days, {}, now, zone)


async def delete_closed_day(conn: AsyncConnection, principal: Principal, day: date, now: datetime) -> None:
    await _delete_day(conn, principal, day, now, "closed_day")


async def working_days(conn: AsyncConnection, start: date, end: date) -> list[dict[str, Any]]:
    """Make-up working days in [start, end), each with the weekday whose hours it opens with."""
    return await dict_rows(conn, QUERIES.working_days.sql, {"start": start, "end": end})


async def put_working_day(
    conn: AsyncConnection, principal: Principal, day: date, as_weekday: int, reason: str, now: datetime, zone: ZoneInfo
) -> dict[str, Any]:
    """Opens the center on `day` (a Saturday or Sunday) with the hours of `as_weekday`, or changes them or
    the reason. Returns the day and the confirmed bookings on it that its new hours leave out."""
    outside = await put_working_days(conn, principal, {day: reason}, as_weekday, now, zone)
    return {"day": day, "as_weekday": as_weekday, "reason": reason.strip(), "bookings_outside_hours": outside}


async def put_working_days(
    conn: AsyncConnection,
    principal: Principal,
    days: Mapping[date, str],
    as_weekday: int,
    now: datetime,
    zone: ZoneInfo,
) -> list[dict[str, Any]]:
    """Opens the center on each day (the make-up working days of a year's holidays, all Saturdays or
    Sundays) with the hours of `as_weekday` (ISO, 1 = Monday), all or none; returns the confirmed bookings on
    them that the hours leave out (a day changed to a shorter weekday's hours)."""
    _check_admin(principal)
    if not 1 <= as_weekday <= 7:
        raise Invalid("weekday must be 1 (Monday) to 7 (Sunday)")
    for day in sorted(days):
        if day.isoweekday() < 6:
            raise Invalid(f"{day.isoformat()} is not a Saturday or Sunday: only a weekend day is made up")
    return await _put_days(conn, principal, "working_day", days, {"as_weekday": as_weekday}, now, zone)


async def delete_working_day(conn: AsyncConnection, principal: Principal, day: date, now: datetime) -> None:
    await _delete_day(conn, principal, day, now, "working_day")


# A closed day and a make-up working day: what the refusals call them, the row (locked), its upsert, its
# deletion, and the other kind (a day is never both).
_DAYS = {
    "closed_day": ("a closed day", QUERIES.closed_day, QUERIES.put_closed_day, QUERIES.delete_closed_day),
    "working_day": ("a make-up working day", QUERIES.working_day, QUERIES.put_working_day, QUERIES.delete_working_day),
}
_OTHER = {"closed_day": "working_day", "working_day": "closed_day"}


async def _day(conn: AsyncConnection, kind: str, day: date) -> dict[str, Any] | None:
    rows = await dict_rows(conn, _DAYS[kind][1].sql, {"day": day})
    return rows[0] if rows else None


async def _put_days(
    conn: AsyncConnection,
    principal: Principal,
    kind: str,
    days: Mapping[date, str],
    fields: dict[str, Any],
    now: datetime,
    zone: ZoneInfo,
) -> list[dict[str, Any]]:
    """Sets each day of `kind` with its reason and the `fields` of its kind, audited, all or none; returns the
    confirmed bookings on the days that the hours now leave out (they stay booked)."""
    _check_admin(principal)
    _check_batch(days)
    wanted = {day: clean_reason(reason, "day", MAX_REASON) for day, reason in sorted(days.items())}
    outside: list[dict[str, Any]] = []
    async with conn.transaction():
        await QUERIES.lock_hours(conn)
        for day, reason in wanted.items():
            if await _day(conn, _OTHER[kind], day) is not None:
                raise Invalid(f"{day.isoformat()} is {_DAYS[_OTHER[kind]][0]}: remove it first")
            before = await _day(conn, kind, day)
            after = {"day": day, **fields, "reason": reason}
            if before != after:
                await _DAYS[kind][2](conn, **after)
                action = "update" if before else "create"
                await audit.record(conn, now, principal, action, kind, day.isoformat(), before=before, after=after)
            outside += await _outside(conn, now, zone, _local_day(day, zone))
    return outside


async def _delete_day(conn: AsyncConnection, principal: Principal, day: date, now: datetime, kind: str) -> None:
    _check_admin(principal)
    what, _, _, delete = _DAYS[kind]
    async with conn.transaction():
        await QUERIES.lock_hours(conn)
        before = await _day(conn, kind, day)
        if before is None:
            raise NotFound(f"{day.isoformat()} is not {what}")
        await delete(conn, day=day)
        await audit.record(conn, now, principal, "delete", kind, day.isoformat(), before=before)
