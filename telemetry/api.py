"""HTTP routes over the telemetry reader. Every parameter is checked here, at the edge: a bad device id,
an inverted or unbounded window or an unknown bucket gets a 4xx that says what is wrong."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AwareDatetime, BaseModel

from common.errors import Invalid, NotFound
from telemetry.model import DEVICE_ID, SIGNAL
from telemetry.reader import BUCKETS, TelemetryReader

MAX_WINDOW = timedelta(days=400)
MAX_BUCKETS = 20_000
MAX_RAW_POINTS = 100_000

DeviceId = Annotated[str, Path(pattern=DEVICE_ID.pattern, description="Device id from devices.yaml")]
Signal = Annotated[str, Path(pattern=SIGNAL.pattern, description="Canonical or device signal name")]
Bucket = Literal[tuple(BUCKETS)]  # type: ignore[valid-type]


class Window(BaseModel):
    start: datetime
    end: datetime


def window(
    start: Annotated[AwareDatetime, Query(alias="from", description="Window start, ISO 8601 with offset")],
    end: Annotated[AwareDatetime, Query(alias="to", description="Window end (exclusive), with offset")],
) -> Window:
    if end <= start:
        raise Invalid("window end ('to') must be after its start ('from')")
    if end - start > MAX_WINDOW:
        raise Invalid(f"window longer than {MAX_WINDOW.days} days")
    return Window(start=start, end=end)


TimeWindow = Annotated[Window, Depends(window)]


class NumericValue(BaseModel):
    device_id: str
    signal: str
    time: datetime
    value: float
    quality: int


class TextValue(BaseModel):
    device_id: str
    signal: str
    time: datetime
    value: str
    quality: int


class StateValue(BaseModel):
    device_id: str
    time: datetime
    state: str
    quality: int


class Latest(BaseModel):
    numeric: list[NumericValue]
    text: list[TextValue]
    states: list[StateValue]


class Point(BaseModel):
    time: datetime
    value: float | str
    quality: int


class BucketRow(BaseModel):
    bucket: datetime
    count: int
    min: float
    max: float
    avg: float
    last: float


class SignalRange(BaseModel):
    device_id: str
    signal: str
    kind: str
    bucket: str | None
    points: list[Point] | None = None
    buckets: list[BucketRow] | None = None
    truncated: bool = False


class StateSpan(BaseModel):
    state: str
    start: datetime
    end: datetime


class QuarantinedSample(BaseModel):
    id: int
    received_at: datetime
    time: datetime | None
    device_id: str
    signal: str
    value: str
    reason: str


class SeriesInfo(BaseModel):
    signal: str
    kind: str


def make_router(reader: TelemetryReader, known_device: Callable[[str], bool], prefix: str) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["telemetry"])

    def device(device_id: DeviceId) -> str:
        if not known_device(device_id):
            raise NotFound(f"unknown device '{device_id}'")
        return device_id

    KnownDevice = Annotated[str, Depends(device)]

    @router.get("/latest", response_model=Latest, summary="Latest value of every signal and state")
    async def latest(
        device_id: Annotated[str | None, Query(alias="device", pattern=DEVICE_ID.pattern)] = None,
    ) -> dict:
        if device_id is not None:
            device(device_id)
        return await reader.latest(device_id)

    @router.get("/devices/{device_id}/signals", response_model=list[SeriesInfo])
    async def signals(device_id: KnownDevice) -> list[dict]:
        return await reader.series(device_id)

    @router.get(
        "/devices/{device_id}/signals/{signal}",
        response_model=SignalRange,
        response_model_exclude_none=True,
        summary="Raw samples, or min/max/avg/last per bucket of good samples",
    )
    async def signal_range(
        device_id: KnownDevice,
        signal: Signal,
        win: TimeWindow,
        bucket: Annotated[Bucket | None, Query(description="Bucket width; raw samples when absent")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_RAW_POINTS)] = 10_000,
    ) -> dict:
        kinds = {s["kind"] for s in await reader.series(device_id) if s["signal"] == signal}
        kind = "text" if kinds == {"text"} else "numeric"
        result: dict = {"device_id": device_id, "signal": signal, "kind": kind, "bucket": bucket}
        if bucket is None:
            points = await reader.raw_range(device_id, signal, win.start, win.end, limit + 1, text=kind == "text")
            result["points"] = points[:limit]
            result["truncated"] = len(points) > limit
            return result
        if kind == "text":
            raise Invalid(f"signal '{signal}' holds text; buckets need numbers")
        width = BUCKETS[bucket]
        if (win.end - win.start) / width > MAX_BUCKETS:
            raise Invalid(f"more than {MAX_BUCKETS} buckets: choose a wider bucket or window")
        result["buckets"] = await reader.bucketed_range(device_id, signal, win.start, win.end, width)
        return result

    @router.get(
        "/devices/{device_id}/states",
        response_model=list[StateSpan],
        summary="State intervals, clipped to the window",
    )
    async def states(device_id: KnownDevice, win: TimeWindow) -> list[dict]:
        return await reader.timeline(device_id, win.start, win.end)

    @router.get("/quarantine", response_model=list[QuarantinedSample], summary="Refused samples")
    async def quarantine(
        device_id: Annotated[str | None, Query(alias="device", pattern=DEVICE_ID.pattern)] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> list[dict]:
        return await reader.quarantined(device_id, limit)

    return router
