"""The waiting list: a customer who found a slot taken waits for it (a device, or any device of a class).
A job looks every minute, whatever freed the slot (a cancellation, maintenance moved, a no-show released):
the first waiter whose span is now bookable for them is booked at once if they chose so, or offered the slot
for OFFER_WINDOW (never past its start) with a message, and can accept it until then. One open offer holds a
span, so the same freed slot is never offered to two waiters."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from accounts import audit
from accounts.model import Principal
from accounts.users import active_principal
from booking.bookings import BookingRequest, Bookings, SlotTaken
from booking.sqlfiles import QUERIES
from common.errors import Conflict, Invalid, NotFound
from common.rows import dict_rows
from outbox.events import publish

OFFER_WINDOW = timedelta(hours=2)
MAX_OPEN_PER_USER = 10
ENTITY = "waiting_entry"


async def join(
    conn: AsyncConnection, bookings: Bookings, principal: Principal, request: BookingRequest, auto_book: bool
) -> dict[str, Any]:
    """Waits for a slot that cannot be booked now; one that can be is booked instead (409 says so)."""
    plan = await bookings.plan(conn, principal, request)
    check = await bookings.check(conn, principal, request)
    if check.bookable:
        raise Conflict("the slot is free now: book it instead of waiting")
    broken = [p for p in check.problems if p.rule not in ("horizon", "max_future_hours_per_org")]
    if broken:
        # Waiting cannot mend these (qualification, opening hours, length): say so now, not never.
        raise Invalid(
            f"the slot breaks {len(broken)} rule(s) that waiting will not change",
            problems=[{"rule": p.rule, "message": p.message} for p in broken],
        )
    mine = [w for w in await _rows(conn, plan.organization_id) if w["user_id"] == plan.user_id]
    if sum(w["status"] in ("waiting", "offered") for w in mine) >= MAX_OPEN_PER_USER:
        raise Conflict(f"at most {MAX_OPEN_PER_USER} open waiting-list entries per user")
    now = bookings.clock()
    entry_id = await QUERIES.insert_waiting(
        conn,
        organization_id=plan.organization_id,
        user_id=plan.user_id,
        class_id=plan.device_class.id,
        device_id=request.device_id,
        start=request.start,
        end=request.end,
        purpose=request.purpose,
        reference=request.reference,
        auto_book=auto_book,
        now=now,
    )
    entry = await get(conn, principal, entry_id)
    await audit.record(conn, now, principal, "create", ENTITY, entry_id, after=entry)
    return entry


async def get(conn: AsyncConnection, principal: Principal, entry_id: int) -> dict[str, Any]:
    found = await dict_rows(conn, QUERIES.waiting_rows.sql, {"organization_id": None, "id": entry_id})
    if not found or not principal.sees_organization(found[0]["organization_id"]):
        raise NotFound(f"no waiting-list entry {entry_id}")
    return found[0]


async def open_entries(conn: AsyncConnection, principal: Principal) -> list[dict[str, Any]]:
    """The principal's own entries still waiting or offered, first come first."""
    rows = await _rows(conn, principal.organization_id)
    return [w for w in rows if w["user_id"] == principal.id and w["status"] in ("waiting", "offered")]


async def _rows(conn: AsyncConnection, organization_id: int | None) -> list[dict[str, Any]]:
    return await dict_rows(conn, QUERIES.waiting_rows.sql, {"organization_id": organization_id, "id": None})


async def withdraw(conn: AsyncConnection, principal: Principal, entry_id: int, now: datetime) -> dict[str, Any]:
    locked = await _locked(conn, principal, entry_id)
    if locked["status"] not in ("waiting", "offered"):
        raise Conflict(f"waiting-list entry {entry_id} is {locked['status']}")
    await QUERIES.settle_waiting(conn, id=entry_id, status="withdrawn", booking_id=None)
    await audit.record(conn, now, principal, "withdraw", ENTITY, entry_id)
    return await get(conn, principal, entry_id)


