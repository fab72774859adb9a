"""The raw-derived parts of a completed booking's machine report, computed from the telemetry inside the slot
when the booking's results are frozen (oee.results calls `store` in the same transaction): raw-sample
retention drops the state rows, counter deltas and texts later, and the report must still say what it said.

- timeline: the state spans inside the slot (a repeated state continues its span), clipped to the slot;
- cycles: per counter sample while running, its parts and each one's cycle time, the time since the sample
  before it in the same running span spread over its parts (a delta of 2 after 8 min is two 4-min cycles). The
  first sample of a running span has no cycle: the time before it includes the start-up, not a cycle;
- programs: per program name, the running time and parts while it was the active program, and how often it
  was started;
- alarms: each alarm text raised (on at the slot's start or raised inside it) and when it cleared;
- downtime: the down intervals overlapping the slot, whole (their start is the key a technician's reason is
  attached to, oee.downtime), with the seconds inside the slot.

Times in the stored JSON are ISO 8601 UTC."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from oee import downtime
from oee.sqlfiles import QUERIES


@dataclass(frozen=True, slots=True)
class Span:
    state: str
    start: datetime
    end: datetime


def timeline(rows: Sequence[tuple[datetime, str]], start: datetime, end: datetime) -> list[Span]:
    """State rows (time order, the first at or before `start`) as spans clipped to [start, end)."""
    spans: list[Span] = []
    for i, (at, state) in enumerate(rows):
        until = rows[i + 1][0] if i + 1 < len(rows) else end
        a, b = max(at, start), min(until, end)
        if b <= a:
            continue
        if spans and spans[-1].state == state and spans[-1].end == a:
            spans[-1] = Span(state, spans[-1].start, b)
        else:
            spans.append(Span(state, a, b))
    return spans


def cycles(parts: Sequence[tuple[datetime, float]], spans: Sequence[Span]) -> list[dict[str, Any]]:
    """Cycle times from the counter's samples and the running spans (see the module's docstring)."""
    running = [s for s in spans if s.state == "running"]
    starts = [s.start for s in running]

    def span_of(at: datetime) -> int | None:
        i = bisect.bisect_right(starts, at) - 1
        return i if i >= 0 and at <= running[i].end else None

    out: list[dict[str, Any]] = []
    previous: tuple[datetime, int | None] | None = None
    for at, value in parts:
        span = span_of(at)
        if value > 0 and span is not None and previous is not None and previous[1] == span:
            out.append({"at": at, "seconds": (at - previous[0]).total_seconds() / value, "parts": value})
        if value > 0:
            previous = (at, span)
    return out


def _changes(rows: Sequence[tuple[datetime, str]]) -> list[tuple[str, datetime, datetime | None]]:
    """Text rows as (value, from, until) with repeats merged; the last one's until is None (still on)."""
    merged: list[tuple[str, datetime]] = []
    for at, value in rows:
        if not merged or merged[-1][0] != value:
            merged.append((value, at))
    return [(v, at, merged[i + 1][1] if i + 1 < len(merged) else None) for i, (v, at) in enumerate(merged)]


def _overlap(a: datetime, b: datetime, spans: Sequence[Span]) -> float:
    return sum(max(0.0, (min(b, s.end) - max(a, s.start)).total_seconds()) for s in spans)


def programs(
    rows: Sequence[tuple[datetime, str]],
    parts: Sequence[tuple[datetime, float]],
    spans: Sequence[Span],
    start: datetime,
    end: datetime,
) -> list[dict[str, Any]]:
    """Per program name (in the order first run): running seconds, parts and starts inside the slot."""
    running = [s for s in spans if s.state == "running"]
    found: dict[str, dict[str, Any]] = {}
    for name, since, until in _changes(rows):
        a, b = max(since, start), min(until or end, end)
        if not name.strip() or b <= a:
            continue
        entry = found.setdefault(name, {"name": name, "running_s": 0.0, "parts": 0.0, "runs": 0})
        entry["running_s"] += _overlap(a, b, running)
        entry["parts"] += sum(v for at, v in parts if a <= at < b)
        entry["runs"] += 1
    return list(found.values())


def alarms(rows: Sequence[tuple[datetime, str]], start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Alarms on at the start or raised inside [start, end), with when each cleared (None: still on at the
    end of the data). An empty text is no alarm."""
    out = []
    for text, at, until in _changes(rows):
        if text.strip() and at < end and (until is None or until > start):
            out.append({"at": at, "text": text, "until": until})
    return out


async def capture(conn: AsyncConnection, booking: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The snapshot of a booking (id, device_id, start, end) from the telemetry, as JSON-ready values."""
    device_id, start, end = booking["device_id"], booking["start"], booking["end"]
    window = {"device_id": device_id, "start": start, "end": end}
    states = [(r[0], r[1]) async for r in QUERIES.report_states(conn, **window)]
    parts = [(r[0], float(r[1])) async for r in QUERIES.report_parts(conn, **window)]
    texts: dict[str, list[tuple[datetime, str]]] = {"program": [], "alarm": []}
    async for signal, at, value in QUERIES.report_texts(conn, **window):
        texts[signal].append((at, value))
    spans = timeline(states, start, min(end, now))
    down = await downtime.down_intervals(conn, [device_id], start, end, now)
    return {
        "timeline": [{"state": s.state, "start": s.start, "end": s.end} for s in spans],
        "cycles": cycles(parts, spans),
        "programs": programs(texts["program"], parts, spans, start, end),
        "alarms": alarms(texts["alarm"], start, end),
        "downtime": [
            {
                "start": d.start,
                "end": d.end,
                "seconds": max(0.0, (min(d.end or now, end) - max(d.start, start)).total_seconds()),
            }
            for d in sorted(down, key=lambda d: d.start)
        ],
    }


async def store(conn: AsyncConnection, booking: dict[str, Any], now: datetime) -> None:
    """Captures and stores the booking's snapshot (the caller deleted any earlier one)."""
    found = await capture(conn, booking, now)
    await QUERIES.store_booking_report(
        conn, booking_id=booking["id"], computed_at=now, **{k: Jsonb(_json(v)) for k, v in found.items()}
    )


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value
