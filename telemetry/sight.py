"""What one caller may see of the machines' detailed telemetry: values, program names, part counts and the
state timeline. Staff see everything. A customer sees a device's data only inside the spans its
organization holds the device (its bookings: the composition root asks the booking domain, telemetry
knows nothing of bookings), so it never learns what another organization's slot ran or made.

Spans are half-open, [start, end) like the bookings: a sample taken exactly at the end of one booking
belongs to the booking that starts then. Every answer is clipped to the spans: raw samples and buckets
hold only samples inside them, the timeline only the time inside them. Asking outside them is not an
error: the answer is empty, exactly as for a time without data, so it tells nothing either."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from telemetry.reader import TelemetryReader

Span = tuple[datetime, datetime]
Row = dict[str, Any]
# (device ids, start, end) -> per device the spans inside [start, end) the caller may see.
Holdings = Callable[[Sequence[str], datetime, datetime], Awaitable[Mapping[str, Sequence[Span]]]]
TICK = timedelta(microseconds=1)  # PostgreSQL's resolution: [t, t + TICK) holds the instant t only


@dataclass(frozen=True, slots=True)
class Sight:
    """Everything (`holdings` None), or per device the spans `holdings` answers."""

    holdings: Holdings | None = None

    @property
    def everything(self) -> bool:
        return self.holdings is None

    async def spans(self, device_ids: Sequence[str], start: datetime, end: datetime) -> dict[str, list[Span]]:
        """Per device, the pieces of [start, end) the caller may see: in time order, disjoint, touching
        pieces (two bookings back to back) merged into one."""
        if self.holdings is None:
            return {d: [(start, end)] for d in device_ids}
        found = await self.holdings(device_ids, start, end)
        return {d: merged(found.get(d, ()), start, end) for d in device_ids}


EVERYTHING = Sight()


def merged(spans: Sequence[Span], start: datetime, end: datetime) -> list[Span]:
    pieces: list[Span] = []
    for a, b in sorted((max(a, start), min(b, end)) for a, b in spans):
        if b <= a:
            continue
        if pieces and a <= pieces[-1][1]:
            pieces[-1] = (pieces[-1][0], max(b, pieces[-1][1]))
        else:
            pieces.append((a, b))
    return pieces


async def latest(reader: TelemetryReader, sight: Sight, device_id: str | None, now: datetime) -> dict[str, list[Row]]:
    """Every device's state for everyone (the board's). A value or program name only while the caller holds
    the device, and only one taken since the caller's span began: a program set before, in the slot of
    the organization before, stays that organization's."""
    found = await reader.latest(device_id)
    if sight.everything:
        return found
    values = found["numeric"] + found["text"]
    if not values:
        return found
    devices = sorted({r["device_id"] for r in values})
    start = min(r["time"] for r in values)
    end = max(now, *(r["time"] for r in values)) + TICK
    held = await sight.spans(devices, start, end)

    def visible(row: Row) -> bool:
        # the caller's span that holds now must hold the value's time too
        return any(a <= row["time"] < b and a <= now < b for a, b in held[row["device_id"]])

    return {
        "numeric": [r for r in found["numeric"] if visible(r)],
        "text": [r for r in found["text"] if visible(r)],
        "states": found["states"],
    }


async def raw_range(
    reader: TelemetryReader,
    sight: Sight,
    device_id: str,
    signal: str,
    start: datetime,
    end: datetime,
    limit: int,
    *,
    text: bool = False,
) -> list[Row]:
    """The first `limit` samples inside the visible pieces of [start, end)."""
    points: list[Row] = []
    for a, b in (await sight.spans([device_id], start, end))[device_id]:
        points += await reader.raw_range(device_id, signal, a, b, limit - len(points), text=text)
        if len(points) >= limit:
            break
    return points


async def bucketed_range(
    reader: TelemetryReader, sight: Sight, device_id: str, signal: str, start: datetime, end: datetime, width: timedelta
) -> list[Row]:
    """Buckets of the visible samples only; a bucket two pieces share (two bookings inside one hour) is
    aggregated over both."""
    rows: list[Row] = []
    for a, b in (await sight.spans([device_id], start, end))[device_id]:
        for row in await reader.bucketed_range(device_id, signal, a, b, width):
            if rows and rows[-1]["bucket"] == row["bucket"]:
                before = rows[-1]
                count = before["count"] + row["count"]
                rows[-1] = {
                    "bucket": row["bucket"],
                    "count": count,
                    "min": min(before["min"], row["min"]),
                    "max": max(before["max"], row["max"]),
                    "avg": (before["avg"] * before["count"] + row["avg"] * row["count"]) / count,
                    "last": row["last"],  # the later piece's
                }
            else:
                rows.append(row)
    return rows


async def timeline(reader: TelemetryReader, sight: Sight, device_id: str, start: datetime, end: datetime) -> list[Row]:
    """State intervals inside the visible pieces of [start, end) (and before now)."""
    spans: list[Row] = []
    for a, b in (await sight.spans([device_id], start, end))[device_id]:
        spans += await reader.timeline(device_id, a, b)
    return spans
