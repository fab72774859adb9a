"""Maintenance windows: a technician takes a device off the booking calendar for a while. The window is
decided under the device's advisory lock held exclusively (bookings hold it shared), so a booking can never
slip in between the check for bookings in the way and the window's insert; the exclusion constraint
`maintenance_no_overlap` keeps two windows of one device apart."""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection

from accounts import audit
from accounts.model import Principal
from booking.bookings import detail
from booking.sqlfiles import QUERIES
from common.errors import Conflict, Forbidden, Invalid, NotFound
from common.rows import dict_rows
from outbox.events import publish

MAX_WINDOW = timedelta(days=366)
MAX_REASON = 500


def _check_operator(principal: Principal) -> None:
    if not principal.is_operator:
        raise Forbidden("only technicians and admins manage maintenance windows")


def clean_reason(reason: str, what: str, limit: int = MAX_REASON) -> str:
    """The reason given for `what` (a maintenance window, a closed day), trimmed, or Invalid."""
    reason = reason.strip()
    if not reason:
        raise Invalid(f"give a reason for the {what}")
    if len(reason) > limit:
        raise Invalid(f"the reason is longer than {limit} characters")
    return reason


async def get(conn: AsyncConnection, window_id: int) -> dict[str, Any]:
    rows = await dict_rows(conn, QUERIES.maintenance_row.sql, {"id": window_id})
    if not rows:
        raise NotFound(f"no maintenance window {window_id}")
    return rows[0]


async def create(
    conn: AsyncConnection,
    principal: Principal,
    device_id: str,
    start: datetime,
    end: datetime,
    reason: str,
    cancel_bookings: bool,
    now: datetime,
) -> dict[str, Any]:
    """Returns the window with `cancelled_bookings` (those it cancelled, empty unless asked to). Runs in a
    savepoint of the caller's transaction (or a transaction of its own), so a refusal leaves nothing behind."""
    _check_operator(principal)
    if end <= start:
        raise Invalid("the maintenance window must end after it starts")
    if end <= now:
        raise Invalid("the maintenance window has already ended; windows block future time")
    if end - start > MAX_WINDOW:
        raise Invalid(f"a maintenance window lasts at most {MAX_WINDOW.days} days")
    reason = clean_reason(reason, "maintenance window")
    async with conn.transaction():
        await QUERIES.lock_device_for_maintenance(conn, device_id=device_id)
        device = await QUERIES.maintenance_device(conn, device_id=device_id)
        if device is None:
            raise NotFound(f"no device {device_id!r}")
        if device[1] is not None:
            raise Invalid(f"device {device_id} is retired")
        span = {"device_id": device_id, "start": start, "end": end}
        try:
            async with conn.transaction():
                window_id = await QUERIES.insert_maintenance(
                    conn, **span, reason=reason, created_by=principal.id, now=now
                )
        except psycopg.errors.ExclusionViolation:
            others = await dict_rows(conn, QUERIES.overlapping_maintenance.sql, span)
            raise Conflict(
                f"{device_id} already has a maintenance window overlapping this one", maintenance=others
            ) from None
        in_the_way = await dict_rows(conn, QUERIES.live_bookings_in_window.sql, span)
        used = [b for b in in_the_way if b["status"] != "confirmed"]
        if used:
            # Time a customer has used (or is using) stays theirs: a window over it would erase it from
            # usage and billing. Finish the booking first, or start the window after it.
            raise Conflict(
                f"{len(used)} booking(s) of {device_id} under way or done overlap this window; "
                "finish them or start the window later",
                bookings=used,
            )
        if in_the_way and not cancel_bookings:
            raise Conflict(
                f"{len(in_the_way)} live booking(s) of {device_id} overlap this window: "
                "move the window or set cancel_bookings to cancel them",
                bookings=in_the_way,
            )
        for booking in in_the_way:
            await _cancel_booking(conn, principal, booking["id"], reason, now)
        window = await get(conn, window_id)
        await audit.record(conn, now, principal, "create", "maintenance_window", window_id, after=window, reason=reason)
    return window | {"cancelled_bookings": in_the_way}


async def _cancel_booking(
    conn: AsyncConnection, principal: Principal, booking_id: int, reason: str, now: datetime
) -> None:
    """Cancelled by the center, so free of charge and never late."""
    before = await _booking_state(conn, booking_id)
    await QUERIES.cancel_booking_for_maintenance(conn, id=booking_id, now=now, by=principal.id)
    after = await _booking_state(conn, booking_id)
    why = f"maintenance: {reason}"
    await audit.record(conn, now, principal, "cancel", "booking", booking_id, before=before, after=after, reason=why)
    await publish(conn, "booking.cancelled", {"booking": after, "by_center": True, "reason": reason}, at=now)


async def _booking_state(conn: AsyncConnection, booking_id: int) -> dict[str, Any]:
    return await detail(conn, booking_id)


async def cancel(conn: AsyncConnection, principal: Principal, window_id: int, now: datetime) -> dict[str, Any]:
    """A window that has not started is cancelled; one under way ends now (the time it did block stays on
    record for utilisation figures); one that has ended is history and stays as it is."""
    _check_operator(principal)
    async with conn.transaction():
        locked = await dict_rows(conn, QUERIES.lock_maintenance.sql, {"id": window_id})
        if not locked:
            raise NotFound(f"no maintenance window {window_id}")
        row = locked[0]
        if row["cancelled_at"] is not None:
            raise Conflict(f"maintenance window {window_id} was cancelled already")
        if row["end"] <= now:
            raise Conflict(f"maintenance window {window_id} has ended; it stays on record")
        before = await get(conn, window_id)
        if row["start"] < now:
            await QUERIES.end_maintenance_now(conn, id=window_id, now=now)
            action = "end"
        else:
            await QUERIES.cancel_maintenance(conn, id=window_id, now=now)
            action = "cancel"
        after = await get(conn, window_id)
        await audit.record(conn, now, principal, action, "maintenance_window", window_id, before=before, after=after)
    return after


async def list(
    conn: AsyncConnection, device_id: str | None, start: datetime, end: datetime, limit: int = 1000
) -> builtins.list[dict[str, Any]]:
    """Live (not cancelled) windows overlapping [start, end), earliest first."""
    return await dict_rows(
        conn,
        QUERIES.maintenance_rows.sql,
        {"device_id": device_id, "start": start, "end": end, "limit": limit, "with_cancelled": False},
    )
