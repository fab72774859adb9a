"""Recurring bookings: a first slot and a rule (an RRULE subset: FREQ=DAILY|WEEKLY, INTERVAL, BYDAY, COUNT
or UNTIL), each occurrence checked and priced like a single booking. The series is booked in one transaction:
every occurrence or, with `skip_conflicts`, every occurrence that can be, so a customer never ends up with a
half-made series they did not agree to. Occurrences keep the first slot's local wall time."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, FR, MO, SA, SU, TH, TU, WE, WEEKLY, rrule
from psycopg import AsyncConnection

from accounts import audit
from accounts.model import Principal
from booking.bookings import BookingRequest, Bookings, SlotTaken, detail
from booking.sqlfiles import QUERIES
from common.errors import Conflict, Invalid, NotFound
from common.rows import dict_rows
from outbox.events import publish

MAX_OCCURRENCES = 52
MAX_INTERVAL = 52
DAYS = {"MO": MO, "TU": TU, "WE": WE, "TH": TH, "FR": FR, "SA": SA, "SU": SU}
FREQUENCIES: dict[str, Literal[0, 1, 2, 3, 4, 5, 6]] = {"DAILY": DAILY, "WEEKLY": WEEKLY}


@dataclass(frozen=True, slots=True)
class Occurrence:
    start: datetime
    end: datetime
    bookable: bool
    problems: list[dict[str, str]]
    net: Decimal


def occurrences(first: BookingRequest, rule: str, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The slots of the series, the first one first. UNTIL is a local date (YYYYMMDD), inclusive."""
    parts: dict[str, str] = {}
    for item in rule.strip().removeprefix("RRULE:").split(";"):
        key, sep, value = item.strip().partition("=")
        if not sep or key not in ("FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY") or key in parts:
            raise Invalid(f"rule: {item!r} is not FREQ, INTERVAL, COUNT, UNTIL or BYDAY (each once), as KEY=VALUE")
        parts[key] = value
    freq = FREQUENCIES.get(parts.get("FREQ", ""))
    if freq is None:
        raise Invalid("rule: FREQ is DAILY or WEEKLY")
    if ("COUNT" in parts) == ("UNTIL" in parts):
        raise Invalid("rule: give COUNT or UNTIL (one of them)")
    interval = _number(parts.get("INTERVAL", "1"), "INTERVAL", MAX_INTERVAL)
    count = _number(parts["COUNT"], "COUNT", MAX_OCCURRENCES) if "COUNT" in parts else None
    until = None
    if "UNTIL" in parts:
        try:
            last = date(int(parts["UNTIL"][:4]), int(parts["UNTIL"][4:6]), int(parts["UNTIL"][6:8]))
        except ValueError:
            raise Invalid("rule: UNTIL is a date, YYYYMMDD") from None
        if len(parts["UNTIL"]) != 8:
            raise Invalid("rule: UNTIL is a date, YYYYMMDD")
        until = datetime.combine(last, time.max, first.start.astimezone(zone).tzinfo)
    days = None
    if "BYDAY" in parts:
        if freq != WEEKLY:
            raise Invalid("rule: BYDAY goes with FREQ=WEEKLY")
        names = parts["BYDAY"].split(",")
        if not names or any(n not in DAYS for n in names) or len(set(names)) != len(names):
            raise Invalid("rule: BYDAY lists days as MO,TU,WE,TH,FR,SA,SU")
        days = [DAYS[n] for n in names]
    start = first.start.astimezone(zone)
    length = first.end - first.start
    found = []
    for moment in rrule(freq, dtstart=start, interval=interval, count=count, until=until, byweekday=days):
        found.append((moment, moment + length))
        if len(found) > MAX_OCCURRENCES:
            raise Invalid(f"a series has at most {MAX_OCCURRENCES} occurrences")
    if not found or found[0][0] != start:
        raise Invalid("the first slot must be an occurrence of the rule (BYDAY includes its weekday)")
    return found


def _number(text: str, key: str, most: int) -> int:
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise Invalid(f"rule: {key} is a whole number from 1 to {most}")
    return int(text)


