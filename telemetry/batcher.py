"""The buffering every sink of samples shares: producers submit into one bounded buffer, loops take batches
from it (full, or their oldest item old enough) and deliver them; while the destination is away, batches go
to an overflow (the gateway's disk spool) and are replayed from it in order.

Two sinks deliver this way: telemetry's BatchWriter to the database, and the gateway's publisher
(gateway.publish) to the central broker. They differ only in delivering a batch and in which errors mean
"away"; buffering, backpressure, spooling, replay and shutdown are this one class, so the two cannot drift.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from tenacity import AsyncRetrying, retry_if_exception_type, wait_random_exponential

from telemetry.model import Count, Rejected, Sample

log = logging.getLogger(__name__)

Item = Sample | Count | Rejected
Deliver = Callable[[list[Item]], Awaitable[object]]


class Overflow(Protocol):
    """Where batches go while the destination is away (the gateway's disk spool). While it holds a
    backlog, new batches queue behind it, so data arrives in the order it was taken."""

    @property
    def backlog(self) -> bool: ...

    async def put(self, batch: list[Item]) -> None: ...

    async def drain(self, write: Deliver) -> None:
        """Replay the backlog through `write` whenever there is one; runs until cancelled."""


class Counting(Protocol):
    submitted: int
    retries: int


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


class Batcher:
    """Subclasses say where a batch goes (`deliver`) and which errors mean the destination is away
    (`transient`); see the module docstring."""

    destination = "destination"  # for the log
    transient: tuple[type[BaseException], ...] = ()
    stats: Counting

    def __init__(
        self,
        *,
        batch_size: int,
        max_age: float,
        capacity: int,
        concurrency: int = 1,
        overflow: Overflow | None = None,
        retry_max_wait: float = 30.0,
    ) -> None:
        if batch_size < 1 or max_age <= 0 or concurrency < 1:
            raise ValueError("batch_size and concurrency must be >= 1 and max_age > 0")
        self.batch_size = batch_size
        self.max_age = max_age
        self.concurrency = concurrency
        self._overflow = overflow
        self._retry_max_wait = retry_max_wait
        self._buffer = SampleBuffer(capacity)
        self._task: asyncio.Task[None] | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def deliver(self, batch: list[Item]) -> object:
        """Deliver one batch; raises one of `transient` while the destination is away."""
        raise NotImplementedError

    @property
    def pending(self) -> int:
        """Items accepted but not yet delivered."""
        return len(self._buffer) + self._in_flight

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=type(self).__name__)

    async def submit(self, samples: Sequence[Item]) -> None:
        """Queue samples (and samples refused upstream, for the quarantine); waits while the buffer is
        full."""
        self.stats.submitted += len(samples)
        if samples:
            self._idle.clear()
        await self._buffer.put_many(samples)

    async def flush(self) -> None:
        """Wait until everything submitted so far is delivered."""
        while self.pending:
            self._idle.clear()
            await self._idle.wait()

    async def close(self, grace: float = 30.0) -> list[Item]:
        """Flush, then stop. What could not be delivered in time goes to the overflow when there is one,
        else it is returned to the caller: nothing is dropped here."""
        try:
            await asyncio.wait_for(self.flush(), grace)
        except TimeoutError:
            log.warning("closing with %d items not yet in the %s", self.pending, self.destination)
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
        """`concurrency` loops: while one batch is on the wire, the next is being prepared."""
        async with asyncio.TaskGroup() as group:
            for _ in range(self.concurrency):
                group.create_task(self._work())
            if self._overflow is not None:
                group.create_task(self._overflow.drain(self.deliver))

    async def _work(self) -> None:
        while True:
            batch = await self._buffer.take(self.batch_size, self.max_age)
            if not batch:
                continue
            self._in_flight += len(batch)
            try:
                if self._overflow is None:
                    await self.deliver_retrying(batch)
                elif self._overflow.backlog:
                    await self._overflow.put(batch)
                else:
                    try:
                        await self.deliver(batch)
                    except self.transient as exc:
                        log.warning("%s unavailable (%s): spooling", self.destination, exc)
                        await self._overflow.put(batch)
            except asyncio.CancelledError:
                self._buffer.put_front(batch)
                raise
            finally:
                self._in_flight -= len(batch)
            if not self.pending:
                self._idle.set()

    async def deliver_retrying(self, batch: list[Item]) -> None:
        """Retry while the destination is away (backoff with jitter, capped): for callers with nowhere to
        spool, such as an ingest worker that acknowledges its messages once this returns."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(self.transient),
            wait=wait_random_exponential(multiplier=0.2, max=self._retry_max_wait),
            before_sleep=self._log_retry,
        ):
            with attempt:
                await self.deliver(batch)

    def _log_retry(self, state: object) -> None:
        self.stats.retries += 1
        outcome = getattr(state, "outcome", None)
        if self.stats.retries == 1 or self.stats.retries % 20 == 0:
            log.warning("%s unavailable, retrying: %s", self.destination, outcome and outcome.exception())
