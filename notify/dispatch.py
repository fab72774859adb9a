"""From events to delivered messages, in two steps that each survive a crash:

1. `expand` claims undispatched outbox events, works out who hears of each (in which language, on which
   channel), renders the messages and stores them, stores a delivery per webhook subscribed to the event's
   kind (notify.webhooks), and marks the event dispatched: one transaction, so an event is expanded exactly
   once (the unique key on notification guards a replay too).
2. `deliver` sends due messages, each in a transaction of its own that records the outcome: sent, or tried
   again with backoff, or failed after the last attempt. An SMTP outage only delays; a crash between a send
   and its record can repeat that one message, which carries the same Message-ID both times.

`remind` publishes the reminders that have come due (keyed, so each once)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from booking.bookings import detail
from booking.calendar import attachment
from common.errors import NotFound
from common.rows import dict_rows
from notify.channels import Hook, Robot, SendFailed, Smtp, Undeliverable
from notify.messages import RENDER, Message, Voice
from notify.sqlfiles import QUERIES
from notify.webhooks import SYSTEM_EVENTS, message_id, store_deliveries
from outbox.events import Event, claim, dispatched, publish

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 20  # about 19 hours of retries at the capped backoff
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
TECHNICIANS = "technicians"  # the audience of machine alerts
EXPIRY_NOTICE_DAYS = 30


@dataclass(frozen=True, slots=True)
class Delivery:
    channel: str
    recipient: str
    language: str


def backoff(attempts: int) -> timedelta:
    """After the n-th failed attempt: 30 s, 1 min, 2 min, ... at most an hour."""
    wait: timedelta = FIRST_RETRY * 2 ** min(max(attempts - 1, 0), 16)
    return min(wait, LONGEST_RETRY)


@dataclass
class Notifier:
    """`pool` gives each send its own transaction."""

    pool: AsyncConnectionPool
    voice: Voice
    clock: Callable[[], datetime]
    smtp: Smtp | None = None
    robots: dict[str, Robot] = field(default_factory=dict)

    async def expand(self, conn: AsyncConnection, now: datetime) -> int:
        """Inside the caller's transaction; returns how many messages were stored."""
        stored = 0
        for event in await claim(conn):
            for delivery in await self._audience(conn, event):
                message = await self._render(conn, event, delivery.language, now)
                if message is None:
                    continue
                await QUERIES.insert_notification(
                    conn,
                    event_id=event.id,
                    event_kind=event.kind,
                    channel=delivery.channel,
                    recipient=delivery.recipient,
                    language=delivery.language,
                    subject=message.subject,
                    body=message.body,
                    attachment_name=message.attachment_name,
                    attachment_type=message.attachment_type,
                    attachment=message.attachment,
                    at=now,
                )
                stored += 1
            stored += await store_deliveries(conn, event, now)
            await dispatched(conn, event, now)
        return stored

    async def deliver(self, conn: AsyncConnection, now: datetime, limit: int = 50) -> dict[str, int]:
        """Sends due messages one transaction each (the caller's `conn` holds the job's lock only)."""
        outcome = {"sent": 0, "retry": 0, "failed": 0}
        async with httpx.AsyncClient() as client:
            for _ in range(limit):
                async with self.pool.connection() as own, own.transaction():
                    async with own.cursor(row_factory=dict_row) as cur:
                        await cur.execute(QUERIES.claim_due.sql, {"now": now, "limit": 1})
                        found = await cur.fetchone()
                    if found is None:
                        break
                    outcome[await self._send(own, client, found)] += 1
        return outcome

    async def remind(self, conn: AsyncConnection, now: datetime) -> int:
        """Publishes each reminder that has come due; returns how many were new."""
        new = 0
        for row in await dict_rows(conn, QUERIES.reminders_due.sql, {"now": now}):
            key = f"booking.reminder:{row['id']}:{row['revision']}:{row['lead']}"
            payload = {"booking_id": row["id"], "lead_minutes": row["lead"]}
            new += await publish(conn, "booking.reminder", payload, at=now, key=key)
        return new

    async def warn_expiring(self, conn: AsyncConnection, now: datetime) -> int:
        """Publishes a notice for each qualification that ends within 30 days, once per grant and end date."""
        today = now.astimezone(self.voice.zone).date()
        params = {"today": today, "days": EXPIRY_NOTICE_DAYS}
        new = 0
        for row in await dict_rows(conn, QUERIES.qualifications_expiring.sql, params):
            key = f"qualification.expiring:{row['user_id']}:{row['device_class']}:{row['expires_on']}"
            new += await publish(conn, "qualification.expiring", {"qualification": row}, at=now, key=key)
        return new

    async def counts(self, conn: AsyncConnection) -> dict[str, int]:
        return {status: n async for status, n in QUERIES.notification_counts(conn)}

    async def _send(self, conn: AsyncConnection, client: httpx.AsyncClient, found: dict[str, Any]) -> str:
        try:
            if found["channel"] == "email":
                if self.smtp is None:
                    raise SendFailed("FABHUB_SMTP_URL is not set")
                await self.smtp.send(found)
            elif found["channel"] == "webhook":
                await (await _hook(conn, found)).send(
                    client, message_id(found["event_id"]), found["body"].encode(), time.time()
                )
            else:
                robot = self.robots.get(found["recipient"])
                if robot is None:
                    raise SendFailed(f"no robot is configured for {found['recipient']}")
                await robot.send(client, found)
        except SendFailed as exc:
            attempts = found["attempts"] + 1
            give_up = attempts >= MAX_ATTEMPTS or isinstance(exc, Undeliverable)
            log.warning(
                "notification %s to %s not sent (attempt %d): %s", found["id"], found["recipient"], attempts, exc
            )
            retry_at = self.clock() + backoff(attempts)
            await QUERIES.mark_unsent(conn, id=found["id"], error=str(exc)[:1000], retry_at=retry_at, give_up=give_up)
            return "failed" if give_up else "retry"
        await QUERIES.mark_sent(conn, id=found["id"], now=self.clock())
        return "sent"

    async def _audience(self, conn: AsyncConnection, event: Event) -> list[Delivery]:
        if event.kind in SYSTEM_EVENTS:  # for the webhooks only
            return []
        if event.kind.startswith(("booking.", "waiting.", "qualification.")):
            contact = await QUERIES.user_contact(conn, user_id=await _booker(conn, event.payload))
            if contact is None or not contact[1] or self.smtp is None:
                return []
            return [Delivery("email", contact[0], contact[2])]
        if event.kind.startswith("registration."):
            applicant = event.payload["registration"]
            return [Delivery("email", applicant["contact_email"], applicant["language"])] if self.smtp else []
        if event.kind == "user.invited":  # the address of an account its person has not used yet
            return [Delivery("email", event.payload["user"]["email"], event.payload["language"])] if self.smtp else []
        if event.kind == "invoice.issued":
            found = await QUERIES.billing_contact(conn, organization_id=event.payload["invoice"]["organization_id"])
            if found is None or not found[0] or self.smtp is None:
                return []
            return [Delivery("email", found[0], "zh-CN")]
        if event.kind == "device.down":
            if TECHNICIANS in self.robots:
                return [Delivery("robot", TECHNICIANS, "zh-CN")]
            if self.smtp is None:
                return []
            staff = await dict_rows(conn, QUERIES.staff_contacts.sql, {"role": "technician"})
            return [Delivery("email", s["email"], s["language"]) for s in staff if s["email_on"]]
        log.warning("outbox event %s of kind %s has no audience", event.id, event.kind)
        return []

    async def _render(self, conn: AsyncConnection, event: Event, language: str, now: datetime) -> Message | None:
        payload = event.payload
        if event.kind == "booking.reminder":
            try:
                booking = await detail(conn, payload["booking_id"])
            except NotFound:
                return None
            if booking["status"] != "confirmed":
                return None  # cancelled since the reminder came due
            payload = {**payload, "booking": booking}
        message = RENDER[event.kind](payload, self.voice, language)
        booked = [payload["booking"]] if event.kind in ("booking.confirmed", "booking.changed") else []
        if event.kind == "booking.series_confirmed":
            booked = payload["series"]["bookings"]
        if not booked:
            return message
        rows = [await detail(conn, b["id"]) for b in booked]
        name = f"booking-{rows[0]['id']}.ics" if len(rows) == 1 else f"booking-series-{payload['series']['id']}.ics"
        return Message(message.subject, message.body, name, "text/calendar", attachment(rows, now))


async def _hook(conn: AsyncConnection, found: dict[str, Any]) -> Hook:
    """The delivery's endpoint with its secret as it is now; a disabled one is not sent to (a resend either)."""
    row = await QUERIES.webhook_secret(conn, id=found["webhook_id"])
    if row is None or row[1] is not None:
        raise Undeliverable(f"webhook {found['webhook_id']} is disabled")
    return Hook(found["recipient"], row[0])


async def _booker(conn: AsyncConnection, payload: dict[str, Any]) -> int:
    """The user a booking event is for: the booking's, a series' (one user books a series), a waiting-list
    offer's, or by the booking's id."""
    for key in ("offer", "qualification"):
        if key in payload:
            return int(payload[key]["user_id"])
    if "booking" in payload:
        return int(payload["booking"]["user_id"])
    if "series" in payload:
        return int(payload["series"]["bookings"][0]["user_id"])
    return int((await detail(conn, payload["booking_id"]))["user_id"])
