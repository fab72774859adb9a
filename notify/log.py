"""The delivery log: every message FabHub made, to whom, and whether it went out. Staff read it to answer
"did the customer get the mail?" and to send again what ran out of attempts during a long outage."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from accounts import audit
from accounts.model import Principal
from common.errors import Conflict, NotFound
from common.paging import Key, Listing, Page, PageRequest, fetch_page
from common.rows import dict_rows
from common.times import Stamp
from notify.sqlfiles import QUERIES

DELIVERIES = Listing("notifications", (Key("created_at", "time", descending=True), Key("id", "int", True)))
Status = Literal["pending", "sent", "failed"]


class Delivered(BaseModel):
    id: int
    event_id: int
    event_kind: str
    channel: Literal["email", "robot", "webhook"]
    recipient: str = Field(description="an email address, the robot's name, or the webhook's URL")
    webhook_id: int | None = Field(description="the webhook a delivery went to (channel webhook)")
    language: str
    subject: str
    attachment_name: str | None
    status: Status
    attempts: int
    next_attempt_at: Stamp = Field(description="when a pending message is tried next")
    last_error: str | None
    created_at: Stamp
    sent_at: Stamp | None
    updated_at: Stamp


class DeliveredWithBody(Delivered):
    body: str


async def deliveries(
    conn: AsyncConnection,
    request: PageRequest,
    *,
    status: str | None = None,
    kind: str | None = None,
    recipient: str | None = None,
) -> Page[Delivered]:
    """`status`, `kind` and `recipient` (part of the address) are checked at the edge."""
    params = {"status": status, "kind": kind, "recipient": recipient}
    return await fetch_page(conn, DELIVERIES, QUERIES.notification_rows.sql, params, request, Delivered)


async def delivery(conn: AsyncConnection, notification_id: int) -> DeliveredWithBody:
    rows = await dict_rows(conn, QUERIES.notification_row.sql, {"id": notification_id})
    if not rows:
        raise NotFound(f"no notification {notification_id}")
    return DeliveredWithBody(**rows[0])


async def resend(conn: AsyncConnection, principal: Principal, notification_id: int, now: datetime) -> DeliveredWithBody:
    """A failed message queued again; the sending job picks it up within seconds."""
    before = await delivery(conn, notification_id)
    if await QUERIES.resend_notification(conn, id=notification_id, now=now) is None:
        raise Conflict(f"notification {notification_id} is {before.status}: only a failed one is sent again")
    after = await delivery(conn, notification_id)
    fields = {"status", "attempts", "last_error"}
    await audit.record(
        conn,
        now,
        principal,
        "resend",
        "notification",
        notification_id,
        before=before.model_dump(mode="json", include=fields),
        after=after.model_dump(mode="json", include=fields),
    )
    return after
