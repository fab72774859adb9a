"""Qualifications: the device classes a user may book, each until an expiry date. A qualification holds
through its `expires_on` day (in the center's calendar) and has expired from the day after."""

from __future__ import annotations

from datetime import date, datetime

from psycopg import AsyncConnection
from pydantic import BaseModel

from accounts import audit
from accounts.model import Principal
from accounts.sqlfiles import QUERIES
from accounts.users import missing as missing_user
from common.errors import NotFound
from common.rows import from_row
from common.times import Stamp

# Audited under the user's id, so one filter (entity=qualification, entity_id=<user>) shows a person's history.
ENTITY = "qualification"


class Qualification(BaseModel):
    device_class: str
    expires_on: date
    # The staff member who granted or last renewed it; null when a system actor did.
    granted_by: int | None
    granted_at: Stamp


async def grant_qualification(
    conn: AsyncConnection,
    *,
    user_id: int,
    device_class: str,
    expires_on: date,
    at: datetime,
    actor: Principal | str,
) -> None:
    """Grants, or renews with a new expiry. The device class is not checked here: the classes are the center's
    configuration, which the caller knows (the API refuses unknown ones)."""
    if await QUERIES.user(conn, id=user_id) is None:
        raise missing_user(user_id)
    row = await QUERIES.qualification_for_update(conn, user_id=user_id, device_class=device_class)
    before = from_row(Qualification, row) if row is not None else None
    after = Qualification(
        device_class=device_class,
        expires_on=expires_on,
        granted_by=actor.id if isinstance(actor, Principal) else None,
        granted_at=at,
    )
    await QUERIES.upsert_qualification(conn, user_id=user_id, **after.model_dump())
    await audit.record(conn, at, actor, "grant", ENTITY, user_id, before=before, after=after)


async def revoke_qualification(
    conn: AsyncConnection,
    *,
    user_id: int,
    device_class: str,
    at: datetime,
    actor: Principal | str,
    reason: str | None = None,
) -> None:
    row = await QUERIES.delete_qualification(conn, user_id=user_id, device_class=device_class)
    if row is None:
        raise NotFound(f"user {user_id} holds no qualification for {device_class!r}")
    await audit.record(conn, at, actor, "revoke", ENTITY, user_id, before=from_row(Qualification, row), reason=reason)


async def qualification_expiry(conn: AsyncConnection, user_id: int, device_class: str) -> date | None:
    """The last day the user may use the class, or None if never qualified (or revoked)."""
    return await QUERIES.qualified_until(conn, user_id=user_id, device_class=device_class)


async def list_qualifications(conn: AsyncConnection, user_id: int) -> list[Qualification]:
    return [from_row(Qualification, row) async for row in QUERIES.qualifications(conn, user_id=user_id)]
