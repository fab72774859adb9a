"""`GET /api/v1/devices`: what the gateway knows of each device right now. Everyone signed in sees each
device's connection and state (the board's); its traffic, errors and the gateway's spool and writer are
for staff, null for customers."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from common.errors import NotFound
from common.times import Stamp
from gateway.coordinator import DeviceStatus
from gateway.service import Gateway
from telemetry.model import DEVICE_ID

STAFF_ONLY = "staff only: null for customers"
EVERYONE_SEES = ("device_id", "protocol", "connection", "since", "state")


class DeviceHealth(BaseModel):
    device_id: str
    protocol: str
    connection: str
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


def make_router(gateway: Gateway, prefix: str, staff: Callable[..., Awaitable[bool]]) -> APIRouter:
    """`staff`: a dependency that says whether the caller is staff (the composition root's)."""
    router = APIRouter(prefix=prefix, tags=["devices"])
    IsStaff = Annotated[bool, Depends(staff)]

    def health(status: DeviceStatus, full: bool) -> DeviceHealth:
        if not full:
            return DeviceHealth(**{k: getattr(status, k) for k in EVERYONE_SEES})
        fields = {k: getattr(status, k) for k in DeviceHealth.model_fields if k != "errors"}
        return DeviceHealth(**fields, errors=dict(status.errors))

    @router.get("", response_model=GatewayHealth, summary="Connection, state and errors of every device")
    async def devices(full: IsStaff) -> GatewayHealth:
        """Every device's connection and state; its counts and errors, and the spool and writer, for staff."""
        found = GatewayHealth(devices=[health(s, full) for s in gateway.statuses])
        if full:
            found.spool_depth = gateway.spool.depth
            found.spool_dropped = gateway.spool.stats.dropped
            found.writer_pending = gateway.writer.pending
        return found

    @router.get("/{device_id}", response_model=DeviceHealth, summary="One device's connection and state")
    async def device(full: IsStaff, device_id: str = Path(pattern=DEVICE_ID.pattern)) -> DeviceHealth:
        """The device's connection and state; its counts and errors for staff."""
        for status in gateway.statuses:
            if status.device_id == device_id:
                return health(status, full)
        raise NotFound(f"unknown device '{device_id}'")

    return router
