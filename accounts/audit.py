"""The audit log: who changed what, with the state before and after and the reason given."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from accounts.model import Principal
from accounts.sqlfiles import QUERIES
from common.rows import from_row
from common.times import Stamp, StampedJson


class AuditEntry(BaseModel):
    id: int
    at: Stamp
    # The person's user id; null for a system actor.
    actor_id: int | None
    actor: str
    action: str
    entity: str
    entity_id: str
    before: StampedJson
    after: StampedJson
    reason: str | None


async def record(
    conn: AsyncConnection,
    at: datetime,
    actor: Principal | str,
    action: str,
    entity: str,
    entity_id: object,
    *,
    before: Any = None,
    after: Any = None,
    reason: str | None = None,
) -> None:
    """`actor` is the person, or a system actor's name such as 'devices.yaml' or 'job:no-shows'."""
    await QUERIES.record_audit(
        conn,
        at=at,
        actor_id=actor.id if isinstance(actor, Principal) else None,
        actor=actor.label if isinstance(actor, Principal) else actor,
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        before=_json(before),
        after=_json(after),
        reason=reason,
    )


async def entries(
    conn: AsyncConnection,
    *,
    entity: str | None = None,
    entity_id: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """The newest `limit` entries matching the filters (`actor` a part of the actor's name or email, the time
    range half-open), older than entry `before_id` when given: the next page of a long log."""
    rows = QUERIES.audit_entries(
        conn,
        entity=entity,
        entity_id=entity_id,
        actor=actor,
        since=since,
        until=until,
        before_id=before_id,
        limit=limit,
    )
    return [from_row(AuditEntry, row) async for row in rows]


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(to_jsonable_python(value))
