"""The bookings as an iCalendar feed, for calendar apps that subscribe to a secret URL. Times go out in UTC
(no VTIMEZONE needed, every client converts); a cancelled booking or a no-show stays in the feed as
CANCELLED with a higher SEQUENCE, so subscribed calendars strike it rather than keep a stale event; a moved
booking keeps its UID and raises its SEQUENCE, so calendars move the event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from accounts.model import Principal
from booking.sqlfiles import QUERIES

PRODID = "-//FabHub//bookings//"
HISTORY = timedelta(days=90)
MAX_EVENTS = 10_000
REFRESH = timedelta(hours=1)
_STRUCK = frozenset({"cancelled", "no_show"})
_STATUS_WORDS = {
    "confirmed": "confirmed",
    "in_progress": "in progress",
    "completed": "completed",
    "cancelled": "cancelled",
    "no_show": "no-show",
}


async def feed(conn: AsyncConnection, principal: Principal, now: datetime, zone: ZoneInfo) -> bytes:
    """A customer's feed holds their organization's bookings; a staff member's holds every booking. Only
    bookings ending after 90 days ago are listed."""
    organization_id = None if principal.is_staff else principal.organization_id
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            QUERIES.calendar_bookings.sql,
            {"since": now - HISTORY, "organization_id": organization_id, "limit": MAX_EVENTS},
        )
        rows = await cur.fetchall()
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", "FabHub")
    calendar.add("x-wr-timezone", zone.key)
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT1H")
    stamp = now.astimezone(UTC)
    for row in rows:
        calendar.add_component(_event(row, stamp))
    return calendar.to_ical()


def attachment(rows: list[dict[str, Any]], now: datetime) -> bytes:
    """Bookings as a calendar file to attach to a message: the same UIDs as in the feed, so a calendar that
    has both keeps one event each (and strikes it when the booking is cancelled)."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    for row in rows:
        calendar.add_component(_event({"modified_at": now, **row}, now.astimezone(UTC)))
    return calendar.to_ical()


def _event(row: dict[str, Any], stamp: datetime) -> Event:
    event = Event()
    event.add("uid", f"booking-{row['id']}@fabhub")
    event.add("dtstamp", stamp)
    event.add("dtstart", row["start"].astimezone(UTC))
    event.add("dtend", row["end"].astimezone(UTC))
    event.add("created", row["created_at"].astimezone(UTC))
    event.add("last-modified", row["modified_at"].astimezone(UTC))
    event.add("summary", f"{row['device_name']} · {row['organization_name']}")
    event.add("description", _description(row))
    struck = row["status"] in _STRUCK
    event.add("status", "CANCELLED" if struck else "CONFIRMED")
    # Each change counts a revision; being struck is one more.
    event.add("sequence", row["revision"] + (1 if struck else 0))
    event.add("transp", "TRANSPARENT" if struck else "OPAQUE")
    return event


def _cny(amount: Decimal) -> str:
    return f"{amount:.2f} CNY"


def _description(row: dict[str, Any]) -> str:
    lines = [f"Purpose: {row['purpose'] or '-'}", f"Price: {_cny(row['net'])} net"]
    if row["subsidy"] > 0:
        program = f" ({row['subsidy_program']})" if row["subsidy_program"] else ""
        lines.append(f"Subsidy: {_cny(row['subsidy'])}{program} off {_cny(row['gross'])}")
    else:
        lines.append("Subsidy: none")
    lines.append(f"Status: {_STATUS_WORDS.get(row['status'], row['status'])}")
    if row["fee"] > 0:
        lines.append(f"Fee: {_cny(row['fee'])}")
    lines.append(f"Booking {row['id']}")
    return "\n".join(lines)
