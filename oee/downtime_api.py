"""HTTP routes for down time: technicians list down intervals and explain them with a reason code; staff read
the loss Pareto. Down time is the center's own business, so customers get 403 (the reason codes excepted).
Every input is checked here (ids, bounded times, window length), and domain errors become their 4xx through
the route class, so no request ends in a 500."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Response
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from accounts.auth import Authenticator
from accounts.model import Principal
from booking.catalogue import Catalogue
from common.errors import Invalid, NotFound
from common.http import ID, Instant, Text
from common.paging import Key, Listing, Page, Paging, page_of
from common.problems import ProblemDetails
from oee import downtime
from oee.downtime import DownInterval, ParetoRow, ReasonCode

CODE = r"^[a-z][a-z0-9_]{0,39}$"
MAX_WINDOW = timedelta(days=400)
DEFAULT_WINDOW = timedelta(days=7)
# Newest first; a device id breaks the tie of two devices going down in the same instant.
DOWNTIME = Listing("downtime", (Key("start", "time", descending=True), Key("device_id", "text")), updated=None)


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=CODE, description="one of GET /downtime/codes")
    note: Text = Field("", max_length=downtime.MAX_NOTE)


class UnknownCodeProblem(ProblemDetails):
    """422 for a reason code that is not one of the list; the list comes with it."""

    codes: list[str] = Field(description="the reason codes there are")


class ParetoOut(BaseModel):
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    planned_only: bool = Field(description="clipped to planned busy time (opening hours minus maintenance)")
    explained_outside: bool = Field(description="explained down time outside planned busy time counted whole")
    down_s: float  # seconds of down time in all, not money
    reasons: list[ParetoRow]


def make_router(
    pool: AsyncConnectionPool,
    auth: Authenticator,
    catalogue: Catalogue,
    zone: ZoneInfo,
    clock: Callable[[], datetime],
    prefix: str,
) -> APIRouter:
    router = APIRouter(tags=["down time"])
    Caller = Annotated[Principal, Depends(auth.caller)]  # roles: fabhub/policy.py
    DeviceQuery = Annotated[str | None, Query(alias="device", pattern=ID)]
    ClassQuery = Annotated[str | None, Query(alias="class", pattern=ID)]
    DevicePath = Annotated[str, Path(pattern=ID)]
    StartPath = Annotated[Instant, Path(description="the interval's start, exactly as listed")]
    errors: dict[int | str, dict[str, Any]] = {422: {"description": "invalid input, with the reason"}}

    def window(start: datetime, end: datetime) -> None:
        if end <= start:
            raise Invalid("'to' must be after 'from'")
        if end - start > MAX_WINDOW:
            raise Invalid(f"ask for at most {MAX_WINDOW.days} days at a time")

    def known_device(device_id: str) -> None:
        if device_id not in catalogue.devices:
            raise NotFound(f"no device {device_id!r}")

    @router.get(f"{prefix}/downtime/codes", summary="List the down-time reason codes")
    async def list_codes(principal: Caller) -> list[ReasonCode]:
        """The reason codes a down interval can be given, 'other' last."""
        async with pool.connection() as conn:
            return await downtime.reason_codes(conn)

    @router.get(f"{prefix}/downtime", responses=errors, summary="List down time")
    async def list_downtime(
        principal: Caller,
        page: Paging,
        device_id: DeviceQuery = None,
        class_id: ClassQuery = None,
        start: Annotated[Instant | None, Query(alias="from", description="default: 7 days before 'to'")] = None,
        end: Annotated[Instant | None, Query(alias="to", description="default: now")] = None,
    ) -> Page[DownInterval]:
        """Down intervals overlapping [from, to), newest first, with their reasons. An interval under way at
        'from' keeps its true start (the key to PUT a reason on); `end` is null while the device is still
        down. Computed from the states, so it takes no `updated_since`."""
        end = end or clock()
        start = start or end - DEFAULT_WINDOW
        window(start, end)
        ids = catalogue.chosen(device_id, class_id)
        async with pool.connection() as conn:
            found = await downtime.down_intervals(conn, ids, start, end, clock())
        return page_of(DOWNTIME, found, page)

    @router.put(
        f"{prefix}/downtime/{{device_id}}/{{start}}",
        responses={
            404: {"description": "no down interval of the device starts at that instant"},
            422: {"model": UnknownCodeProblem},
        },
        summary="Explain a down interval",
    )
    async def put_reason(principal: Caller, device_id: DevicePath, start: StartPath, body: ReasonIn) -> DownInterval:
        """Attach or change the reason of the down interval starting exactly at `start`; audited."""
        known_device(device_id)
        async with pool.connection() as conn:
            return await downtime.set_reason(conn, principal, device_id, start, body.code, body.note, clock())

    @router.delete(
        f"{prefix}/downtime/{{device_id}}/{{start}}",
        status_code=204,
        responses={404: {"description": "no reason is set there"}},
        summary="Remove a down interval's reason",
    )
    async def delete_reason(principal: Caller, device_id: DevicePath, start: StartPath) -> Response:
        """Remove the reason of the down interval starting at `start`; audited."""
        known_device(device_id)
        async with pool.connection() as conn:
            await downtime.clear_reason(conn, principal, device_id, start, clock())
        return Response(status_code=204)

    @router.get(f"{prefix}/losses/pareto", responses=errors, summary="Rank the down-time losses by reason")
    async def loss_pareto(
        principal: Caller,
        start: Annotated[Instant, Query(alias="from")],
        end: Annotated[Instant, Query(alias="to")],
        device_id: DeviceQuery = None,
        class_id: ClassQuery = None,
        scope: Annotated[
            Literal["planned", "explained", "all"],
            Query(
                description="planned: only down time inside planned busy time, as in the OEE report; explained: "
                "that, and down time a technician gave a reason to outside it (a night-time fault); all: every "
                "down second"
            ),
        ] = "planned",
    ) -> ParetoOut:
        """Down time in [from, to) per reason code, largest first, unexplained time as 'unassigned', with each
        reason's share and the cumulative share. By default only planned busy time counts (see
        `oee.downtime.pareto`), so the total equals the OEE report's down time."""
        window(start, end)
        ids = catalogue.chosen(device_id, class_id)
        async with pool.connection() as conn:
            found = await downtime.pareto(
                conn,
                ids,
                start,
                end,
                clock(),
                zone,
                planned_only=scope != "all",
                explained_outside=scope == "explained",
            )
        return ParetoOut(
            start=start,
            end=end,
            planned_only=found.planned_only,
            explained_outside=found.explained_outside,
            down_s=found.down_s,
            reasons=found.rows,
        )

    return router
