"""The live fan-out of one app process: every batch the database announces (telemetry.live, whichever
process wrote it) goes to each subscriber (a browser's event stream). A subscriber
that falls behind is not allowed to hold memory or slow the others: its queue is bounded, and on overflow
it is told to resynchronize from a fresh snapshot instead."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable

from telemetry.model import Sample

RESYNC = "resync"


class LiveHub:
    def __init__(self, queue_size: int = 512) -> None:
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[list[Sample] | str]] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, samples: Iterable[Sample]) -> None:
        batch = list(samples)
        if not batch:
            return
        for queue in self._subscribers:
            try:
                queue.put_nowait(batch)
            except asyncio.QueueFull:
                while not queue.empty():  # what it missed is lost anyway: start it over from a snapshot
                    queue.get_nowait()
                queue.put_nowait(RESYNC)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[list[Sample] | str]]:
        queue: asyncio.Queue[list[Sample] | str] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
