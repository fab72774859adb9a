"""Rollups and retention. FabHub's own jobs, because continuous aggregates and retention policies need
the Timescale license. Each function runs inside the caller's transaction, under the caller's job lock,
and is idempotent: running it twice changes nothing the first run did not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import AsyncConnection

from telemetry.sqlfiles import QUERIES
from telemetry.timeutil import MINUTE, floor_minute


@dataclass(frozen=True, slots=True)
class RollupResult:
    start: datetime | None
    end: datetime | None
    buckets: int
    late_ranges: int
    watermark: datetime


@dataclass(frozen=True, slots=True)
class RetentionResult:
    cutoff: datetime | None
    dropped_chunks: int
    deleted_rows: int


async def roll_up(
    conn: AsyncConnection,
    now: datetime,
    *,
    lookback: timedelta = timedelta(minutes=5),
    settle: timedelta = timedelta(seconds=10),
    max_span: timedelta = timedelta(hours=6),
) -> RollupResult:
    """Bring the one-minute rollups up to `now - settle`.

    Each run recomputes from `lookback` before the watermark (samples that arrive a little late), plus
    every range the writer marked as late (replays after an outage). A long backlog is caught up
    `max_span` at a time, so one run never holds the job for long.
    """
    watermark = await QUERIES.rollup_watermark_for_update(conn)
    target = floor_minute(now - settle)
    if watermark is None:
        oldest = await QUERIES.oldest_sample_time(conn)
        start = floor_minute(oldest) if oldest is not None else target
    else:
        start = watermark - lookback
    end = min(target, start + max_span)
    buckets = 0
    if end > start:
        buckets += await QUERIES.rollup_range(conn, start=start, end=end)
    late = [(f, t) async for f, t in QUERIES.take_pending(conn)]
    for from_time, to_time in _merge_ranges(late):
        buckets += await QUERIES.rollup_range(conn, start=from_time, end=to_time)
    new_watermark = max(end, watermark) if watermark is not None else end
    await QUERIES.set_rollup_watermark(conn, watermark=new_watermark)
    return RollupResult(start if end > start else None, end if end > start else None, buckets, len(late), new_watermark)


def _merge_ranges(ranges: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Whole minutes covering the late ranges, overlapping ones joined."""
    merged: list[tuple[datetime, datetime]] = []
    for from_time, to_time in sorted((floor_minute(f), floor_minute(t) + MINUTE) for f, t in ranges):
        if merged and from_time <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], to_time))
        else:
            merged.append((from_time, to_time))
    return merged


async def apply_retention(
    conn: AsyncConnection,
    now: datetime,
    *,
    raw_age: timedelta,
    rollup_age: timedelta | None = None,
    lookback: timedelta = timedelta(minutes=5),
) -> RetentionResult:
    """Drop raw samples older than `raw_age`, but never a sample whose minute is not rolled up yet.

    With TimescaleDB whole chunks are dropped (`drop_chunks`), so rows up to one chunk interval older
    than the cutoff may stay until their chunk is entirely past it; without it, rows are deleted.
    """
    watermark = await QUERIES.rollup_watermark(conn)
    if watermark is None:
        return RetentionResult(None, 0, 0)
    cutoff = min(now - raw_age, watermark - lookback)
    oldest_late = await QUERIES.oldest_pending(conn)
    if oldest_late is not None:
        cutoff = min(cutoff, floor_minute(oldest_late))
    dropped = deleted = 0
    if await QUERIES.timescaledb_active(conn):
        dropped += await QUERIES.drop_sample_chunks(conn, cutoff=cutoff)
        dropped += await QUERIES.drop_text_sample_chunks(conn, cutoff=cutoff)
    else:
        deleted += await QUERIES.delete_samples_before(conn, cutoff=cutoff)
        deleted += await QUERIES.delete_text_samples_before(conn, cutoff=cutoff)
    deleted += await QUERIES.delete_quarantine_before(conn, cutoff=now - raw_age)
    if rollup_age is not None:
        deleted += await QUERIES.delete_rollups_before(conn, cutoff=now - rollup_age)
    return RetentionResult(cutoff, dropped, deleted)
