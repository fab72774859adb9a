"""HTTP routes for the shop floor's calendar: maintenance windows, opening hours, closed days, make-up working
days and the personal iCalendar feed. Every route takes its caller through `auth.caller`, whose roles fabhub/policy.py
states (the feed is `public`: its secret URL is the credential). A DomainError becomes its status with the
error's body, in one place (the route class), so no route can leak one as a 500."""

import re
from collections.abc import Callable
from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import psycopg
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from accounts import audit
from accounts.auth import Authenticator, public
from accounts.calendar_secrets import principal_by_calendar_secret, rotate_calendar_secret
from accounts.model import Principal
from booking import calendar, hours, maintenance
from booking.catalogue import Catalogue
from booking.routing import IdempotencyKey, once
from booking.sqlfiles import QUERIES
from common.errors import Invalid, NotFound
from common.http import ID as DEVICE_ID
from common.http import Instant, RowId, Text
from common.paging import Key, Listing, Page, Paging, fetch_page
from common.problems import ListedProblems, ProblemDetails
from common.times import Stamp

MAX_WINDOW = timedelta(days=366)
MAINTENANCE = Listing("maintenance", (Key("start", "time"), Key("device_id", "text"), Key("id", "int")))
CLOSED_DAYS = Listing("closed-days", (Key("day", "date"),))
WORKING_DAYS = Listing("working-days", (Key("day", "date"),))
# Far-off dates are typing mistakes, and beyond year 9999 Python's own dates overflow.
EARLIEST = date(2000, 1, 1)
LATEST = date(2199, 12, 31)
_SECRET = re.compile(r"^[A-Za-z0-9_-]{16,128}$")

DeviceId = Annotated[str, Field(pattern=DEVICE_ID)]
W = TypeVar("W", date, datetime)
# The range of a list of days: from and to, or a year.
FromDay = Annotated[date | None, Query(alias="from", description="default: today")]
ToDay = Annotated[date | None, Query(alias="to", description="exclusive; default: a year after 'from'")]
Year = Annotated[int | None, Query(ge=EARLIEST.year, le=LATEST.year, description="instead of from and to")]


# -- models ------------------------------------------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BookingRef(BaseModel):
    id: int
    organization_id: int
    start: Stamp
    end: Stamp


class AffectedBooking(BookingRef):
    device_id: str


class BookingInTheWay(BookingRef):
    organization_name: str
    status: str


class OtherWindow(BaseModel):
    id: int
    start: Stamp
    end: Stamp
    reason: str


class MaintenanceConflictProblem(ProblemDetails):
    """409 when a maintenance window collides: with the live bookings in its way (`bookings`), or with
    another window of the device (`maintenance`)."""

    bookings: list[BookingInTheWay] | None = None
    maintenance: list[OtherWindow] | None = None


class MaintenanceIn(Strict):
    device_id: DeviceId
    start: Instant
    end: Instant
    reason: Text = Field(min_length=1, max_length=maintenance.MAX_REASON)
    cancel_bookings: bool = Field(False, description="cancel the live bookings in the way instead of refusing")


class MaintenanceOut(BaseModel):
    id: int
    device_id: str
    device_name: str
    start: Stamp
    end: Stamp
    reason: str
    created_by: int | None
    created_at: Stamp
    cancelled_at: Stamp | None
    updated_at: Stamp


class MaintenanceCreated(MaintenanceOut):
    cancelled_bookings: list[BookingRef]


class OpeningInterval(Strict):
    weekday: int = Field(description="ISO weekday, 1 = Monday ... 7 = Sunday")
    opens: str = Field(max_length=8, examples=["08:00"], description="local time HH:MM")
    closes: str = Field(max_length=8, examples=["20:00"], description="local time HH:MM, up to 24:00")


class OpeningHoursIn(Strict):
    intervals: list[OpeningInterval] = Field(max_length=hours.MAX_INTERVALS)


