"""Publishing and claiming events. A payload carries what a reader of the event needs (names, times, amounts
as they were), so a message sent an hour later still says what happened then."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from pydantic_core import to_jsonable_python

from outbox.sqlfiles import QUERIES


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    kind: str
    payload: dict[str, Any]
    created_at: datetime


async def publish(
    conn: AsyncConnection, kind: str, payload: dict[str, Any], *, at: datetime, key: str | None = None
) -> bool:
    """Inside the caller's transaction. With a `key`, an event published before under it is not published
    again (False)."""
    row = await QUERIES.publish_event(conn, kind=kind, key=key, payload=Jsonb(to_jsonable_python(payload)), at=at)
    return row is not None


async def claim(conn: AsyncConnection, limit: int = 100) -> list[Event]:
    """The oldest undispatched events, locked until the caller's transaction ends."""
    return [Event(*row) async for row in QUERIES.claim_events(conn, limit=limit)]


async def dispatched(conn: AsyncConnection, event: Event, at: datetime) -> None:
    await QUERIES.mark_dispatched(conn, id=event.id, at=at)


async def waiting(conn: AsyncConnection) -> int:
    return int(await QUERIES.waiting_events(conn))
