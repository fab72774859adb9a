"""The batch writer: samples from many producers go through one bounded buffer and reach the database
by binary COPY, flushed when a batch is full or its oldest sample is old enough.

Exactly-once storage without paying for it on every batch: each batch is first COPYed straight into the
tables (as fast as bare COPY). A sample's identity is (device, signal, instant), held by a unique index,
so a batch that repeats stored rows (the gateway replaying after an outage) fails that COPY with a
unique violation; the writer then stages the batch and inserts only what is new. Normal ingest never
takes the slower path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from telemetry.batcher import Batcher, Item, Overflow
from telemetry.counters import count_in_transaction
from telemetry.live import payloads
from telemetry.model import Partition, Rejected, SeriesCache, partition, reject
from telemetry.sqlfiles import QUERIES

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
NUMERIC_TYPES = ("timestamptz", "text", "text", "float8", "int2")
TEXT_TYPES = ("timestamptz", "text", "text", "text", "int2")
STATE_TYPES = ("timestamptz", "text", "text", "int2")
TRANSIENT = (psycopg.OperationalError, PoolTimeout)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class WriteResult:
    written: int
    duplicates: int
    quarantined: int


@dataclass(slots=True)
class WriterStats:
    submitted: int = 0
    written: int = 0
    duplicates: int = 0
    quarantined: int = 0
    batches: int = 0
    merges: int = 0
    retries: int = 0


class BatchWriter(Batcher):
    """Owns the path from `submit()` to rows in the database; see the module docstring for why, and
    telemetry.batcher for the buffering and spooling it shares with the gateway's publisher."""

    destination = "telemetry database"
    transient = TRANSIENT
    stats: WriterStats

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        batch_size: int = 5000,
        max_age: float = 1.0,
        capacity: int = 200_000,
        known_device: Callable[[str], bool] | None = None,
        clock: Clock = utc_now,
        late_after: timedelta = timedelta(minutes=1),
        retry_max_wait: float = 30.0,
        concurrency: int = 2,
        overflow: Overflow | None = None,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            max_age=max_age,
            capacity=capacity,
            concurrency=concurrency,
            overflow=overflow,
            retry_max_wait=retry_max_wait,
        )
        self._pool = pool
        self._series = SeriesCache(known_device)
        self._clock = clock
        self._late_after = late_after
        self.stats = WriterStats()

    async def deliver(self, batch: list[Item]) -> WriteResult:
        return await self.write_or_quarantine(batch)

    async def write_or_quarantine(self, batch: list[Item]) -> WriteResult:
        """Rows the database refuses for their content are quarantined with its reason instead of
        blocking the stream; an unreachable database raises for the caller to handle (the run loop, the
        spool's replay, an ingest worker that acknowledges its messages after it returns)."""
        try:
            return await self.write_batch(batch)
        except psycopg.DatabaseError as exc:
            if isinstance(exc, psycopg.OperationalError):
                raise
            log.error("database refused a batch of %d samples: %s", len(batch), exc)
            await self._quarantine_all(batch, f"database refused: {exc}".strip()[:500])
            return WriteResult(0, 0, len(batch))

    async def write_batch(self, samples: Sequence[Item]) -> WriteResult:
        """Write one batch exactly once, whatever was written before. Used by the run loop and by
        callers replaying a spool."""
        now = self._clock()
        part = rows = partition(samples, now, self._series)
        try:
            async with self._pool.connection() as conn:
                try:
                    async with conn.transaction():
                        rows = await self._with_counts(conn, part)
                        await self._copy(conn, rows, staged=False)
                        written = len(rows.numeric) + len(rows.text) + len(rows.states)
                        await self._side_tables(conn, rows, now)
                except UniqueViolation:
                    self.stats.merges += 1
                    async with conn.transaction():
                        rows = await self._with_counts(conn, part)
                        await QUERIES.create_staging(conn)
                        await self._copy(conn, rows, staged=True)
                        written = (
                            await QUERIES.merge_staged_samples(conn)
                            + await QUERIES.merge_staged_text_samples(conn)
                            + await QUERIES.merge_staged_states(conn)
                        )
                        await self._side_tables(conn, rows, now)
        except BaseException:
            self._series.forget(rows.new_series)
            raise
        part = rows
        total = len(part.numeric) + len(part.text) + len(part.states)
        result = WriteResult(written, total - written, len(part.rejected))
        self.stats.batches += 1
        self.stats.written += result.written
        self.stats.duplicates += result.duplicates
        self.stats.quarantined += result.quarantined
        if part.rejected:
            log.warning(
                "quarantined %d samples, first: device=%s signal=%s reason=%s",
                len(part.rejected),
                part.rejected[0].device_id,
                part.rejected[0].signal,
                part.rejected[0].reason,
            )
        return result

    async def _with_counts(self, conn: AsyncConnection, part: Partition) -> Partition:
        """The batch plus the deltas of its counters, counted in this transaction (each attempt anew)."""
        if not part.counts:
            return part
        counted = await count_in_transaction(conn, part.counts)
        return counted.merged_into(part, self._series)

    async def _copy(self, conn: AsyncConnection, part: Partition, *, staged: bool) -> None:
        q = QUERIES
        targets = (
            (q.copy_staged_samples if staged else q.copy_samples, NUMERIC_TYPES, part.numeric),
            (q.copy_staged_text_samples if staged else q.copy_text_samples, TEXT_TYPES, part.text),
            (q.copy_staged_states if staged else q.copy_states, STATE_TYPES, part.states),
        )
        async with conn.cursor() as cur:
            for statement, types, rows in targets:
                if not rows:
                    continue
                async with cur.copy(statement.sql) as copy:
                    copy.set_types(types)
                    for row in rows:
                        await copy.write_row(row)

    async def _side_tables(self, conn: AsyncConnection, part: Partition, now: datetime) -> None:
        """Also tells every app process's board, on commit (telemetry.live)."""
        notices = payloads(part)
        if notices:
            await QUERIES.notify_live(conn, payloads=notices)
        if part.new_series:
            await QUERIES.register_series(
                conn, [{"device_id": d, "signal": s, "kind": k} for d, s, k in sorted(part.new_series)]
            )
        if part.rejected:
            await QUERIES.quarantine(conn, [r._asdict() for r in part.rejected])
        late_before = now - self._late_after
        late = [s.time for s in part.numeric if s.time < late_before]
        if late:
            await QUERIES.mark_late(conn, from_time=min(late), to_time=max(late))

    async def _quarantine_all(self, batch: Sequence[Item], reason: str) -> None:
        rows = [(s if type(s) is Rejected else reject(s, reason))._asdict() for s in batch]
        async with self._pool.connection() as conn, conn.transaction():
            await QUERIES.quarantine(conn, rows)
        self.stats.quarantined += len(rows)
