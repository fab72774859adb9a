"""The batch writer: samples from many producers go through one bounded buffer and reach the database
by binary COPY, flushed when a batch is full or its oldest sample is old enough.

Exactly-once storage without paying for it on every batch: each batch is first COPYed straight into the
tables (as fast as bare COPY). A sample's identity is (device, signal, instant), held by a unique index,
so a batch that repeats stored rows (the gateway replaying after an outage) fails that COPY with a
unique violation; the writer then stages the batch and inserts only what is new. Normal ingest never
takes the slower path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import psycopg
from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from tenacity import AsyncRetrying, retry_if_exception_type, wait_random_exponential

from telemetry.counters import count_in_transaction
from telemetry.model import Count, Partition, Rejected, Sample, SeriesCache, partition, reject
from telemetry.sqlfiles import QUERIES

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Item = Sample | Count | Rejected
WriteBatch = Callable[[list[Item]], Awaitable["WriteResult"]]
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


class Overflow(Protocol):
    """Where batches go while the database is away (the gateway's disk spool). While it holds a
    backlog, new batches queue behind it, so data reaches the database in the order it was taken."""

    @property
    def backlog(self) -> bool: ...

    async def put(self, batch: list[Item]) -> None: ...

    async def drain(self, write: WriteBatch) -> None:
        """Replay the backlog through `write` whenever there is one; runs until cancelled."""


class SampleBuffer:
    """Bounded FIFO between producers and the writer. A full buffer makes producers wait (backpressure)
    rather than dropping: losing samples is never the buffer's decision."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("buffer capacity must be at least 1")
        self.capacity = capacity
        self._items: deque[Item] = deque()
        self._oldest_at: float | None = None
        self._grown = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._items)

    async def put_many(self, samples: Sequence[Item]) -> None:
        start = 0
        while start < len(samples):
            room = self.capacity - len(self._items)
            if room <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            chunk = samples[start : start + room]
            if not self._items:
                self._oldest_at = asyncio.get_running_loop().time()
            self._items.extend(chunk)
            start += len(chunk)
            self._grown.set()

    def put_front(self, samples: Sequence[Item]) -> None:
        """Return a batch that could not be written, ahead of newer samples, keeping their order."""
        if not self._items:
            self._oldest_at = asyncio.get_running_loop().time()
        self._items.extendleft(reversed(samples))
        self._grown.set()

    async def take(self, max_items: int, max_age: float) -> list[Item]:
        """Wait for a full batch, or for the oldest sample to reach `max_age` seconds."""
        loop = asyncio.get_running_loop()
        while len(self._items) < max_items:
            if self._oldest_at is None:
                wait_for = None
            else:
                wait_for = self._oldest_at + max_age - loop.time()
                if wait_for <= 0:
                    break
            self._grown.clear()
            try:
                await asyncio.wait_for(self._grown.wait(), wait_for)
            except TimeoutError:
                break
        return self.take_now(max_items)

    def take_now(self, max_items: int) -> list[Item]:
        items = self._items
        if len(items) <= max_items:
            batch = list(items)
            items.clear()
        else:
            batch = [items.popleft() for _ in range(max_items)]
        self._oldest_at = asyncio.get_running_loop().time() if items else None
        self._room.set()
        return batch


class BatchWriter:
    """Owns the path from `submit()` to rows in the database; see the module docstring for why."""

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
        if batch_size < 1 or max_age <= 0 or concurrency < 1:
            raise ValueError("batch_size and concurrency must be >= 1 and max_age > 0")
        self._pool = pool
        self.batch_size = batch_size
        self.max_age = max_age
        self.concurrency = concurrency
        self._overflow = overflow
        self._buffer = SampleBuffer(capacity)
        self._series = SeriesCache(known_device)
        self._clock = clock
        self._late_after = late_after
        self._retry_max_wait = retry_max_wait
        self._task: asyncio.Task[None] | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.stats = WriterStats()

    @property
    def pending(self) -> int:
        """Samples accepted but not yet written."""
        return len(self._buffer) + self._in_flight

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="telemetry-writer")

    async def submit(self, samples: Sequence[Item]) -> None:
        """Queue samples (and samples refused upstream, for the quarantine); waits while the buffer is
        full."""
        self.stats.submitted += len(samples)
        if samples:
            self._idle.clear()
        await self._buffer.put_many(samples)

    async def flush(self) -> None:
        """Wait until everything submitted so far is written."""
        while self.pending:
            self._idle.clear()
            await self._idle.wait()

    async def close(self, grace: float = 30.0) -> list[Item]:
        """Flush, then stop. What could not be written in time (database away) goes to the overflow
        when there is one, else it is returned to the caller: nothing is dropped here."""
        try:
            await asyncio.wait_for(self.flush(), grace)
        except TimeoutError:
            log.warning("telemetry writer closing with %d samples unwritten", self.pending)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        left = self._buffer.take_now(len(self._buffer))
        if left and self._overflow is not None:
            await self._overflow.put(left)
            return []
        return left

    async def _run(self) -> None:
        """One loop per connection: while one batch is on the wire, the next is being prepared."""
        async with asyncio.TaskGroup() as group:
            for _ in range(self.concurrency):
                group.create_task(self._work())
            if self._overflow is not None:
                group.create_task(self._overflow.drain(self.write_or_quarantine))

    async def _work(self) -> None:
        while True:
            batch = await self._buffer.take(self.batch_size, self.max_age)
            if not batch:
                continue
            self._in_flight += len(batch)
            try:
                if self._overflow is None:
                    await self._write_retrying(batch)
                elif self._overflow.backlog:
                    await self._overflow.put(batch)
                else:
                    try:
                        await self.write_or_quarantine(batch)
                    except TRANSIENT as exc:
                        log.warning("telemetry database unavailable (%s): spooling", exc)
                        await self._overflow.put(batch)
            except asyncio.CancelledError:
                self._buffer.put_front(batch)
                raise
            finally:
                self._in_flight -= len(batch)
            if not self.pending:
                self._idle.set()

    async def _write_retrying(self, batch: list[Item]) -> None:
        """Retry while the database is away (backoff with jitter, capped)."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TRANSIENT),
            wait=wait_random_exponential(multiplier=0.2, max=self._retry_max_wait),
            before_sleep=self._log_retry,
        ):
            with attempt:
                await self.write_or_quarantine(batch)

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

    def _log_retry(self, state: object) -> None:
        self.stats.retries += 1
        outcome = getattr(state, "outcome", None)
        if self.stats.retries == 1 or self.stats.retries % 20 == 0:
            log.warning("telemetry database unavailable, retrying: %s", outcome and outcome.exception())

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
