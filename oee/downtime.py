"""Down time and its reasons. A down interval is read from the telemetry state table, never stored: it
begins at a change into 'down' and lasts until the next other state, so a technician's reason is keyed by
the interval's start (the state row) and a listing joins it back on. The loss Pareto groups down time by
reason, so the center fixes the causes that cost the most time first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.multirange import Multirange
from psycopg.types.range import Range

from accounts import audit
from accounts.model import Principal
from common.errors import Forbidden, Invalid, NotFound
from common.times import Stamp
from oee.sqlfiles import QUERIES

MAX_NOTE = 500
ENTITY = "downtime_reason"


@dataclass(frozen=True, slots=True)
class ReasonCode:
    code: str
    name: str
    name_zh: str


# Down time nobody has explained yet: a row of its own in the Pareto, so its size is visible.
UNASSIGNED = ReasonCode("unassigned", "Unassigned", "未指定")


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    name: str
    name_zh: str
    note: str
    set_by: int | None
    set_at: Stamp


@dataclass(frozen=True, slots=True)
class DownInterval:
    device_id: str
    start: Stamp
    end: Stamp | None  # None: still down
    duration_s: float  # to `end`, or to now while still down
    reason: Reason | None


@dataclass(frozen=True, slots=True)
class ParetoRow:
    code: str
    name: str
    name_zh: str
    seconds: float
    intervals: int  # down intervals contributing time to this row
    share: float  # of the total down time, a fraction
    cumulative_share: float


@dataclass(frozen=True, slots=True)
class Pareto:
    planned_only: bool
    explained_outside: bool  # explained down time outside planned time counted too
    down_s: float  # seconds of down time in all, not money
    rows: list[ParetoRow]


async def reason_codes(conn: AsyncConnection) -> list[ReasonCode]:
    return [ReasonCode(*row) async for row in QUERIES.reason_codes(conn)]


async def down_intervals(
    conn: AsyncConnection,
    device_ids: Sequence[str],
    start: datetime,
    end: datetime,
    now: datetime,
    limit: int | None = None,
) -> list[DownInterval]:
    """Down intervals overlapping [start, end), newest first, each with its whole extent (one under way at
    `start` keeps its true start, the key a reason is attached to)."""
    rows = await _rows(conn, list(device_ids), start, end, now, None, limit)
    return [_interval(row, now) for row in rows]


async def set_reason(
    conn: AsyncConnection,
    principal: Principal,
    device_id: str,
    start: datetime,
    code: str,
    note: str,
    now: datetime,
) -> DownInterval:
    """Attach (or change) the reason of the down interval starting exactly at `start`; audited with the
    reason before and after. The interval must exist in the state table: a reason on a made-up time would
    be invisible in every report."""
    _check_operator(principal)
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise Invalid(f"the note is longer than {MAX_NOTE} characters")
    async with conn.transaction():
        codes = {c.code: c for c in await reason_codes(conn)}
        if code not in codes:
            raise Invalid(f"unknown reason code {code!r}", codes=sorted(codes))
        await QUERIES.lock_downtime_reason(conn, device_id=device_id, start=start)
        interval = await _interval_at(conn, device_id, start, now)
        before = await _reason(conn, device_id, start)
        known = codes[code]
        after = Reason(known.code, known.name, known.name_zh, note, principal.id, now)
        await QUERIES.put_downtime_reason(
            conn, device_id=device_id, start=start, code=code, note=note, set_by=principal.id, set_at=now
        )
        await audit.record(conn, now, principal, "set", ENTITY, _key(device_id, start), before=before, after=after)
    return replace(interval, reason=after)


async def clear_reason(
    conn: AsyncConnection, principal: Principal, device_id: str, start: datetime, now: datetime
) -> None:
    """Remove a reason; audited. Works also on a reason whose interval late data has since merged into an
    earlier one (it no longer shows anywhere), so such leftovers can be cleaned up."""
    _check_operator(principal)
    async with conn.transaction():
        await QUERIES.lock_downtime_reason(conn, device_id=device_id, start=start)
        before = await _reason(conn, device_id, start)
        if before is None:
            raise NotFound(f"no reason is set on the down interval of {device_id} starting at {_utc(start)}")
        await QUERIES.delete_downtime_reason(conn, device_id=device_id, start=start)
        await audit.record(conn, now, principal, "delete", ENTITY, _key(device_id, start), before=before)


async def pareto(
    conn: AsyncConnection,
    device_ids: Sequence[str],
    start: datetime,
    end: datetime,
    now: datetime,
    zone: ZoneInfo,
    planned_only: bool = True,
    explained_outside: bool = False,
) -> Pareto:
    """Down seconds per reason code, largest first, with each row's share and the cumulative share.

    Each interval is clipped to the window and to now. With `planned_only` (the default) it is also clipped
    to the device's planned busy time (opening hours minus planned maintenance), as the OEE report's down
    time is: a machine that faults at 19:50 and waits for the morning shift lost ten minutes of production,
    not twelve hours, and the Pareto's total then equals the OEE report's down time for the same devices and
    window. Without it, every down second in the window counts (how long machines sat broken).

    With `explained_outside`, an interval a technician gave a reason to counts whole (within the window)
    even outside planned time: a spindle that failed at night and was repaired before the morning shift
    cost the center a repair, which management wants to see under its reason; unexplained time outside
    opening hours still counts only inside planned time (nobody knows whether it mattered)."""
    ids = list(device_ids)
    if not ids:
        return Pareto(planned_only, explained_outside, 0.0, [])
    if planned_only:
        params = {"device_ids": ids, "start": start, "end": end, "zone": zone.key}
        cur = await conn.execute(QUERIES.device_planned_time.sql, params)
        planned: dict[str, Multirange] = dict(await cur.fetchall())
    else:
        planned = {d: Multirange([Range(start, end)]) for d in ids}
    ids = [d for d in ids if d in planned]
    if not ids:
        return Pareto(planned_only, explained_outside, 0.0, [])
    rows = await _rows(conn, ids, start, end, now, [planned[d] for d in ids], None)
    sums: dict[str, list[Any]] = {}
    for row in rows:
        seconds = row["window_s"] if explained_outside and row["code"] else row["inside_s"]
        if not seconds:
            continue
        code = ReasonCode(row["code"], row["name"], row["name_zh"]) if row["code"] else UNASSIGNED
        entry = sums.setdefault(code.code, [code, 0.0, 0])
        entry[1] += seconds
        entry[2] += 1
    total = sum(seconds for _, seconds, _ in sums.values())
    ordered = sorted(sums.values(), key=lambda e: (-e[1], e[0].code))
    result, running = [], 0.0
    for code, seconds, count in ordered:
        running += seconds
        result.append(ParetoRow(code.code, code.name, code.name_zh, seconds, count, seconds / total, running / total))
    return Pareto(planned_only, explained_outside, total, result)


# -- helpers -------------------------------------------------------------------------------------------------


def _check_operator(principal: Principal) -> None:
    if not principal.is_operator:
        raise Forbidden("only technicians and admins explain down time")


def _key(device_id: str, start: datetime) -> str:
    """One spelling per instant (UTC), however the caller wrote it, so the audit log can be searched."""
    return f"{device_id}@{_utc(start)}"


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


async def _rows(
    conn: AsyncConnection,
    device_ids: list[str],
    start: datetime,
    end: datetime,
    now: datetime,
    planned: list[Multirange] | None,
    limit: int | None,
) -> list[dict[str, Any]]:
    params = {"device_ids": device_ids, "planned": planned, "start": start, "end": end, "now": now, "limit": limit}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(QUERIES.down_intervals.sql, params)
        return await cur.fetchall()


def _interval(row: dict[str, Any], now: datetime) -> DownInterval:
    reason = None
    if row["code"] is not None:
        reason = Reason(row["code"], row["name"], row["name_zh"], row["note"], row["set_by"], row["set_at"])
    duration = max(((row["end"] or now) - row["start"]).total_seconds(), 0.0)
    return DownInterval(row["device_id"], row["start"], row["end"], duration, reason)


async def _interval_at(conn: AsyncConnection, device_id: str, start: datetime, now: datetime) -> DownInterval:
    """The interval starting exactly at `start`: asked for the shortest window there is, the query returns
    it only if a change into 'down' happened at that very instant."""
    rows = await _rows(conn, [device_id], start, start + timedelta(microseconds=1), now, None, None)
    for row in rows:
        if row["start"] == start:
            return _interval(row, now)
    raise NotFound(f"no down interval of {device_id} starts at {_utc(start)}")


async def _reason(conn: AsyncConnection, device_id: str, start: datetime) -> Reason | None:
    row = await QUERIES.downtime_reason(conn, device_id=device_id, start=start)
    return None if row is None else Reason(*row)
