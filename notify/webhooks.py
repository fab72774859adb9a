"""Webhooks: systems (an ERP, a MES) hear of FabHub's events over HTTP, signed as the Standard Webhooks
specification says (standardwebhooks.com), so a receiver can check them with that project's libraries or the
few lines in the README.

An admin registers an endpoint: its URL, the event kinds it wants and a secret FabHub makes and shows once.
Deliveries are notifications on a channel of their own (`webhook`): `Notifier.expand` stores one per event and
subscribed endpoint, with the JSON body fixed then, and `Notifier.deliver` posts it with the same backoff,
attempt limit, log and resend as email. The body's `id` and the `webhook-id` header are the event's id, the
same on every retry, so a receiver drops the copies a retry or a resend brings."""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python

from accounts import audit
from accounts.model import Principal
from common.errors import Invalid, NotFound
from common.rows import from_row, unique_or_conflict
from common.times import Stamp
from notify.sqlfiles import QUERIES
from outbox.events import Event

ENTITY = "webhook"
SECRET_PREFIX = "whsec_"
URL_MAX = 300  # the delivery log's recipient holds 320
# The kinds a system may subscribe to. Not the ones about people's accounts (invitations carry a login link,
# registrations an applicant's confirmation link): those are for the person, never for another system.
EventKind = Literal[
    "booking.confirmed",
    "booking.series_confirmed",
    "booking.changed",
    "booking.cancelled",
    "booking.no_show",
    "booking.ended",
    "booking.completed",
    "invoice.issued",
    "payment.recorded",
    "device.down",
]
# Events that are news for systems only: no message for a person is made of them.
SYSTEM_EVENTS = frozenset({"booking.completed", "payment.recorded"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(
        max_length=URL_MAX,
        description="https://...; http:// only to this machine or a private network (an ERP in the center's LAN)",
    )
    events: list[EventKind] = Field(min_length=1, max_length=20, description="the event kinds to deliver")
    description: str = Field("", max_length=200, description="what system listens there")


class Webhook(BaseModel):
    """An endpoint as listed: everything but its secret."""

    id: int
    url: str
    events: list[str]
    description: str
    created_by: int
    created_at: Stamp
    disabled_at: Stamp | None
    disabled_by: int | None
    updated_at: Stamp


class NewWebhook(Webhook):
    secret: Annotated[str, Field(description="whsec_...: shown in this answer only; the receiver verifies with it")]


def check_url(url: str) -> str:
    """The URL as given, or Invalid with the reason. Plain http is for a receiver on this machine or in a
    private network, where an on-premise ERP often has no TLS; across the internet the payloads (customer
    names, amounts) travel encrypted. Link-local addresses (the cloud metadata service) are never a target."""
    url = url.strip()
    if not url or len(url) > URL_MAX:
        raise Invalid(f"a webhook URL has 1 to {URL_MAX} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise Invalid("a webhook URL starts with https:// and names a host")
    if parts.username is not None or parts.password is not None:
        raise Invalid(
            "a webhook URL carries no user or password: it is shown in the delivery log, and the signature says "
            "the call is FabHub's"
        )
    if parts.fragment:
        raise Invalid("a webhook URL has no #fragment")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number from 0 to 65535
    except ValueError:
        raise Invalid("a webhook URL's port is a number from 1 to 65535") from None
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        address = None
    if address is not None and (address.is_link_local or address.is_unspecified or address.is_multicast):
        raise Invalid(f"{parts.hostname} is not an address a webhook can be delivered to")
    local = parts.hostname.lower() in LOOPBACK_NAMES or (
        address is not None and (address.is_loopback or address.is_private)
    )
    if parts.scheme == "http" and not local:
        raise Invalid(
            "a webhook URL uses https://; http:// only to this machine or a private network address (e.g. 192.168.1.20)"
        )
    return url


def new_secret() -> str:
    """32 random bytes as the specification serializes a symmetric secret: `whsec_` and base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


async def create(conn: AsyncConnection, body: WebhookIn, *, at: datetime, actor: Principal) -> NewWebhook:
    """The endpoint with its secret, audited without it. Inside the caller's transaction."""
    url = check_url(body.url)
    secret = new_secret()
    # The unique index, not a look first: two admins registering one URL at once get one endpoint.
    async with unique_or_conflict(conn, f"{url} is registered already: disable that webhook first"):
        webhook_id = await QUERIES.insert_webhook(
            conn,
            url=url,
            events=sorted(set(body.events)),
            description=body.description.strip(),
            secret=secret,
            created_by=actor.id,
            at=at,
        )
    made = await get(conn, webhook_id)
    await audit.record(conn, at, actor, "create", ENTITY, webhook_id, after=made)
    return NewWebhook(**made.model_dump(), secret=secret)


async def listed(conn: AsyncConnection, webhook_id: int | None = None) -> list[Webhook]:
    """Every endpoint, newest first (the admin page; the API pages through the same query), or the one."""
    return [from_row(Webhook, row) async for row in QUERIES.webhooks(conn, id=webhook_id)]


async def get(conn: AsyncConnection, webhook_id: int) -> Webhook:
    for found in await listed(conn, webhook_id):
        return found
    raise NotFound(f"no webhook {webhook_id}")


async def disable(conn: AsyncConnection, webhook_id: int, *, at: datetime, actor: Principal) -> Webhook:
    """Nothing more is delivered to it, its waiting deliveries fail; disabling it again changes nothing."""
    before = await get(conn, webhook_id)
    if await QUERIES.disable_webhook(conn, id=webhook_id, at=at, by=actor.id) is None:
        return before
    await QUERIES.fail_webhook_deliveries(conn, id=webhook_id, error=f"webhook {webhook_id} was disabled")
    after = await get(conn, webhook_id)
    await audit.record(conn, at, actor, "disable", ENTITY, webhook_id, before=before, after=after)
    return after


def message_id(event_id: int) -> str:
    """The `webhook-id` header and the body's `id`: the event's, the same on every attempt."""
    return f"evt_{event_id}"


def body_of(event: Event) -> str:
    """The JSON body as the specification recommends (type, timestamp, data) with the event's id; compact, and
    stored as sent, because the signature covers the exact bytes."""
    document = {
        "id": message_id(event.id),
        "type": event.kind,
        "timestamp": event.created_at,
        "data": event.payload,
    }
    return json.dumps(to_jsonable_python(document), ensure_ascii=False, separators=(",", ":"))


async def store_deliveries(conn: AsyncConnection, event: Event, at: datetime) -> int:
    """One delivery per endpoint subscribed to the event's kind; inside `expand`'s transaction."""
    stored = 0
    body = body_of(event)
    async for webhook_id, url in QUERIES.subscribed_webhooks(conn, kind=event.kind):
        await QUERIES.insert_webhook_delivery(
            conn, event_id=event.id, event_kind=event.kind, url=url, webhook_id=webhook_id, body=body, at=at
        )
        stored += 1
    return stored
