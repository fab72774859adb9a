"""HTTP routes over the telemetry reader. Every parameter is checked here, at the edge: a bad device id,
an inverted or unbounded window or an unknown bucket gets a 4xx that says what is wrong. Every answer is
cut to what the caller may see (telemetry.sight): staff everything, a customer a device's values, program
names, parts and state timeline only inside its organization's bookings, half-open [start, end); outside
them the answer is empty (200), as for a time without data."""

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AwareDatetime, BaseModel

from common.errors import Invalid, NotFound
from common.paging import Page, Paging
from common.times import Stamp
from telemetry import sight as seen
from telemetry.model import DEVICE_ID, SIGNAL
from telemetry.reader import BUCKETS, TelemetryReader
from telemetry.sight import Sight

MAX_WINDOW = timedelta(days=400)
MAX_BUCKETS = 20_000
MAX_RAW_POINTS = 100_000

DeviceId = Annotated[str, Path(pattern=DEVICE_ID.pattern, description="Device id from devices.yaml")]
Signal = Annotated[str, Path(pattern=SIGNAL.pattern, description="Canonical or device signal name")]
if TYPE_CHECKING:  # a Literal built at run time is no type to mypy: it sees the bucket as a str
    Bucket = str
else:
    Bucket = Literal[tuple(BUCKETS)]


class Window(BaseModel):
    start: Stamp
    end: Stamp


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
    time: Stamp
    value: float
    quality: int


class TextValue(BaseModel):
    device_id: str
    signal: str
    time: Stamp
    value: str
    quality: int


class StateValue(BaseModel):
    device_id: str
    time: Stamp
    state: str
    quality: int


class Latest(BaseModel):
    numeric: list[NumericValue]
    text: list[TextValue]
    states: list[StateValue]


class Point(BaseModel):
    time: Stamp
    value: float | str
    quality: int


class BucketRow(BaseModel):
    bucket: Stamp
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
    start: Stamp
    end: Stamp


class QuarantinedSample(BaseModel):
    id: int
    received_at: Stamp
    time: Stamp | None
    device_id: str
    signal: str
    value: str
    reason: str


class SeriesInfo(BaseModel):
    signal: str
    kind: str


def make_router(
    reader: TelemetryReader,
    known_device: Callable[[str], bool],
    prefix: str,
    sight: Callable[..., Awaitable[Sight]],
    clock: Callable[[], datetime],
) -> APIRouter:
    """`sight`: a dependency that answers what the calling user may see (the composition root's)."""
    router = APIRouter(prefix=prefix, tags=["telemetry"])
    Seen = Annotated[Sight, Depends(sight)]

    def device(device_id: DeviceId) -> str:
        if not known_device(device_id):
            raise NotFound(f"unknown device '{device_id}'")
        return device_id

    KnownDevice = Annotated[str, Depends(device)]

    @router.get("/latest", response_model=Latest, summary="Latest value of every signal and state")
    async def latest(
        viewer: Seen,
        device_id: Annotated[str | None, Query(alias="device", pattern=DEVICE_ID.pattern)] = None,
    ) -> dict:
        """Every device's latest state, for everyone. Latest values and texts (program names): staff all; a
        customer those of a device its organization's booking holds right now, taken since that booking
        began (the lists leave the other devices out)."""
        if device_id is not None:
            device(device_id)
        return await seen.latest(reader, viewer, device_id, clock())

    @router.get("/devices/{device_id}/signals", response_model=list[SeriesInfo], summary="List a machine's signals")
    async def signals(device_id: KnownDevice) -> list[dict]:
        return await reader.series(device_id)

    @router.get(
        "/devices/{device_id}/signals/{signal}",
        response_model=SignalRange,
        response_model_exclude_none=True,
        summary="Raw samples, or min/max/avg/last per bucket of good samples",
    )
    async def signal_range(
        viewer: Seen,
        device_id: KnownDevice,
        signal: Signal,
        win: TimeWindow,
        bucket: Annotated[Bucket | None, Query(description="Bucket width; raw samples when absent")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_RAW_POINTS)] = 10_000,
    ) -> dict:
        """Samples in [from, to). A customer gets only those inside its organization's bookings of the
        device (a bucket aggregates those only); outside them, no points and no buckets."""
        kinds = {s["kind"] for s in await reader.series(device_id) if s["signal"] == signal}
        kind = "text" if kinds == {"text"} else "numeric"
        result: dict = {"device_id": device_id, "signal": signal, "kind": kind, "bucket": bucket}
        if bucket is None:
            text = kind == "text"
            points = await seen.raw_range(reader, viewer, device_id, signal, win.start, win.end, limit + 1, text=text)
            result["points"] = points[:limit]
            result["truncated"] = len(points) > limit
            return result
        if kind == "text":
            raise Invalid(f"signal '{signal}' holds text; buckets need numbers")
        width = BUCKETS[bucket]
        if (win.end - win.start) / width > MAX_BUCKETS:
            raise Invalid(f"more than {MAX_BUCKETS} buckets: choose a wider bucket or window")
        result["buckets"] = await seen.bucketed_range(reader, viewer, device_id, signal, win.start, win.end, width)
        return result

    @router.get(
        "/devices/{device_id}/states",
        response_model=list[StateSpan],
        summary="State intervals, clipped to the window",
    )
    async def states(viewer: Seen, device_id: KnownDevice, win: TimeWindow) -> list[dict]:
        """The state intervals in [from, to) and before now. A customer gets those inside its organization's
        bookings of the device, cut at their edges; the current state of every device is in /latest."""
        return await seen.timeline(reader, viewer, device_id, win.start, win.end)

    @router.get("/quarantine", summary="Refused samples (staff)")
    async def quarantine(
        page: Paging, device_id: Annotated[str | None, Query(alias="device", pattern=DEVICE_ID.pattern)] = None
    ) -> Page[QuarantinedSample]:
        """Newest first, with the reason each sample was refused."""
        return await reader.quarantined(device_id, page, QuarantinedSample)

    return router