class OpeningHoursOut(BaseModel):
    zone: str
    intervals: list[OpeningInterval]


class OpeningHoursChanged(OpeningHoursOut):
    bookings_outside_hours: list[AffectedBooking]


class ClosedDayIn(Strict):
    reason: Text = Field(min_length=1, max_length=hours.MAX_REASON)


class ClosedDayOut(BaseModel):
    day: date
    reason: str


class ClosedDayListed(ClosedDayOut):
    updated_at: Stamp


class ClosedDayChanged(ClosedDayOut):
    bookings_outside_hours: list[AffectedBooking]


class WorkingDayIn(Strict):
    as_weekday: int = Field(ge=1, le=7, description="the ISO weekday (1 = Monday) whose opening hours the day has")
    reason: Text = Field(min_length=1, max_length=hours.MAX_REASON)


class WorkingDayOut(BaseModel):
    day: date
    as_weekday: int
    reason: str


class WorkingDayListed(WorkingDayOut):
    updated_at: Stamp


class WorkingDayChanged(WorkingDayOut):
    bookings_outside_hours: list[AffectedBooking]


class FeedUrl(BaseModel):
    url: str


# -- checks ------------------------------------------------------------------------------------------------


def _check_day(day: date, name: str) -> None:
    if not EARLIEST <= day <= LATEST:
        raise Invalid(f"{name} must lie between {EARLIEST.isoformat()} and {LATEST.isoformat()}")


def _window(start: W, end: W) -> tuple[W, W]:
    if end <= start:
        raise Invalid("'to' must be after 'from'")
    if end - start > MAX_WINDOW:
        raise Invalid(f"ask for at most {MAX_WINDOW.days} days at a time")
    return start, end


def _days(start: date | None, end: date | None, year: int | None, today: date) -> tuple[date, date]:
    """The days [from, to) a list of days covers: a calendar year, or from `from` (default today) to `to`
    (default a year later)."""
    if year is not None:
        if start is not None or end is not None:
            raise Invalid("give either year, or from and to")
        return date(year, 1, 1), date(year + 1, 1, 1)
    start = start or today
    _check_day(start, "from")
    end = end or start + timedelta(days=366)
    _check_day(end, "to")
    return _window(start, end)


# -- routes ------------------------------------------------------------------------------------------------


