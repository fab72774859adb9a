"""HTTP routes for OEE and utilisation. Staff see every device, or one customer's view (its bookings as the
planned time); a customer sees only its own view. Shares are fractions (0.8029 is 80.29 %), times seconds;
a figure that is undefined (no planned time, no parts, no ideal cycle time) is null, never a made-up 0.
A customer's completed bookings are read from their frozen results (oee.results), which only an audited
recompute by finance or an admin changes."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
import pandas as pd
from fastapi import APIRouter, Depends, Path, Query, Response
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from accounts.auth import Authenticator
from accounts.model import Principal
from booking.catalogue import Catalogue
from common.errors import Invalid, NotFound
from common.http import ID, Instant, RowId, Text
from oee import metrics, results
from oee.service import OeeService, group
from oee.sqlfiles import QUERIES

MAX_WINDOW = timedelta(days=400)
Group = Literal["day", "week", "month", "total"]
TIME_COLUMNS = [f"{name}_s" for name in metrics.TIMES]
FIGURES = ["availability", "performance", "quality", "oee", "utilisation", "actual_utilisation"]
LOSSES = ["loss_down_s", "loss_setup_s", "loss_micro_stop_s", "loss_reduced_speed_s", "loss_scrap_s"]
UTILISATION = ["planned_s", "booked_s", "running_s", "utilisation", "actual_utilisation"]


class RecomputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Text = Field(min_length=3, max_length=500, description="why, for the audit log")


@dataclass
class Filters:
    """The query both reports take."""

    start: Annotated[Instant, Query(alias="from")]
    end: Annotated[Instant, Query(alias="to")]
    device_id: Annotated[str | None, Query(alias="device", pattern=ID)] = None
    class_id: Annotated[str | None, Query(alias="class", pattern=ID)] = None
    organization_id: Annotated[int | None, Query(gt=0, le=2**63 - 1, description="a customer's view")] = None
    by: Annotated[Group, Query(alias="group")] = "day"


def make_router(
    pool: AsyncConnectionPool,
    auth: Authenticator,
    service: OeeService,
    catalogue: Catalogue,
    clock: Callable[[], datetime],
    prefix: str,
) -> APIRouter:
    router = APIRouter(tags=["oee"])
    Caller = Annotated[Principal, Depends(auth.caller)]  # roles: fabhub/policy.py

    async def table(principal: Principal, query: Filters) -> pd.DataFrame:
        start, end, device_id, class_id = query.start, query.end, query.device_id, query.class_id
        organization_id, by = query.organization_id, query.by
        if end <= start or end - start > MAX_WINDOW:
            raise Invalid(f"'to' must be after 'from', at most {MAX_WINDOW.days} days later")
        if not principal.is_staff:
            if organization_id not in (None, principal.organization_id):
                raise NotFound(f"no organization {organization_id}")
            organization_id = principal.organization_id
        devices = [d for d in catalogue.devices.values() if class_id is None or d.class_id == class_id]
        if class_id is not None and class_id not in catalogue.classes:
            raise NotFound(f"no device class {class_id!r}")
        if device_id is not None:
            devices = [d for d in devices if d.id == device_id]
            if not devices:
                raise NotFound(f"no device {device_id!r}" + (f" in class {class_id}" if class_id else ""))
        async with pool.connection() as conn:
            daily = await service.daily(conn, [d.id for d in devices], start, end, organization_id)
        return group(daily, by)

    @router.get(f"{prefix}/oee", summary="Report OEE per machine and period")
    async def oee(principal: Caller, query: Annotated[Filters, Depends()]) -> Response:
        """Availability, performance, quality and OEE per device and period, with the times behind them and
        the six big losses. `performance_suspect` flags a performance above 1 (the ideal cycle time is wrong)."""
        found = await table(principal, query)
        columns = ["device_id", "period", *TIME_COLUMNS, "parts_total", "parts_good", "ideal_cycle_s"]
        return _json(found, [*columns, *FIGURES, "performance_suspect", *LOSSES])

    @router.get(f"{prefix}/utilisation", summary="Report utilisation per machine and period")
    async def utilisation(principal: Caller, query: Annotated[Filters, Depends()]) -> Response:
        """Booked and running time against the planned (available) time, per device and period."""
        found = await table(principal, query)
        return _json(found, ["device_id", "period", *UTILISATION])

    @router.get(f"{prefix}/oee/bookings/{{booking_id}}", responses={404: {}}, summary="Show a booking's OEE")
    async def booking_oee(principal: Caller, booking_id: Annotated[int, Path(gt=0, le=2**63 - 1)]) -> Response:
        """One booking's OEE: its slot as the planned time (cut to now while it runs; frozen once it is
        completed and its data is in). Another organization's booking is not found."""
        async with pool.connection() as conn:
            span = await QUERIES.booking_span(conn, id=booking_id)
            if span is None or not principal.sees_organization(span[1]):
                raise NotFound(f"no booking {booking_id}")
            device_id, organization_id, start, end, _ = span
            daily = await service.daily(conn, [device_id], start, end, organization_id)
        found = group(daily, "total")
        columns = ["device_id", *TIME_COLUMNS, "parts_total", "parts_good", "ideal_cycle_s"]
        return _json(found.assign(booking_id=booking_id), ["booking_id", *columns, *FIGURES, *LOSSES])

    @router.post(
        f"{prefix}/oee/bookings/{{booking_id}}/recompute",
        responses={404: {}, 409: {}, 422: {}},
        summary="Recompute a completed booking's results",
    )
    async def recompute_booking(principal: Caller, booking_id: RowId, body: RecomputeIn) -> dict[str, Any]:
        """Compute a completed booking's frozen results (its usage and per-day OEE) again from the telemetry,
        say after late data arrived; audited with the reason and the usage before and after. Answers the new
        usage. 409 while an issued invoice bills the booking (credit it first), once raw-data retention has
        dropped the booking's samples, or before its overrun is over."""
        async with pool.connection() as conn:
            return await results.recompute(conn, service, booking_id, principal, body.reason, clock())

    return router


def _json(found: pd.DataFrame, columns: list[str]) -> Response:
    """NaN (undefined) as null; the period of a `total` row is null too. Dates as ISO 8601."""
    rows = found.reindex(columns=columns).replace("", None)
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    return Response(orjson.dumps(records, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")
