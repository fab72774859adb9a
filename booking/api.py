"""HTTP routes for the catalogue, availability, quotes and bookings. Each route takes its caller through
`auth.caller`, whose roles fabhub/policy.py states; a customer only ever sees its own organization's
bookings, and asking for another one's answers exactly like asking for one that does not exist."""

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from accounts.auth import Authenticator
from accounts.model import Principal
from booking import availability, pricing
from booking.bookings import BookingChange, BookingRequest, Bookings, Check, Plan, SlotTaken
from booking.catalogue import Rules
from booking.routing import IdempotencyKey, once
from booking.sqlfiles import QUERIES
from common.errors import Conflict, Invalid, NotFound
from common.http import ID, Instant, RowId, Text
from common.paging import Key, Listing, Page, Paging, fetch_page
from common.problems import ProblemDetails
from common.rows import autocommit
from common.times import Stamp

MAX_AVAILABILITY_WINDOW = timedelta(days=31)
MAX_LIST_WINDOW = timedelta(days=400)
BOOKINGS = Listing("bookings", (Key("start", "time"), Key("id", "int")))
Status = Literal["confirmed", "in_progress", "completed", "cancelled", "no_show"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BookingIn(Strict):
    start: Instant
    end: Instant
    device_id: str | None = Field(None, pattern=ID, description="A specific device, or")
    class_id: str | None = Field(None, pattern=ID, description="any free device of this class")
    user_id: int | None = Field(None, gt=0, le=2**63 - 1, description="Staff: the customer who uses the machine")
    purpose: Text = Field("", max_length=500)
    reference: Text | None = Field(
        None, min_length=1, max_length=100, description="a project or purchase-order reference for the invoice"
    )
    override_reason: Text | None = Field(
        None, min_length=3, max_length=500, description="Staff: book past the class rules, with this logged reason"
    )

    def request(self) -> BookingRequest:
        return BookingRequest(**self.model_dump(include=set(BookingIn.model_fields)))


class ChangeIn(Strict):
    start: Instant
    end: Instant
    device_id: str | None = Field(None, pattern=ID, description="another device of the same class; default the same")
    purpose: Text | None = Field(None, max_length=500, description="default: unchanged")
    reference: Text | None = Field(None, max_length=100, description="default: unchanged; an empty string clears it")
    override_reason: Text | None = Field(
        None, min_length=3, max_length=500, description="Staff: move past the class rules, with this logged reason"
    )

    def change(self) -> BookingChange:
        return BookingChange(**self.model_dump(include=set(ChangeIn.model_fields)))


class CancelIn(Strict):
    waive_fee_reason: Text | None = Field(None, min_length=3, max_length=500, description="Staff only")


class Problem(BaseModel):
    """A booking rule broken: which, and why, in words."""

    rule: str = Field(examples=["max_duration"], description="the rule's name in the class's booking rules")
    message: str


class SlotOut(BaseModel):
    device_id: str
    start: Stamp
    end: Stamp


class SlotTakenProblem(ProblemDetails):
    """409 when no device is free in the slot: the nearest free slots of the same length, to offer instead."""

    alternatives: list[SlotOut] = Field(description="the nearest free slots, soonest first; empty when none is near")


class RulesProblem(ProblemDetails):
    """422 when the booking breaks the class's booking rules; staff may book past them with an
    `override_reason`."""

    problems: list[Problem] = Field(min_length=1, description="every rule the booking breaks")


class QuoteAnswer(BaseModel):
    quote: pricing.Quote
    currency: str = "CNY"
    bookable: bool
    problems: list[Problem]
    unavailable: str | None = Field(None, description="why no device is free then (taken, under maintenance)")
    alternatives: list[SlotOut] = Field([], description="the nearest free slots of its length, when unavailable")


class BookingOut(BaseModel):
    id: int
    device_id: str
    class_id: str
    device_name: str
    organization_id: int
    organization_name: str
    user_id: int
    created_by: int
    start: Stamp
    end: Stamp
    status: Status
    purpose: str
    hourly_rate: Decimal
    gross: Decimal
    subsidy_program: str | None
    subsidy_share: Decimal | None
    subsidy: Decimal
    net: Decimal
    override_reason: str | None
    created_at: Stamp
    checked_in_at: Stamp | None
    finished_at: Stamp | None
    cancelled_at: Stamp | None
    cancelled_by: int | None
    late_cancellation: bool | None
    fee: Decimal
    updated_at: Stamp
    series_id: int | None = Field(description="the recurring series the booking was made in, if any")
    reference: str | None = Field(description="the customer's project or purchase-order reference")
    revision: int = Field(description="how many times the booking was changed (its calendar SEQUENCE)")
    changed_at: Stamp | None
    booked_end: Stamp | None = Field(
        description="the end that was booked, when the booking was ended early (`end` is then when it was freed)"
    )
    currency: str = "CNY"


class FreeInterval(BaseModel):
    start: Stamp
    end: Stamp


class DeviceAvailability(BaseModel):
    device_id: str
    name: str
    free: list[FreeInterval]


class Availability(BaseModel):
    class_id: str
    start: Stamp
    end: Stamp
    granularity_minutes: int
    min_booking_minutes: int
    max_booking_minutes: int
    devices: list[DeviceAvailability]


class DeviceOut(BaseModel):
    id: str
    name: str
    hourly_rate: Decimal


class ClassOut(BaseModel):
    id: str
    name: str
    name_zh: str | None
    hourly_rate: Decimal
    billing_basis: str
    metered_minimum_share: Decimal
    rules: dict[str, Any]
    devices: list[DeviceOut]
    currency: str = "CNY"


def make_router(
    pool: AsyncConnectionPool,
    auth: Authenticator,
    bookings: Bookings,
    zone: ZoneInfo,
    clock: Callable[[], datetime],
    prefix: str,
) -> APIRouter:
    router = APIRouter(tags=["booking"])
    Caller = Annotated[Principal, Depends(auth.caller)]  # roles: fabhub/policy.py
    catalogue = bookings.catalogue

    def out(row: dict[str, Any]) -> dict[str, Any]:
        return BookingOut(**row).model_dump(mode="json")

    async def nearest(plan: Plan) -> list[SlotOut]:
        return [SlotOut(device_id=s.device_id, start=s.start, end=s.end) for s in await bookings.alternatives(plan)]

    async def taken(exc: SlotTaken) -> Conflict:
        slots = await nearest(exc.plan)
        return Conflict(exc.reason, alternatives=[s.model_dump(mode="json") for s in slots])

    async def answer(found: Check) -> QuoteAnswer:
        """A price check's answer: bookable only when a device is free and no rule is broken; when none is
        free, why, with the nearest free slots (what booking it would answer with a 409)."""
        return QuoteAnswer(
            quote=found.quote,
            bookable=found.bookable,
            problems=[Problem(rule=p.rule, message=p.message) for p in found.problems],
            unavailable=found.unavailable,
            alternatives=await nearest(found.plan) if found.unavailable is not None else [],
        )

    @router.get(f"{prefix}/classes", summary="List the machine classes with rates and rules")
    async def classes(principal: Caller) -> list[ClassOut]:
        """Device classes with their rates, rules and bookable devices."""
        return [
            ClassOut(
                **{k: getattr(c, k) for k in ("id", "name", "name_zh", "hourly_rate", "billing_basis")},
                metered_minimum_share=c.metered_minimum_share,
                rules=_rules_out(c.rules),
                devices=[
                    DeviceOut(id=d, name=catalogue.devices[d].name, hourly_rate=catalogue.rate(d))
                    for d in catalogue.class_devices(c.id)
                ],
            )
            for c in catalogue.classes.values()
        ]

    @router.get(
        f"{prefix}/availability",
        response_model=Availability,
        responses={404: {"description": "unknown class or device"}},
        summary="Find free machine time",
    )
    async def available(
        principal: Caller,
        class_id: Annotated[str, Query(alias="class", pattern=ID)],
        start: Annotated[Instant, Query(alias="from")],
        end: Annotated[Instant, Query(alias="to")],
        device_id: Annotated[str | None, Query(alias="device", pattern=ID)] = None,
    ) -> Response:
        """Free time per device, cut to the class's grid, from now on; one database round trip."""
        if end <= start:
            raise Invalid("'to' must be after 'from'")
        if end - start > MAX_AVAILABILITY_WINDOW:
            raise Invalid(f"the window is at most {MAX_AVAILABILITY_WINDOW.days} days")
        cls = catalogue.classes.get(class_id)
        if cls is None:
            raise NotFound(f"no device class {class_id!r}")
        device_ids = catalogue.class_devices(class_id)
        if device_id is not None:
            if device_id not in device_ids:
                raise NotFound(f"no bookable device {device_id!r} in class {class_id}")
            device_ids = [device_id]
        async with autocommit(pool) as conn:
            free = await availability.free_slots(conn, device_ids, start, end, clock(), cls.rules, zone)
        # Thousands of intervals for a week of a large class: serialized straight, not through a model.
        body = {
            "class_id": class_id,
            "start": start.astimezone(zone),
            "end": end.astimezone(zone),
            "granularity_minutes": int(cls.rules.granularity.total_seconds() // 60),
            "min_booking_minutes": int(cls.rules.min_booking.total_seconds() // 60),
            "max_booking_minutes": int(cls.rules.max_booking.total_seconds() // 60),
            "devices": [
                {
                    "device_id": d,
                    "name": catalogue.devices[d].name,
                    "free": [{"start": s.astimezone(zone), "end": e.astimezone(zone)} for s, e in free[d]],
                }
                for d in device_ids
            ],
        }
        return Response(orjson.dumps(body), media_type="application/json")

    @router.post(f"{prefix}/quotes", responses={404: {}, 422: {}}, summary="Price a booking before making it")
    async def quote(principal: Caller, body: BookingIn) -> QuoteAnswer:
        """The subsidized price of a booking as it would be made now, and the rules it would break."""
        async with pool.connection() as conn:
            found = await bookings.check(conn, principal, body.request())
        return await answer(found)

    @router.post(
        f"{prefix}/bookings/{{booking_id}}/change/quote",
        responses={404: {}, 422: {}},
        summary="Price a change to a booking",
    )
    async def change_quote(principal: Caller, booking_id: RowId, body: ChangeIn) -> QuoteAnswer:
        """What a change would make of the booking: its new price, the rules it would break, and whether
        the new slot is free (the booking's own slot does not stand in its way)."""
        async with pool.connection() as conn:
            found = await bookings.check_change(conn, principal, booking_id, body.change())
        return await answer(found)

    @router.post(
        f"{prefix}/bookings/{{booking_id}}/change",
        response_model=BookingOut,
        responses={
            404: {},
            409: {"model": SlotTakenProblem, "description": "slot taken (alternatives attached), or too late to move"},
            422: {"model": RulesProblem},
        },
        summary="Move or change a booking",
    )
    async def change(
        principal: Caller, booking_id: RowId, body: ChangeIn, request: Request, key: IdempotencyKey = None
    ) -> Any:
        """Move a coming booking to another slot or device of its class, priced anew, or change only its
        purpose or reference. The booking keeps its id; the customer is told and gets the updated calendar
        event."""
        payload = {"id": booking_id, **body.model_dump(mode="json")}

        async def work(conn: Any) -> tuple[int, Any]:
            return 200, out(await bookings.change(conn, principal, booking_id, body.change()))

        return await _answer(principal, key, request, payload, work)

    @router.post(
        f"{prefix}/bookings",
        status_code=201,
        response_model=BookingOut,
        responses={
            409: {"model": SlotTakenProblem, "description": "slot taken; nearest free alternatives attached"},
            422: {"model": RulesProblem},
            404: {},
        },
        summary="Book a machine slot",
    )
    async def create(principal: Caller, body: BookingIn, request: Request, key: IdempotencyKey = None) -> Any:
        """Book a device, or any free device of a class. Retries with the same Idempotency-Key are safe."""
        payload = body.model_dump(mode="json")

        async def work(conn: Any) -> tuple[int, Any]:
            return 201, out(await bookings.create(conn, principal, body.request()))

        return await _answer(principal, key, request, payload, work)

    @router.get(f"{prefix}/bookings", summary="List bookings in a time window")
    async def listing(
        principal: Caller,
        page: Paging,
        start: Annotated[Instant, Query(alias="from")],
        end: Annotated[Instant, Query(alias="to")],
        organization_id: Annotated[int | None, Query(gt=0, le=2**63 - 1)] = None,
        device_id: Annotated[str | None, Query(alias="device", pattern=ID)] = None,
        class_id: Annotated[str | None, Query(alias="class", pattern=ID)] = None,
        status: Status | None = None,
    ) -> Page[BookingOut]:
        """Bookings overlapping the window, by start; customers get their own organization's only."""
        if end <= start or end - start > MAX_LIST_WINDOW:
            raise Invalid(f"'to' must be after 'from', at most {MAX_LIST_WINDOW.days} days later")
        params = bookings.filters(
            principal,
            start,
            end,
            organization_id=organization_id,
            device_id=device_id,
            class_id=class_id,
            status=status,
        )
        if params is None:
            return Page[BookingOut](items=[], total=0, next_cursor=None)
        async with pool.connection() as conn:
            return await fetch_page(conn, BOOKINGS, QUERIES.booking_rows.sql, params, page, BookingOut)

    @router.get(
        f"{prefix}/bookings/{{booking_id}}", response_model=BookingOut, responses={404: {}}, summary="Show a booking"
    )
    async def one(principal: Caller, booking_id: RowId) -> dict[str, Any]:
        async with pool.connection() as conn:
            return out(await bookings.get(conn, booking_id, principal))

    def transition(name: str, action: str, summary: str, doc: str) -> None:
        @router.post(
            f"{prefix}/bookings/{{booking_id}}/{name}",
            response_model=BookingOut,
            responses={404: {}, 409: {}},
            name=f"{name}_booking",
            summary=summary,
            description=doc,
        )
        async def move(
            principal: Caller,
            booking_id: RowId,
            request: Request,
            body: CancelIn | None = None,
            key: IdempotencyKey = None,
        ) -> Any:
            payload = {"id": booking_id, **(body.model_dump(mode="json") if body else {})}

            async def work(conn: Any) -> tuple[int, Any]:
                if action == "cancel":
                    row = await bookings.cancel(conn, principal, booking_id, body.waive_fee_reason if body else None)
                elif body is not None and body.waive_fee_reason is not None:
                    raise Invalid(f"{name} takes no body")
                else:
                    row = await getattr(bookings, action)(conn, principal, booking_id)
                return 200, out(row)

            return await _answer(principal, key, request, payload, work)

    transition(
        "cancel", "cancel", "Cancel a booking", "Cancel a confirmed booking; late cancellations carry the class's fee."
    )
    # The machine's state checks bookings in; a person only vouches for it when the machine cannot tell, and
    # that is a technician at the machine, not the customer who would avoid a no-show fee by it.
    transition(
        "check-in", "check_in", "Check a booking in", "A technician checks a booking in when the machine cannot tell."
    )
    transition(
        "finish",
        "finish",
        "End a booking early",
        "End a booking under way early: the rest of its slot is freed for others (from the class's next step). "
        "The billing basis decides the charge: `booked` and `overage` charge the booked slot, `metered` the "
        "measured running time, at least its minimum share of the booked slot.",
    )

    async def _answer(principal: Principal, key: str | None, request: Request, payload: Any, work: Any) -> Any:
        try:
            return await once(pool, principal, key, request, payload, clock(), work)
        except SlotTaken as exc:
            raise await taken(exc) from None

    return router


def _rules_out(rules: Rules) -> dict[str, Any]:
    """Durations in minutes, shares as decimals."""
    return {
        (f"{k}_minutes" if isinstance(v, timedelta) else k): (
            int(v.total_seconds() // 60) if isinstance(v, timedelta) else v
        )
        for k, v in asdict(rules).items()
    }