async def preview(
    conn: AsyncConnection, bookings: Bookings, principal: Principal, first: BookingRequest, rule: str
) -> list[Occurrence]:
    """Every occurrence with its price and what stands in its way (the rules it breaks, a taken slot)."""
    found = []
    for start, end in occurrences(first, rule, bookings.zone):
        check = await bookings.check(conn, principal, replace(first, start=start, end=end))
        listed = [{"rule": p.rule, "message": p.message} for p in check.problems]
        if check.free_device is None:
            listed.append({"rule": "taken", "message": "the slot is taken or the device is under maintenance"})
        found.append(Occurrence(start, end, not listed, listed, check.quote.net))
    return found


async def book(
    conn: AsyncConnection,
    bookings: Bookings,
    principal: Principal,
    first: BookingRequest,
    rule: str,
    skip_conflicts: bool,
) -> dict[str, Any]:
    """Inside the caller's transaction. Refuses the whole series (409, with each conflict) when an occurrence
    cannot be booked, unless `skip_conflicts`; then books the others and lists what it skipped."""
    slots = occurrences(first, rule, bookings.zone)
    now = bookings.clock()
    plan = await bookings.plan(conn, principal, first)
    series_id = await QUERIES.insert_series(
        conn, organization_id=plan.organization_id, user_id=plan.user_id, created_by=principal.id, rule=rule, now=now
    )
    made: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for start, end in slots:
        try:
            async with conn.transaction():
                row = await bookings.create(conn, principal, replace(first, start=start, end=end), announce=False)
                await QUERIES.join_series(conn, id=row["id"], series_id=series_id)
                made.append(await detail(conn, row["id"]))
        except (Invalid, SlotTaken) as exc:
            reason = exc.reason if isinstance(exc, SlotTaken) else exc.detail
            problems = exc.extra.get("problems", []) if isinstance(exc, Invalid) else []
            skipped.append({"start": start, "end": end, "reason": reason, "problems": problems})
    if skipped and not skip_conflicts:
        raise Conflict(
            f"{len(skipped)} of {len(slots)} occurrences cannot be booked: book the others with skip_conflicts",
            conflicts=[s | {"start": s["start"].isoformat(), "end": s["end"].isoformat()} for s in skipped],
        )
    if not made:
        raise Conflict("no occurrence of the series can be booked")
    series = {"id": series_id, "rule": rule, "bookings": made, "skipped": skipped}
    await audit.record(conn, now, principal, "create", "booking_series", series_id, after=series)
    await publish(conn, "booking.series_confirmed", {"series": series}, at=now)
    return series


async def get(conn: AsyncConnection, principal: Principal, series_id: int) -> dict[str, Any]:
    row = await QUERIES.series_row(conn, id=series_id)
    if row is None or not principal.sees_organization(row[1]):
        raise NotFound(f"no booking series {series_id}")
    members = await dict_rows(conn, QUERIES.series_bookings.sql, {"series_id": series_id})
    return {"id": series_id, "rule": row[2], "bookings": members}


async def cancel_rest(
    conn: AsyncConnection, bookings: Bookings, principal: Principal, series_id: int, from_booking_id: int | None
) -> list[dict[str, Any]]:
    """Cancels the confirmed occurrences that start at or after the given one (all that have not started,
    without one), each under the class's cancellation rules, as if cancelled one by one."""
    series = await get(conn, principal, series_id)
    members = series["bookings"]
    if from_booking_id is not None:
        starts = [b["start"] for b in members if b["id"] == from_booking_id]
        if not starts:
            raise NotFound(f"booking {from_booking_id} is not in series {series_id}")
        members = [b for b in members if b["start"] >= starts[0]]
    now = bookings.clock()
    due = [b for b in members if b["status"] == "confirmed" and b["start"] > now]
    if not due:
        raise Conflict(f"series {series_id} has no confirmed occurrence left to cancel from there")
    return [await bookings.cancel(conn, principal, b["id"]) for b in due]
