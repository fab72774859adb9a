"""A completed booking's results, frozen once it is over and its data is in, so that raw-data retention never
changes what a customer was shown or billed (DESIGN.md, "OEE and utilisation").

What is frozen: the usage record billing reads (booked, running, setup, overrun and offline seconds, parts,
energy), per local day the rows the customer's OEE is computed from (`booking_result`: times per state,
parts, the ideal cycle time then configured), all from one live computation over the booking's slot, and the
machine report's raw-derived parts (`booking_report`: timeline, cycle times, programs, alarms, down time;
oee.snapshot).

Freezing publishes `booking.completed` with the booking and its usage (outbox), for the webhooks.

When: a completed booking is due once its slot has ended and its overrun is settled (the machine stopped
running after the end, or the device's next booking or maintenance window began, or a day passed: the
overage basis' limits), plus SETTLE_AFTER for batches still on their way. The booking-lifecycle job, which
completes bookings, freezes the due ones every minute (fabhub.jobs); an invoice draft freezes any it bills
that the job has not reached, and leaves a booking whose overrun is still open for the next run. Freezing is
idempotent: a booking with results is never computed again here.

Afterwards drafts, usage, exports and the per-booking and per-customer OEE read the frozen results. Only
`recompute` (finance or an admin, with a reason, audited with before and after) computes them again, and it
refuses while an issued invoice bills the booking or once retention has dropped the booking's raw samples."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from psycopg import AsyncConnection

from accounts import audit
from accounts.model import Principal
from booking import lifecycle
from booking.bookings import detail
from common.errors import Conflict, NotFound
from common.rows import dict_rows
from oee import energy, snapshot
from oee.service import OeeService
from oee.sqlfiles import QUERIES
from outbox.events import publish

log = logging.getLogger(__name__)

# Late batches (a gateway's spool replaying a short outage) arrive within this after the fact. A longer
# outage is what the audited recompute is for, while the raw data is still there.
SETTLE_AFTER = timedelta(minutes=30)
# The overage basis counts running on past the end for a day at most.
LONGEST_OVERRUN = timedelta(days=1)
# Bookings that ended longer ago than this are not frozen by the job (on an upgrade): raw retention has
# dropped their samples already, so the live figures are all there is. An invoice draft still freezes them.
LOOKBACK = timedelta(days=62)
BATCH = 100
ACTOR = "job:booking-lifecycle"


@dataclass(frozen=True, slots=True)
class Overrun:
    seconds: float
    settles_at: datetime  # from then on the overrun cannot change any more


async def overrun(conn: AsyncConnection, booking: dict[str, Any], now: datetime) -> Overrun:
    """How long the machine ran on past the booking's end: until it stopped, but never into the device's next
    booking or maintenance window (booking's calendar, read through booking.lifecycle), nor beyond a day.
    Customer C books 10-14, D 14-18, the machine runs on to 17: C's overrun is 0 and D's slot is D's usage;
    with D at 15-18, C's overrun is the hour up to D's start."""
    end = booking["end"]
    limit = end + LONGEST_OVERRUN
    taken = await lifecycle.next_occupation(conn, booking["device_id"], end, limit, booking["id"])
    stop = min(taken, limit) if taken is not None else limit
    row = await QUERIES.overrun(conn, device_id=booking["device_id"], end=end, stop=stop, now=now)
    assert row is not None
    return Overrun(float(row[0]), row[1])


def settled(booking: dict[str, Any], run: Overrun, now: datetime) -> bool:
    return bool(booking["status"] == "completed" and now >= max(booking["end"], run.settles_at) + SETTLE_AFTER)


async def freeze(
    conn: AsyncConnection, oee: OeeService, booking: dict[str, Any], now: datetime
) -> dict[str, Any] | None:
    """The booking's stored usage, its results frozen first when they are due; None while they are not
    (the booking is not completed, or its overrun is still open). Inside the caller's transaction.
    `booking`: id, device_id, organization_id, start, end, status, and booked_end when it was ended early."""
    await QUERIES.lock_booking_result(conn, booking_id=booking["id"])
    if await QUERIES.result_frozen(conn, booking_id=booking["id"]):
        usage = await _usage(conn, booking["id"])
        if usage is not None:
            return usage
        await QUERIES.delete_results(conn, booking_id=booking["id"])  # half a result (no usage): redone whole
    run = await overrun(conn, booking, now)
    if not settled(booking, run, now):
        return None
    # A usage record from before results were frozen (an older draft) is what was billed: it stays.
    await _store(conn, oee, booking, run, now, replace_usage=False)
    usage = await _usage(conn, booking["id"])
    # Systems (webhooks) hear of the completed booking with its price and the usage it is billed by; keyed,
    # so a booking's results redone whole after half a result do not announce it twice.
    completed = {"booking": await detail(conn, booking["id"]), "usage": usage}
    await publish(conn, "booking.completed", completed, at=now, key=f"booking.completed:{booking['id']}")
    return usage


async def freeze_due(conn: AsyncConnection, oee: OeeService, now: datetime, limit: int = BATCH) -> int:
    """The scheduled pass: freezes the completed bookings that are due, oldest first, each in a savepoint so
    one that fails is logged and retried on the next pass instead of holding up the others. Returns how
    many were frozen."""
    params = {"ended_before": now - SETTLE_AFTER, "since": now - LOOKBACK, "limit": limit}
    frozen = 0
    for booking in await dict_rows(conn, QUERIES.results_due.sql, params):
        try:
            async with conn.transaction():
                if await freeze(conn, oee, booking, now) is not None:
                    frozen += 1
        except Exception:
            log.exception("booking %s: its results could not be frozen; retried on the next pass", booking["id"])
    return frozen


async def recompute(
    conn: AsyncConnection, oee: OeeService, booking_id: int, principal: Principal, reason: str, now: datetime
) -> dict[str, Any]:
    """Computes a completed booking's frozen results again from the telemetry (say, after a long outage's
    spool arrived late), in one transaction, audited as `recompute` of `booking_result` with the usage before
    and after and the reason. Refused (Conflict) while an issued invoice that is not credited bills the
    booking (credit it first: an issued invoice never changes), when retention has dropped raw samples of
    the booking (a recompute would lose its parts), and before its overrun is over. A draft that holds the
    booking shows the new usage once the month is drafted again."""
    async with conn.transaction():
        found = await dict_rows(conn, QUERIES.result_booking.sql, {"id": booking_id})
        if not found:
            raise NotFound(f"no booking {booking_id}")
        booking = found[0]
        if booking["status"] != "completed":
            raise Conflict(f"booking {booking_id} is {booking['status']}: only a completed booking has results")
        await QUERIES.lock_booking_result(conn, booking_id=booking_id)
        number = await QUERIES.issued_invoice_of_booking(conn, booking_id=booking_id)
        if number is not None:
            raise Conflict(
                f"booking {booking_id} is billed on issued invoice {number}: credit the invoice first, then recompute"
            )
        oldest = await QUERIES.oldest_raw_sample(conn)
        if oldest is None or oldest > booking["start"]:
            raise Conflict(
                f"the raw data of booking {booking_id} is past retention: its frozen results stay as they are"
            )
        run = await overrun(conn, booking, now)
        if not settled(booking, run, now):
            raise Conflict(f"booking {booking_id} is not over yet: its results are frozen once its overrun is")
        before = await _usage(conn, booking_id)
        await QUERIES.delete_results(conn, booking_id=booking_id)
        await _store(conn, oee, booking, run, now, replace_usage=True)
        after = await _usage(conn, booking_id)
        await audit.record(
            conn, now, principal, "recompute", "booking_result", booking_id, before=before, after=after, reason=reason
        )
    assert after is not None
    return after


async def _store(
    conn: AsyncConnection,
    oee: OeeService,
    booking: dict[str, Any],
    run: Overrun,
    now: datetime,
    *,
    replace_usage: bool,
) -> None:
    """Measures the booking as its customer's planned time (its slot) and stores the per-day rows, the
    report's snapshot (oee.snapshot), and the usage record unless one is kept."""
    start, end = booking["start"], booking["end"]
    raw = await oee.live(conn, [booking["device_id"]], start, end, booking["organization_id"])
    sums = raw.sum(numeric_only=True)
    # Ended early: billing counts the booked slot (the metered minimum, the overage's start) and running on
    # only past the booked end; the measured figures stay those of the slot as held.
    released = (booking["booked_end"] - end).total_seconds() if booking.get("booked_end") else 0.0
    usage = {
        "booking_id": booking["id"],
        "booked_s": float(sums.get("booked_s", 0.0)) + released,
        "running_s": float(sums.get("running_s", 0.0)),
        "setup_s": float(sums.get("setup_s", 0.0)),
        "overrun_s": max(run.seconds - released, 0.0),
        "offline_s": float(sums.get("offline_s", 0.0)),
        "parts_total": float(sums.get("parts_total", 0.0)),
        "parts_good": float(raw["parts_good"].sum()) if raw["parts_good"].notna().any() else None,
    }
    spent = await energy.used(conn, oee.energy, booking["device_id"], start, end, oee.zone.key)
    usage |= {"energy_kwh": spent.kwh, "idle_energy_kwh": spent.idle_kwh}
    usage |= oee.energy.carbon.stated() if spent.kwh is not None else dict.fromkeys(oee.energy.carbon.stated())
    if replace_usage or await _usage(conn, booking["id"]) is None:
        await QUERIES.store_usage(conn, **usage, now=now)
    rows = []
    for row in raw.to_dict("records"):
        midnight = datetime.combine(row["day"], time(), oee.zone)
        rows.append(
            {
                **{k: _value(v) for k, v in row.items()},
                "booking_id": booking["id"],
                "start": max(start, midnight),
                "end": min(end, datetime.combine(row["day"] + timedelta(days=1), time(), oee.zone)),
                "computed_at": now,
            }
        )
    async with conn.cursor() as cur:
        await cur.executemany(QUERIES.store_result.sql, rows)
    await snapshot.store(conn, booking, now)


async def _usage(conn: AsyncConnection, booking_id: int) -> dict[str, Any] | None:
    found = await dict_rows(conn, QUERIES.usage_of_booking.sql, {"booking_id": booking_id})
    return found[0] if found else None


def _value(value: Any) -> Any:
    """NaN (unknown) as NULL; numpy floats as floats."""
    if isinstance(value, float) or hasattr(value, "item"):
        number = float(value)
        return None if number != number else number
    return value
