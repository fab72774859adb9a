"""Creating, reading and moving bookings through their life cycle. The exclusion constraint decides who
gets a slot; this module checks the rules around it, prices the booking and picks a device for class
requests, trying the next free device when a concurrent request took the first."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from accounts import audit
from accounts.model import Principal, Role
from booking import availability, pricing, rules
from booking.catalogue import Catalogue, DeviceClass
from booking.sqlfiles import QUERIES
from common.errors import Conflict, Forbidden, Invalid, NotFound
from common.rows import autocommit, dict_rows
from outbox.events import publish

# How far around a taken slot the 409 looks for alternatives.
ALTERNATIVES_SPAN = timedelta(days=3)
# Beyond any class's max_booking, even overridden: refused before the database spends time on it.
LONGEST = timedelta(days=31)
CHECK_IN_EARLY = timedelta(minutes=15)
# Per device, the half-open spans an organization holds it (Bookings.held).
Held = dict[str, list[tuple[datetime, datetime]]]


@dataclass(frozen=True, slots=True)
class BookingRequest:
    start: datetime
    end: datetime
    device_id: str | None = None
    class_id: str | None = None
    user_id: int | None = None  # staff: the customer who will use the machine
    purpose: str = ""
    override_reason: str | None = None
    reference: str | None = None  # the customer's project or purchase-order reference


@dataclass(frozen=True, slots=True)
class Plan:
    """A checked request: who, which class, which devices may serve it, what rules it breaks."""

    request: BookingRequest
    device_class: DeviceClass
    device_ids: list[str]
    organization_id: int
    user_id: int
    moving: Moving | None = None


@dataclass(frozen=True, slots=True)
class Moving:
    """The booking a change moves, as it stands before the change."""

    id: int
    organization_id: int
    user_id: int
    class_id: str

    @classmethod
    def of(cls, booking: dict[str, Any]) -> Moving:
        return cls(booking["id"], booking["organization_id"], booking["user_id"], booking["class_id"])


@dataclass(frozen=True, slots=True)
class BookingChange:
    """What a change asks for; None keeps the booking's own device, purpose or reference."""

    start: datetime
    end: datetime
    device_id: str | None = None
    purpose: str | None = None
    reference: str | None = None
    override_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Check:
    quote: pricing.Quote
    problems: list[rules.Violation]
    free_device: str | None
    plan: Plan  # for `alternatives` when no device is free
    unavailable: str | None = None  # why no device is free: the reason booking would give (SlotTaken)

    @property
    def bookable(self) -> bool:
        return self.free_device is not None and not self.problems


class SlotTaken(Exception):
    def __init__(self, plan: Plan, reason: str) -> None:
        self.plan = plan
        self.reason = reason


async def detail(conn: AsyncConnection, booking_id: int, principal: Principal | None = None) -> dict[str, Any]:
    """A booking with its device's and organization's names; a customer asking for another organization's
    booking gets the same NotFound as for none."""
    organization_id = None if principal is None or principal.is_staff else principal.organization_id
    rows = await dict_rows(conn, QUERIES.booking_row.sql, {"id": booking_id, "organization_id": organization_id})
    if not rows:
        raise NotFound(f"no booking {booking_id}")
    return rows[0]


