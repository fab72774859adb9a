"""The scheduled life-cycle pass over bookings. The machine's own state decides a check-in: a confirmed
booking whose no-show threshold has passed is under way when the device ran (running or setup) at its
start or within the threshold, and a no-show otherwise, charged the class's no-show fee; a booking under
way whose slot has ended is completed. Every change is audited as the job. The pass is idempotent: each
update is guarded by the status it moves from, so a second run (or one racing a customer's own check-in)
changes nothing twice. What the machine did comes from telemetry, which booking may not read (DESIGN.md's
package table): the composition root passes telemetry's `activity_after_start` in as `activity`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from accounts import audit
from booking import pricing
from booking.bookings import detail
from booking.catalogue import Catalogue
from booking.sqlfiles import QUERIES
from common.rows import dict_rows
from outbox.events import publish

ACTOR = "job:booking-lifecycle"
ACTIVE = frozenset({"running", "setup"})
IDEMPOTENCY_TTL = timedelta(hours=24)


class Activity(Protocol):
    """What a machine did around a booking's start (telemetry.activity.Activity)."""

    @property
    def state_at_start(self) -> str | None: ...  # the state at the start (None: no state row yet)
    @property
    def first_active(self) -> datetime | None: ...  # the first running/setup row within [start, until]
    @property
    def online_after_start(self) -> bool: ...  # any state other than offline within (start, until]


# (conn, [(device_id, start, until), ...]) -> one Activity per span, in order.
ActivityLookup = Callable[[AsyncConnection, Sequence[tuple[str, datetime, datetime]]], Awaitable[Sequence[Activity]]]


async def advance(
    conn: AsyncConnection, now: datetime, catalogue: Catalogue, zone: ZoneInfo, activity: ActivityLookup
) -> dict[str, int]:
    """Run inside a transaction (the job runner's). Returns how many bookings moved to each status."""
    counts = {"in_progress": 0, "no_show": 0, "completed": 0}
    classes = list(catalogue.classes.values())
    due = await dict_rows(
        conn,
        QUERIES.due_for_check_in.sql,
        {
            "now": now,
            "class_ids": [c.id for c in classes],
            "no_show_after": [c.rules.no_show_after for c in classes],
            "no_show_fee_share": [c.rules.no_show_fee_share for c in classes],
        },
    )
    seen = await activity(conn, [(b["device_id"], b["start"], b["threshold_end"]) for b in due])
    for booking, machine in zip(due, seen, strict=True):
        running_at_start = machine.state_at_start in ACTIVE
        unknown = machine.state_at_start in (None, "offline") and not machine.online_after_start
        if running_at_start or machine.first_active is not None or unknown:
            checked_in_at = machine.first_active if machine.first_active and not running_at_start else booking["start"]
            await QUERIES.start_booking(conn, id=booking["id"], checked_in_at=checked_in_at)
            if unknown:
                # No data is not evidence of absence: no no-show fee on a machine nobody could see.
                why = "the machine was offline or silent: checked in on trust, no no-show fee"
            elif running_at_start:
                why = "the machine was running at the start"
            else:
                why = f"the machine started at {checked_in_at.astimezone(zone).strftime('%Y-%m-%d %H:%M')}"
            await audit.record(
                conn,
                now,
                ACTOR,
                "check_in",
                "booking",
                booking["id"],
                before={"status": "confirmed"},
                after={"status": "in_progress", "checked_in_at": checked_in_at},
                reason=why,
            )
            counts["in_progress"] += 1
        else:
            fee = pricing.fee(booking["net"], booking["no_show_fee_share"])
            await QUERIES.mark_no_show(conn, id=booking["id"], fee=fee)
            await audit.record(
                conn,
                now,
                ACTOR,
                "no_show",
                "booking",
                booking["id"],
                before={"status": "confirmed"},
                after={"status": "no_show", "fee": fee},
                reason="the machine did not run or set up within the no-show threshold",
            )
            await publish(conn, "booking.no_show", {"booking": await detail(conn, booking["id"])}, at=now)
            counts["no_show"] += 1
    for booking in await dict_rows(conn, QUERIES.due_for_completion.sql, {"now": now}):
        await QUERIES.complete_booking(conn, id=booking["id"], finished_at=booking["end"])
        await audit.record(
            conn,
            now,
            ACTOR,
            "finish",
            "booking",
            booking["id"],
            before={"status": "in_progress"},
            after={"status": "completed", "finished_at": booking["end"]},
            reason="the slot has ended",
        )
        counts["completed"] += 1
    return counts


async def expire_idempotency_keys(conn: AsyncConnection, now: datetime) -> int:
    """Idempotency keys are honoured for a day; older ones are deleted. Returns how many."""
    return await QUERIES.expire_idempotency_keys(conn, before=now - IDEMPOTENCY_TTL)


async def next_occupation(
    conn: AsyncConnection, device_id: str, after: datetime, until: datetime, booking_id: int | None = None
) -> datetime | None:
    """When `device_id` is next taken at or after `after` (and before `until`): the start of its next booking
    that is not cancelled, other than `booking_id`, or of its next maintenance window; `after` itself when one
    is under way then; None when nothing is planned. Billing ends a booking's overrun here (DESIGN.md: the
    overage basis never runs into the device's next booking or maintenance), so it reads the booking
    domain's calendar through this function rather than its tables."""
    return await QUERIES.next_occupation(conn, device_id=device_id, after=after, until=until, booking_id=booking_id)