async def accept(conn: AsyncConnection, bookings: Bookings, principal: Principal, entry_id: int) -> dict[str, Any]:
    """Books the offered slot on the offered device; a taken slot is a 409 and the offer stays until it lapses."""
    locked = await _locked(conn, principal, entry_id)
    now = bookings.clock()
    if locked["status"] != "offered" or locked["offer_expires_at"] <= now:
        raise Conflict(f"waiting-list entry {entry_id} has no open offer")
    request = BookingRequest(
        start=locked["start"],
        end=locked["end"],
        device_id=locked["offered_device"],
        user_id=locked["user_id"] if principal.is_operator else None,
        purpose=locked["purpose"],
        reference=locked["reference"],
    )
    try:
        booking = await bookings.create(conn, principal, request)
    except SlotTaken as exc:
        raise Conflict(exc.reason) from None
    await QUERIES.settle_waiting(conn, id=entry_id, status="booked", booking_id=booking["id"])
    await audit.record(conn, now, principal, "accept", ENTITY, entry_id, after={"booking_id": booking["id"]})
    return booking


async def _locked(conn: AsyncConnection, principal: Principal, entry_id: int) -> dict[str, Any]:
    rows = await dict_rows(conn, QUERIES.lock_waiting.sql, {"id": entry_id})
    if not rows or not principal.sees_organization(rows[0]["organization_id"]):
        raise NotFound(f"no waiting-list entry {entry_id}")
    if not principal.is_staff and rows[0]["user_id"] != principal.id:
        raise NotFound(f"no waiting-list entry {entry_id}")
    return rows[0]


async def serve(conn: AsyncConnection, bookings: Bookings, now: datetime) -> dict[str, int]:
    """The job: ends stale entries, then books or offers each waiter's span that has become bookable."""
    await QUERIES.end_stale_waiting(conn, now=now)
    done = {"booked": 0, "offered": 0}
    offered: list[tuple[str, datetime, datetime]] = []
    for entry in await dict_rows(conn, QUERIES.open_waiting.sql, {}):
        if any(d == (entry["device_id"] or d) and s < entry["end"] and entry["start"] < e for d, s, e in offered):
            continue  # offered to an earlier waiter in this run
        waiter = await active_principal(conn, entry["user_id"])
        if waiter is None:
            continue
        request = BookingRequest(
            start=entry["start"],
            end=entry["end"],
            device_id=entry["device_id"],
            class_id=None if entry["device_id"] else entry["class_id"],
            purpose=entry["purpose"],
            reference=entry["reference"],
        )
        try:
            check = await bookings.check(conn, waiter, request)
        except (Invalid, NotFound):
            continue  # the device retired or the class left devices.yaml: it waits until it expires
        if not check.bookable or check.free_device is None:
            continue
        if entry["auto_book"]:
            done["booked"] += await _book(conn, bookings, waiter, entry, replace(request, device_id=check.free_device))
            continue
        expires = min(now + OFFER_WINDOW, entry["start"])
        await QUERIES.offer_waiting(conn, id=entry["id"], device_id=check.free_device, expires=expires)
        offered.append((check.free_device, entry["start"], entry["end"]))
        offer = {**entry, "device_id": check.free_device, "offer_expires_at": expires}
        offer["device_name"] = bookings.catalogue.devices[check.free_device].name
        await publish(conn, "waiting.offered", {"offer": offer}, at=now)
        done["offered"] += 1
    return done


async def _book(
    conn: AsyncConnection, bookings: Bookings, waiter: Principal, entry: dict[str, Any], request: BookingRequest
) -> int:
    try:
        async with conn.transaction():
            booking = await bookings.create(conn, waiter, request)
            await QUERIES.settle_waiting(conn, id=entry["id"], status="booked", booking_id=booking["id"])
    except (SlotTaken, Invalid):
        return 0  # taken again in the meantime: still waiting
    return 1