class Bookings:
    def __init__(
        self, pool: AsyncConnectionPool, catalogue: Catalogue, zone: ZoneInfo, clock: Callable[[], datetime]
    ) -> None:
        self.pool = pool
        self.catalogue = catalogue
        self.zone = zone
        self.clock = clock

    # -- requests ----------------------------------------------------------------------------------------

    async def plan(
        self, conn: AsyncConnection, principal: Principal, request: BookingRequest, moving: Moving | None = None
    ) -> Plan:
        """`moving`: the booking this request changes; it keeps its organization, user and class."""
        if request.end <= request.start:
            raise Invalid("the booking must end after it starts")
        if request.end - request.start > LONGEST:
            raise Invalid(f"a booking lasts at most {LONGEST.days} days, even with an override")
        if request.device_id is not None:
            device = self.catalogue.devices.get(request.device_id)
            if device is None:
                raise NotFound(f"no device {request.device_id!r}")
            if device.retired:
                raise Invalid(f"device {request.device_id} is retired and cannot be booked")
            if request.class_id is not None and request.class_id != device.class_id:
                raise Invalid(f"device {device.id} is a {device.class_id}, not a {request.class_id}")
            class_id, device_ids = device.class_id, [device.id]
        elif request.class_id is not None:
            if request.class_id not in self.catalogue.classes:
                raise NotFound(f"no device class {request.class_id!r}")
            class_id, device_ids = request.class_id, self.catalogue.class_devices(request.class_id)
            if not device_ids:
                raise Invalid(f"class {class_id} has no bookable device")
        else:
            raise Invalid("name a device_id or a class_id")
        if request.override_reason is not None and not principal.is_operator:
            raise Forbidden("only technicians and admins may override booking rules")
        if moving is None:
            organization_id, user_id = await self._booked_for(conn, principal, request.user_id)
        elif class_id != moving.class_id:
            raise Invalid(
                f"a change keeps the machine class ({moving.class_id}): book the other class and cancel this booking"
            )
        else:
            organization_id, user_id = moving.organization_id, moving.user_id
        return Plan(request, self.catalogue.classes[class_id], device_ids, organization_id, user_id, moving)

    async def _booked_for(self, conn: AsyncConnection, principal: Principal, user_id: int | None) -> tuple[int, int]:
        if principal.role == Role.customer:
            if user_id not in (None, principal.id):
                raise Forbidden("customers book for themselves")
            assert principal.organization_id is not None
            return principal.organization_id, principal.id
        if not principal.is_operator:
            raise Forbidden(f"a {principal.role} cannot book")
        if user_id is None:
            raise Invalid("staff book for a customer: give the customer's user_id")
        row = await QUERIES.booked_for(conn, id=user_id)
        if row is None or row[1] != Role.customer or not row[2]:
            raise Invalid(f"user {user_id} is not an active customer")
        return row[0], user_id

    async def _context(self, conn: AsyncConnection, plan: Plan, now: datetime) -> dict[str, Any]:
        start, end = plan.request.start, plan.request.end
        local = start.astimezone(self.zone)
        year_start = local.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        day_start = rules.local_midnight(start, self.zone)
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                QUERIES.booking_context.sql,
                {
                    "user_id": plan.user_id,
                    "class_id": plan.device_class.id,
                    "organization_id": plan.organization_id,
                    "now": now,
                    "year_start": year_start,
                    "year_end": year_start.replace(year=year_start.year + 1),
                    "start": start,
                    "end": end,
                    "zone": self.zone.key,
                    "device_ids": plan.device_ids,
                    "day_start": day_start,
                    "day_end": day_start + timedelta(days=1),
                    "exclude_id": plan.moving.id if plan.moving else None,
                },
            )
            row = await cur.fetchone()
        assert row is not None
        return row

    def _problems(self, plan: Plan, ctx: dict[str, Any], now: datetime) -> list[rules.Violation]:
        cls, request = plan.device_class, plan.request
        found = rules.check(cls.rules, request.start, request.end, now, self.zone)
        if not ctx["within_opening_hours"]:
            found.append(rules.Violation("opening_hours", "the center is closed during part of this slot"))
        last_day = (request.end - timedelta(microseconds=1)).astimezone(self.zone).date()
        expires = ctx["qualified_until"]
        if expires is None:
            found.append(
                rules.Violation("qualification", f"not qualified for {cls.name}: a technician grants qualifications")
            )
        elif expires < last_day:
            found.append(
                rules.Violation(
                    "qualification",
                    f"the qualification for {cls.name} expires on {expires.isoformat()}, before this booking "
                    "ends: ask a technician to renew it",
                )
            )
        if ctx["reference_required"] and not request.reference:
            found.append(
                rules.Violation("reference", "your organization books with a project or purchase-order reference")
            )
        wanted = request.end - max(request.start, now)
        over = rules.future_hours_violation(cls.rules, ctx["future_booked"], max(wanted, timedelta(0)))
        if over is not None:
            found.append(over)
        return found

    def quote_for(self, plan: Plan, ctx: dict[str, Any], device_id: str) -> pricing.Quote:
        request = plan.request
        day = request.start.astimezone(self.zone).date()
        programs = pricing.eligible(
            self.catalogue.programs.values(), ctx["organization_programs"] or (), plan.device_class.id, day
        )
        used: dict[str, Decimal] = {}
        for program, amount in zip(ctx["used_programs"] or (), ctx["used_amounts"] or (), strict=True):
            used[program] = used.get(program, Decimal(0)) + amount
        return pricing.quote(self.catalogue.rate(device_id), request.end - request.start, programs, used)

    # -- quote and create --------------------------------------------------------------------------------

    async def check(
        self, conn: AsyncConnection, principal: Principal, request: BookingRequest, moving: Moving | None = None
    ) -> Check:
        """The request as it would be booked now (or the booking `moving` changed to it): its price, the rules
        it breaks, and the device that would serve it (None when none is free)."""
        now = self.clock()
        plan = await self.plan(conn, principal, request, moving)
        ctx = await self._context(conn, plan, now)
        why = _unavailable(plan, ctx)
        device_id = (ctx["candidates"] or plan.device_ids)[0]
        quote = self.quote_for(plan, ctx, device_id)
        return Check(quote, self._problems(plan, ctx, now), device_id if why is None else None, plan, why)

    async def create(
        self, conn: AsyncConnection, principal: Principal, request: BookingRequest, *, announce: bool = True
    ) -> dict[str, Any]:
        """Inside the caller's transaction. Raises SlotTaken when no device is free; the caller rolls back
        and asks `alternatives`. `announce=False` leaves the confirmation to the caller (a series sends one)."""
        now = self.clock()
        plan = await self.plan(conn, principal, request)
        row, broken = await self._place(
            conn, plan, now, lambda device_id, ctx: self._new_row(principal, plan, ctx, device_id, now)
        )
        await audit.record(conn, now, principal, "create", "booking", row["id"], after=row)
        if announce:
            await publish(conn, "booking.confirmed", {"booking": row}, at=now)
        await self._overridden(conn, principal, plan, row["id"], broken, now)
        return row

    async def change(
        self, conn: AsyncConnection, principal: Principal, booking_id: int, change: BookingChange
    ) -> dict[str, Any]:
        """Moves a confirmed booking that has not started to another slot of its class, checked and priced
        anew like a new booking, or only changes its purpose or reference (slot and price stay, also under
        way). The id, and with it the calendar event, stays. A customer moves a booking only before its
        late-cancellation window: moving it later would escape the fee a cancellation then carries."""
        now = self.clock()
        locked = await self._locked(conn, principal, booking_id)
        before = await self.get(conn, booking_id)
        request = self.changed(before, change)
        moved = (request.start, request.end, request.device_id) != (before["start"], before["end"], before["device_id"])
        if not moved:
            if locked["status"] not in ("confirmed", "in_progress"):
                raise Conflict(f"booking {booking_id} is {locked['status']} and cannot be changed")
            if locked["reference_required"] and not request.reference:
                raise Invalid("your organization books with a project or purchase-order reference")
            await QUERIES.relabel_booking(
                conn, id=booking_id, purpose=request.purpose, reference=request.reference, now=now
            )
        else:
            if locked["status"] != "confirmed" or locked["start"] <= now:
                raise Conflict(f"booking {booking_id} cannot be moved: it has started or ended")
            window = locked["late_cancellation"]
            if not principal.is_operator and locked["start"] - now < window:
                raise Conflict(
                    f"booking {booking_id} starts within {window / timedelta(hours=1):g} h: it can no longer be "
                    "moved, only cancelled (with the late-cancellation fee) or moved by a technician"
                )
            plan = await self.plan(conn, principal, request, Moving.of(before))
            _, broken = await self._place(
                conn, plan, now, lambda device_id, ctx: self._moved_row(booking_id, plan, ctx, device_id, now)
            )
            await self._overridden(conn, principal, plan, booking_id, broken, now)
        after = await self.get(conn, booking_id)
        await audit.record(conn, now, principal, "change", "booking", booking_id, before=before, after=after)
        if moved:
            await publish(conn, "booking.changed", {"booking": after, "before": before}, at=now)
        return after

    async def check_change(
        self, conn: AsyncConnection, principal: Principal, booking_id: int, change: BookingChange
    ) -> Check:
        """What `change` would make of the booking: its new price, the rules it breaks, the device."""
        before = await self.get(conn, booking_id, principal)
        return await self.check(conn, principal, self.changed(before, change), Moving.of(before))

    @staticmethod
    def changed(before: dict[str, Any], change: BookingChange) -> BookingRequest:
        """The booking as the change would make it."""
        return BookingRequest(
            change.start,
            change.end,
            device_id=change.device_id or before["device_id"],
            purpose=before["purpose"] if change.purpose is None else change.purpose,
            reference=before["reference"] if change.reference is None else change.reference or None,
            override_reason=change.override_reason,
        )

    async def _place(
        self,
        conn: AsyncConnection,
        plan: Plan,
        now: datetime,
        statement: Callable[[str, dict[str, Any]], tuple[str, dict[str, Any]]],
    ) -> tuple[dict[str, Any], list[rules.Violation]]:
        """Checks the plan and writes it to the first free device with `statement` (the INSERT of a new
        booking or the UPDATE of a change), returning the row and the rules an override let it break; raises
        SlotTaken when no device is free."""
        request = plan.request
        await QUERIES.lock_for_booking(conn, organization_id=plan.organization_id, device_ids=plan.device_ids)
        ctx = await self._context(conn, plan, now)
        if ctx["organization_active"] is not True:
            raise Invalid("the organization is deactivated; contact the center")
        problems = self._problems(plan, ctx, now)
        if problems and request.override_reason is None:
            raise Invalid(
                f"the booking breaks {len(problems)} rule(s)",
                problems=[{"rule": p.rule, "message": p.message} for p in problems],
            )
        why = _unavailable(plan, ctx)
        if why is not None:
            raise SlotTaken(plan, why)
        candidates = ctx["candidates"]
        for device_id in candidates:
            sql, params = statement(device_id, ctx)
            # With one candidate a lost race ends the request anyway; with more, a savepoint lets it move on.
            row = await self._write(conn, plan, sql, params, savepoint=len(candidates) > 1)
            if row is not None:
                return row, problems
        raise SlotTaken(plan, _taken(plan))

    def _priced(self, plan: Plan, ctx: dict[str, Any], device_id: str, now: datetime) -> dict[str, Any]:
        request, quote = plan.request, self.quote_for(plan, ctx, device_id)
        return {
            "device_id": device_id,
            "start": request.start,
            "end": request.end,
            "purpose": request.purpose,
            "reference": request.reference,
            "override_reason": request.override_reason,
            "hourly_rate": quote.hourly_rate,
            "gross": quote.gross,
            "subsidy_program": quote.subsidy_program,
            "subsidy_share": quote.subsidy_share,
            "subsidy": quote.subsidy,
            "net": quote.net,
            "now": now,
        }

    def _new_row(
        self, principal: Principal, plan: Plan, ctx: dict[str, Any], device_id: str, now: datetime
    ) -> tuple[str, dict[str, Any]]:
        params = self._priced(plan, ctx, device_id, now) | {
            "class_id": plan.device_class.id,
            "device_name": self.catalogue.devices[device_id].name,
            "organization_id": plan.organization_id,
            "organization_name": ctx["organization_name"],
            "user_id": plan.user_id,
            "created_by": principal.id,
        }
        return QUERIES.insert_booking.sql, params

    def _moved_row(
        self, booking_id: int, plan: Plan, ctx: dict[str, Any], device_id: str, now: datetime
    ) -> tuple[str, dict[str, Any]]:
        return QUERIES.change_booking.sql, self._priced(plan, ctx, device_id, now) | {"id": booking_id}

    @staticmethod
    async def _write(
        conn: AsyncConnection, plan: Plan, sql: str, params: dict[str, Any], *, savepoint: bool
    ) -> dict[str, Any] | None:
        """The written row; None when a concurrent booking took the device first and a savepoint let this
        request survive it."""
        try:
            async with conn.cursor(row_factory=dict_row) as cur:
                if not savepoint:
                    await cur.execute(sql, params)
                    return await cur.fetchone()
                async with conn.transaction():
                    await cur.execute(sql, params)
                    return await cur.fetchone()
        except psycopg.errors.ExclusionViolation:
            if not savepoint:
                raise SlotTaken(plan, "the slot is taken") from None
            return None

    @staticmethod
    async def _overridden(
        conn: AsyncConnection,
        principal: Principal,
        plan: Plan,
        booking_id: int,
        broken: list[rules.Violation],
        now: datetime,
    ) -> None:
        if broken:
            reason = plan.request.override_reason
            after = [p.rule for p in broken]
            await audit.record(conn, now, principal, "override", "booking", booking_id, after=after, reason=reason)

    async def alternatives(self, plan: Plan) -> list[availability.Slot]:
        """The nearest free slots of the plan's length in its class, the requested device first."""
        now = self.clock()
        request, cls = plan.request, plan.device_class
        # The requested device first, then the rest of its class.
        device_ids = self.catalogue.class_devices(cls.id)
        start = max(now, request.start - ALTERNATIVES_SPAN)
        end = request.end + ALTERNATIVES_SPAN
        async with autocommit(self.pool) as conn:
            free = await availability.free_slots(conn, device_ids, start, end, now, cls.rules, self.zone)
        # free_slots ends at the horizon already: every slot it offers may be booked
        return availability.nearest(free, request.end - request.start, request.start, cls.rules, self.zone, limit=5)

    # -- reading -----------------------------------------------------------------------------------------

    async def get(self, conn: AsyncConnection, booking_id: int, principal: Principal | None = None) -> dict[str, Any]:
        """A customer asking for another organization's booking gets the same NotFound as for none."""
        return await detail(conn, booking_id, principal)

    def filters(
        self,
        principal: Principal,
        start: datetime,
        end: datetime,
        *,
        organization_id: int | None = None,
        device_id: str | None = None,
        class_id: str | None = None,
        status: str | None = None,
        limit: int | None = 500,
    ) -> dict[str, Any] | None:
        """The parameters of `booking_rows` for what the principal may see; None when that is nothing (a
        customer asking for another organization's bookings)."""
        if not principal.is_staff:
            if organization_id not in (None, principal.organization_id):
                return None
            organization_id = principal.organization_id
        return {
            "start": start,
            "end": end,
            "organization_id": organization_id,
            "device_id": device_id,
            "class_id": class_id,
            "status": status,
            "limit": limit,
        }

    async def list(
        self, conn: AsyncConnection, principal: Principal, start: datetime, end: datetime, **filters: Any
    ) -> list[dict[str, Any]]:
        params = self.filters(principal, start, end, **filters)
        if params is None:
            return []
        return await dict_rows(conn, QUERIES.booking_rows.sql, params)

    async def held(
        self, organization_id: int | None, device_ids: Sequence[str], start: datetime, end: datetime
    ) -> Held:
        """The spans of [start, end) in which the organization holds each device: its bookings that hold their
        slot (confirmed, in progress, completed), half-open, in time order; none without an organization. Only
        within them does a customer see a machine's detailed telemetry (fabhub hands this to telemetry.sight)."""
        params = {"organization_id": organization_id, "device_ids": list(device_ids), "start": start, "end": end}
        found: Held = {}
        async with autocommit(self.pool) as conn, conn.cursor() as cur:
            await cur.execute(QUERIES.held_spans.sql, params)
            for device_id, span_start, span_end in await cur.fetchall():
                found.setdefault(device_id, []).append((span_start, span_end))
        return found

    # -- life cycle --------------------------------------------------------------------------------------

    async def _locked(self, conn: AsyncConnection, principal: Principal, booking_id: int) -> dict[str, Any]:
        organization_id = None if principal.is_staff else principal.organization_id
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(QUERIES.lock_booking.sql, {"id": booking_id, "organization_id": organization_id})
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no booking {booking_id}")
        if principal.role not in (Role.customer, Role.technician, Role.admin):
            raise Forbidden(f"a {principal.role} cannot change bookings")
        return row

    async def cancel(
        self, conn: AsyncConnection, principal: Principal, booking_id: int, waive_fee_reason: str | None = None
    ) -> dict[str, Any]:
        now = self.clock()
        locked = await self._locked(conn, principal, booking_id)
        if locked["status"] != "confirmed":
            raise Conflict(f"booking {booking_id} is {locked['status']} and cannot be cancelled")
        if locked["start"] <= now:
            raise Conflict(f"booking {booking_id} has started; check it in or let it finish instead")
        if waive_fee_reason is not None and not principal.is_operator:
            raise Forbidden("only technicians and admins may waive a cancellation fee")
        late, fee = pricing.cancellation(
            locked["start"], now, locked["net"], locked["late_cancellation"], locked["late_cancellation_fee_share"]
        )
        if waive_fee_reason is not None:
            fee = pricing.ZERO
        before = await self.get(conn, booking_id)
        await QUERIES.cancel_booking(conn, id=booking_id, now=now, by=principal.id, late=late, fee=fee)
        after = await self.get(conn, booking_id)
        await audit.record(
            conn, now, principal, "cancel", "booking", booking_id, before=before, after=after, reason=waive_fee_reason
        )
        await publish(conn, "booking.cancelled", {"booking": after, "by_center": False, "reason": None}, at=now)
        return after

    async def check_in(self, conn: AsyncConnection, principal: Principal, booking_id: int) -> dict[str, Any]:
        now = self.clock()
        if not principal.is_operator:
            raise Forbidden("a technician checks bookings in")
        locked = await self._locked(conn, principal, booking_id)
        if locked["status"] != "confirmed":
            raise Conflict(f"booking {booking_id} is {locked['status']}; only a confirmed booking is checked in")
        if not locked["start"] - CHECK_IN_EARLY <= now < locked["end"]:
            raise Conflict(f"check-in opens {CHECK_IN_EARLY.seconds // 60} min before the start and closes at the end")
        await QUERIES.check_in_booking(conn, id=booking_id, now=now)
        after = await self.get(conn, booking_id)
        await audit.record(conn, now, principal, "check_in", "booking", booking_id, after={"status": "in_progress"})
        return after

    async def finish(self, conn: AsyncConnection, principal: Principal, booking_id: int) -> dict[str, Any]:
        """Ends a booking under way: the machine is free for others from the next step of the class's granularity
        (a booking holds whole steps), and the booked end stays on the booking for its billing basis."""
        now = self.clock()
        locked = await self._locked(conn, principal, booking_id)
        if locked["status"] == "confirmed" and locked["start"] <= now < locked["end"]:
            raise Conflict(
                f"booking {booking_id} has not been checked in yet: it can be ended once the machine has run or a "
                "technician has checked it in"
            )
        if locked["status"] != "in_progress":
            raise Conflict(f"booking {booking_id} is {locked['status']}; only a booking in progress is ended")
        if now >= locked["end"]:
            raise Conflict(f"booking {booking_id} is over already")
        step = locked["granularity"]
        steps = max(-(-(now - locked["start"]) // step), 1)  # begun steps, rounded up; at least one
        before = await self.get(conn, booking_id)
        end = min(locked["start"] + step * steps, locked["end"])
        await QUERIES.finish_booking(conn, id=booking_id, now=now, end=end)
        after = await self.get(conn, booking_id)
        await audit.record(conn, now, principal, "finish", "booking", booking_id, before=before, after=after)
        billing = {"basis": locked["billing_basis"], "minimum_share": locked["metered_minimum_share"]}
        await publish(conn, "booking.ended", {"booking": after, "billing": billing}, at=now)
        return after


def _taken(plan: Plan) -> str:
    return "the slot is taken" if plan.request.device_id else f"no {plan.device_class.id} is free then"


def _unavailable(plan: Plan, ctx: dict[str, Any]) -> str | None:
    """Why the request finds no free device, as booking it would refuse it; None when one is free. Said
    when a price is checked too, so a form never offers to book what booking will refuse."""
    if plan.request.device_id is not None and ctx["under_maintenance"]:
        return f"{plan.request.device_id} is under maintenance then"
    return None if ctx["candidates"] else _taken(plan)