def make_router(
    pool: AsyncConnectionPool,
    auth: Authenticator,
    catalogue: Catalogue,
    zone: ZoneInfo,
    clock: Callable[[], datetime],
    prefix: str,
) -> APIRouter:
    router = APIRouter()
    Caller = Annotated[Principal, Depends(auth.caller)]  # roles: fabhub/policy.py
    errors: dict[int | str, dict[str, Any]] = {422: {"description": "invalid input, with the reason"}}

    # -- maintenance windows -----------------------------------------------------------------------------

    @router.get(f"{prefix}/maintenance", tags=["maintenance"], responses=errors, summary="List maintenance windows")
    async def list_maintenance(
        principal: Caller,
        page: Paging,
        device_id: Annotated[str | None, Query(pattern=DEVICE_ID)] = None,
        start: Annotated[Instant | None, Query(alias="from", description="default: now")] = None,
        end: Annotated[Instant | None, Query(alias="to", description="default: 31 days after 'from'")] = None,
    ) -> Page[MaintenanceOut]:
        """Maintenance windows overlapping [from, to), earliest first: those not cancelled, and with
        `updated_since` the cancelled ones too (a sync must see a cancellation)."""
        if device_id is not None and device_id not in catalogue.devices:
            raise NotFound(f"no device {device_id!r}")
        start = start or clock()
        start, end = _window(start, end or start + timedelta(days=31))
        params = {"device_id": device_id, "start": start, "end": end, "with_cancelled": page.updated_since is not None}
        async with pool.connection() as conn:
            return await fetch_page(conn, MAINTENANCE, QUERIES.maintenance_rows.sql, params, page, MaintenanceOut)

    @router.post(
        f"{prefix}/maintenance",
        status_code=201,
        response_model=MaintenanceCreated,
        tags=["maintenance"],
        responses=errors
        | {
            409: {
                "model": MaintenanceConflictProblem,
                "description": "another window or live bookings overlap (listed)",
            }
        },
        summary="Block a machine for maintenance",
    )
    async def create_maintenance(
        principal: Caller, body: MaintenanceIn, request: Request, key: IdempotencyKey = None
    ) -> JSONResponse:
        """Block a device for maintenance. Live bookings in the way refuse the window (409, listed) unless
        `cancel_bookings` is set: then they are cancelled without a fee, and audited."""

        async def work(conn: psycopg.AsyncConnection) -> tuple[int, Any]:
            row = await maintenance.create(
                conn, principal, body.device_id, body.start, body.end, body.reason, body.cancel_bookings, clock()
            )
            return 201, MaintenanceCreated(**row).model_dump(mode="json")

        return await once(pool, principal, key, request, body.model_dump(mode="json"), clock(), work)

    @router.delete(
        f"{prefix}/maintenance/{{window_id}}",
        tags=["maintenance"],
        responses={404: {"description": "no such window"}, 409: {"description": "cancelled already or ended"}},
        summary="Cancel or end a maintenance window",
    )
    async def cancel_maintenance(principal: Caller, window_id: RowId) -> MaintenanceOut:
        """Cancel a window that has not started; one under way ends now, keeping the time it blocked."""
        async with pool.connection() as conn:
            row = await maintenance.cancel(conn, principal, window_id, clock())
        return MaintenanceOut(**row)

    # -- opening hours and closed days -------------------------------------------------------------------

    @router.get(f"{prefix}/opening-hours", tags=["opening hours"], summary="Show the weekly opening hours")
    async def get_opening_hours(principal: Caller) -> OpeningHoursOut:
        """The weekly pattern in the center's local time zone."""
        async with pool.connection() as conn:
            pattern = await hours.opening_hours(conn)
        return OpeningHoursOut(zone=zone.key, intervals=[OpeningInterval(**asdict(o)) for o in pattern])

    @router.put(
        f"{prefix}/opening-hours",
        tags=["opening hours"],
        responses={422: {"model": ListedProblems}},
        summary="Replace the weekly opening hours",
    )
    async def put_opening_hours(principal: Caller, body: OpeningHoursIn) -> OpeningHoursChanged:
        """Replace the whole weekly pattern. Confirmed bookings ahead that it no longer covers are listed;
        they stay booked."""
        pattern = [hours.Opening(i.weekday, i.opens, i.closes) for i in body.intervals]
        async with pool.connection() as conn:
            change = await hours.replace_opening_hours(conn, principal, pattern, clock(), zone)
        return OpeningHoursChanged(
            zone=zone.key,
            intervals=[OpeningInterval(**asdict(o)) for o in change.intervals],
            bookings_outside_hours=[AffectedBooking(**b) for b in change.bookings_outside_hours],
        )

    def days_of_a_kind(path: str, listing: Listing, rows: str, model: type[BaseModel], what: str, remove: Any) -> None:
        """The list and the deletion of closed days or make-up working days, the same for both."""
        name = path.replace("-", "_")
        kinds = f"{what.removeprefix('a ')}s"

        @router.get(
            f"{prefix}/{path}",
            tags=["opening hours"],
            responses=errors,
            response_model=Page[model],  # type: ignore[valid-type]
            name=f"list_{name}",
            summary=f"List the {kinds}",
            description=f"{kinds.capitalize()} in [from, to) in the center's calendar, or in a `year`. A day "
            "removed is gone from the list (a sync reads the whole range again: a year is a few dozen rows).",
        )
        async def list_days(
            principal: Caller,
            page: Paging,
            start: FromDay = None,
            end: ToDay = None,
            year: Year = None,
        ) -> Any:
            start, end = _days(start, end, year, clock().astimezone(zone).date())
            async with pool.connection() as conn:
                return await fetch_page(conn, listing, rows, {"start": start, "end": end}, page, model)

        @router.delete(
            f"{prefix}/{path}/{{day}}",
            status_code=204,
            tags=["opening hours"],
            responses={404: {"description": f"not {what}"}},
            name=f"delete_{name}",
            summary=f"Remove {what}",
        )
        async def delete_day(principal: Caller, day: date) -> Response:
            _check_day(day, "day")
            async with pool.connection() as conn:
                await remove(conn, principal, day, clock())
            return Response(status_code=204)

    days_of_a_kind(
        "closed-days", CLOSED_DAYS, QUERIES.closed_days.sql, ClosedDayListed, "a closed day", hours.delete_closed_day
    )
    days_of_a_kind(
        "working-days",
        WORKING_DAYS,
        QUERIES.working_days.sql,
        WorkingDayListed,
        "a make-up working day",
        hours.delete_working_day,
    )

    @router.put(
        f"{prefix}/closed-days/{{day}}", tags=["opening hours"], responses=errors, summary="Close the center on a day"
    )
    async def put_closed_day(principal: Caller, day: date, body: ClosedDayIn) -> ClosedDayChanged:
        """Close the center on a day (or change the reason). Confirmed bookings on it are listed; they stay
        booked."""
        _check_day(day, "day")
        async with pool.connection() as conn:
            row = await hours.put_closed_day(conn, principal, day, body.reason, clock(), zone)
        return ClosedDayChanged(**row)

    @router.put(
        f"{prefix}/working-days/{{day}}",
        tags=["opening hours"],
        responses=errors,
        summary="Open the center on a weekend day",
    )
    async def put_working_day(principal: Caller, day: date, body: WorkingDayIn) -> WorkingDayChanged:
        """Open the center on a Saturday or Sunday with the hours of `as_weekday` (a make-up working day, 调休),
        or change them or the reason. Confirmed bookings on it that the hours leave out are listed; they stay
        booked. A closed day cannot be one: remove it first."""
        _check_day(day, "day")
        async with pool.connection() as conn:
            row = await hours.put_working_day(conn, principal, day, body.as_weekday, body.reason, clock(), zone)
        return WorkingDayChanged(**row)

    # -- calendar feed -----------------------------------------------------------------------------------

    @router.post(f"{prefix}/calendar/feed", tags=["calendar"], summary="Get a new calendar feed address")
    async def new_calendar_feed(principal: Caller, request: Request) -> FeedUrl:
        """A new secret feed URL for the caller's calendar app; the previous URL stops working."""
        async with pool.connection() as conn, conn.transaction():
            secret = await rotate_calendar_secret(conn, principal.id)
            await audit.record(conn, clock(), principal, "rotate_calendar_secret", "app_user", principal.id)
        return FeedUrl(url=str(request.url_for("calendar_feed", secret=secret)))

    @router.get(
        f"{prefix}/calendar/{{secret}}.ics",
        name="calendar_feed",
        tags=["calendar"],
        dependencies=[Depends(public)],
        response_class=Response,
        responses={200: {"content": {"text/calendar": {}}}, 404: {"description": "unknown feed"}},
        summary="Read a calendar feed (iCalendar)",
    )
    async def calendar_feed(secret: str) -> Response:
        """The bookings the feed's owner may see, as iCalendar. The URL is the credential: keep it private."""
        if _SECRET.match(secret) is None:
            raise NotFound("unknown calendar feed")
        async with pool.connection() as conn:
            owner = await principal_by_calendar_secret(conn, secret)
            if owner is None:
                raise NotFound("unknown calendar feed")
            body = await calendar.feed(conn, owner, clock(), zone)
        return Response(
            body,
            media_type="text/calendar; charset=utf-8",
            headers={"Cache-Control": "private, no-store", "Content-Disposition": 'inline; filename="fabhub.ics"'},
        )

    return router
