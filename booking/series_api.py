"""HTTP routes of recurring bookings: preview a series (every occurrence priced, with what is in its way),
book it, read it back, cancel the rest of it."""

# No `from __future__ import annotations`: FastAPI must resolve the dependency alias made in make_router.

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from accounts.auth import Authenticator
from accounts.model import Principal
from booking import series
from booking.api import BookingIn, BookingOut, Problem, Strict
from booking.bookings import Bookings
from common.http import RowId
from common.problems import ProblemDetails
from common.times import Stamp

RULE = Field(
    min_length=6,
    max_length=200,
    pattern=r"^[A-Z0-9=;,:]+$",
    description="an RRULE subset: FREQ=DAILY|WEEKLY;INTERVAL=n;BYDAY=MO,WE;COUNT=n or UNTIL=YYYYMMDD (local date)",
    examples=["FREQ=WEEKLY;BYDAY=TU,TH;COUNT=8"],
)


class SeriesIn(BookingIn):
    """The first occurrence's slot and what to book (as a single booking), and the rule that repeats it."""

    rule: str = RULE
    skip_conflicts: bool = Field(False, description="book the occurrences that can be, list the others")


class OccurrenceOut(BaseModel):
    start: Stamp
    end: Stamp
    bookable: bool
    net: Decimal
    problems: list[Problem]


class Preview(BaseModel):
    occurrences: list[OccurrenceOut]
    bookable: int
    net: Decimal = Field(description="the bookable occurrences' net price together")


class Skipped(BaseModel):
    start: Stamp
    end: Stamp
    reason: str
    problems: list[Problem]


class SeriesConflictProblem(ProblemDetails):
    """409 when occurrences of a series cannot be booked (and `skip_conflicts` is not set): each one, why."""

    conflicts: list[Skipped] = Field(min_length=1)


class SeriesOut(BaseModel):
    id: int
    rule: str
    bookings: list[BookingOut]
    skipped: list[Skipped] = []


class CancelRestIn(Strict):
    from_booking_id: int | None = Field(None, gt=0, le=2**63 - 1, description="this occurrence and the later ones")


def make_router(pool: AsyncConnectionPool, auth: Authenticator, bookings: Bookings, prefix: str) -> APIRouter:
    router = APIRouter(tags=["booking"])
    Caller = Annotated[Principal, Depends(auth.caller)]  # roles: fabhub/policy.py

    @router.post(
        f"{prefix}/bookings/series/preview", responses={404: {}, 422: {}}, summary="Preview a repeating booking"
    )
    async def preview(principal: Caller, body: SeriesIn) -> Preview:
        """Every occurrence as it would be booked now: its price, the rules it breaks, whether it is taken."""
        async with pool.connection() as conn:
            found = await series.preview(conn, bookings, principal, body.request(), body.rule)
        return Preview(
            occurrences=[OccurrenceOut.model_validate(o, from_attributes=True) for o in found],
            bookable=sum(o.bookable for o in found),
            net=sum((o.net for o in found if o.bookable), Decimal("0.00")),
        )

    @router.post(
        f"{prefix}/bookings/series",
        status_code=201,
        responses={
            404: {},
            409: {
                "model": SeriesConflictProblem,
                "description": "occurrences that cannot be booked, listed in `conflicts`",
            },
        },
        summary="Book a repeating series of slots",
    )
    async def book(principal: Caller, body: SeriesIn) -> SeriesOut:
        """All occurrences in one go, or none (409 listing the conflicts) unless `skip_conflicts`."""
        async with pool.connection() as conn, conn.transaction():
            made = await series.book(conn, bookings, principal, body.request(), body.rule, body.skip_conflicts)
        return SeriesOut.model_validate(made)

    @router.get(f"{prefix}/bookings/series/{{series_id}}", responses={404: {}}, summary="Show a booking series")
    async def get(principal: Caller, series_id: RowId) -> SeriesOut:
        async with pool.connection() as conn:
            return SeriesOut.model_validate(await series.get(conn, principal, series_id))

    @router.post(
        f"{prefix}/bookings/series/{{series_id}}/cancel",
        responses={404: {}, 409: {}},
        summary="Cancel the rest of a booking series",
    )
    async def cancel_rest(principal: Caller, series_id: RowId, body: CancelRestIn) -> list[BookingOut]:
        """Cancel the occurrences from `from_booking_id` on (all that have not started, without it), each
        under the class's cancellation rules."""
        async with pool.connection() as conn, conn.transaction():
            done = await series.cancel_rest(conn, bookings, principal, series_id, body.from_booking_id)
        return [BookingOut.model_validate(b) for b in done]

    return router
