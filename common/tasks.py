"""Stopping background tasks so that a stop always ends."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def cancel_and_wait(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel the tasks and wait for them, cancelling again each second those that went on: on Python 3.11
    `asyncio.wait_for` (psycopg_pool waits for a connection with it) swallows a cancellation that lands as
    what it waits for arrives, and the task carries on as if never cancelled. Their errors are retrieved,
    so none is logged as never retrieved."""
    tasks = list(tasks)
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1)
    await asyncio.gather(*tasks, return_exceptions=True)
