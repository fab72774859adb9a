"""`GET /api/v1/devices`: what the gateways last reported of each device, read from the device health table
by any app process (gateway/health.py). Everyone signed in sees each device's connection and state (the
board's); its traffic, errors and the gateways' spools and writers are for staff, null for customers."""

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from common.errors import NotFound
from common.times import Stamp
from gateway.health import UNKNOWN, HealthTable
from telemetry.model import DEVICE_ID

STAFF_ONLY = "staff only: null for customers"
EVERYONE_SEES = ("device_id", "protocol", "connection", "since", "state")


class DeviceHealth(BaseModel):
    device_id: str
    protocol: str
    connection: Annotated[
        str, Field(description="connecting, online or offline; unknown when no gateway reports it now")
    ]
    since: Stamp | None
    state: str | None
    last_sample: Annotated[Stamp | None, Field(description=STAFF_ONLY)] = None
    samples: Annotated[int | None, Field(description=STAFF_ONLY)] = None
    quarantined: Annotated[int | None, Field(description=STAFF_ONLY)] = None
    reconnects: Annotated[int | None, Field(description=STAFF_ONLY)] = None
    last_error: Annotated[str | None, Field(description=STAFF_ONLY)] = None
    errors: Annotated[dict[str, int] | None, Field(description=STAFF_ONLY)] = None


class GatewayHealth(BaseModel):
    devices: list[DeviceHealth]
    spool_depth: Annotated[int | None, Field(description=STAFF_ONLY)] = None
    spool_dropped: Annotated[int | None, Field(description=STAFF_ONLY)] = None
    writer_pending: Annotated[int | None, Field(description=STAFF_ONLY)] = None


def make_router(
    health: HealthTable,
    catalogue: Mapping[str, str],
    prefix: str,
    staff: Callable[..., Awaitable[bool]],
    clock: Callable[[], datetime],
) -> APIRouter:
    """`catalogue`: the protocol of each device in the catalogue's order; `staff`: a dependency that says
    whether the caller is staff (the composition root's)."""
    router = APIRouter(prefix=prefix, tags=["devices"])
    IsStaff = Annotated[bool, Depends(staff)]

    def answer(device_id: str, row: dict[str, Any] | None, full: bool) -> DeviceHealth:
        if row is None:  # no gateway has reported it
            row = {"device_id": device_id, "protocol": catalogue[device_id], "connection": UNKNOWN}
            row |= {"since": None, "state": None}
        if not full:
            return DeviceHealth(**{k: row[k] for k in EVERYONE_SEES})
        return DeviceHealth(**row)

    @router.get("", response_model=GatewayHealth, summary="Connection, state and errors of every device")
    async def devices(full: IsStaff) -> GatewayHealth:
        """Every device's connection and state; its counts and errors, and the spool and writer, for staff."""
        now = clock()
        rows = await health.devices(list(catalogue), now)
        found = GatewayHealth(devices=[answer(d, rows.get(d), full) for d in catalogue])
        if full:
            figures = await health.figures(now)
            found.spool_depth = figures.spool_depth
            found.spool_dropped = figures.spool_dropped
            found.writer_pending = figures.writer_pending
        return found

    @router.get("/{device_id}", response_model=DeviceHealth, summary="One device's connection and state")
    async def device(full: IsStaff, device_id: str = Path(pattern=DEVICE_ID.pattern)) -> DeviceHealth:
        """The device's connection and state; its counts and errors for staff."""
        if device_id not in catalogue:
            raise NotFound(f"unknown device '{device_id}'")
        rows = await health.devices([device_id], clock())
        return answer(device_id, rows.get(device_id), full)

    return router
