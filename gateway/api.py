"""`GET /api/v1/devices`: what the gateway knows of each device right now."""

from datetime import datetime

from fastapi import APIRouter, Path
from pydantic import BaseModel

from common.errors import NotFound
from gateway.coordinator import DeviceStatus
from gateway.service import Gateway
from telemetry.model import DEVICE_ID


class DeviceHealth(BaseModel):
    device_id: str
    protocol: str
    connection: str
    since: datetime | None
    last_sample: datetime | None
    state: str | None
    samples: int
    quarantined: int
    reconnects: int
    last_error: str | None
    errors: dict[str, int]


class GatewayHealth(BaseModel):
    devices: list[DeviceHealth]
    spool_depth: int
    spool_dropped: int
    writer_pending: int


def make_router(gateway: Gateway, prefix: str) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["devices"])

    def health(status: DeviceStatus) -> DeviceHealth:
        fields = {k: getattr(status, k) for k in DeviceHealth.model_fields if k != "errors"}
        return DeviceHealth(**fields, errors=dict(status.errors))

    @router.get("", response_model=GatewayHealth, summary="Connection, state and errors of every device")
    async def devices() -> GatewayHealth:
        return GatewayHealth(
            devices=[health(s) for s in gateway.statuses],
            spool_depth=gateway.spool.depth,
            spool_dropped=gateway.spool.stats.dropped,
            writer_pending=gateway.writer.pending,
        )

    @router.get("/{device_id}", response_model=DeviceHealth, summary="One device's connection and state")
    async def device(device_id: str = Path(pattern=DEVICE_ID.pattern)) -> DeviceHealth:
        for status in gateway.statuses:
            if status.device_id == device_id:
                return health(status)
        raise NotFound(f"unknown device '{device_id}'")

    return router
