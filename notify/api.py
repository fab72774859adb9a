"""The caller's notification choices (email on or off, the language of messages, reminders before a start),
and the staff's delivery log of every message with a resend of those that ran out of attempts."""

# No `from __future__ import annotations`: FastAPI must resolve the dependency alias made in make_router.

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from psycopg_pool import AsyncConnectionPool

from accounts.auth import Authenticator
from accounts.model import Principal
from common.http import RowId
from common.paging import Page, Paging
from notify.log import Delivered, DeliveredWithBody, Status, deliveries, delivery, resend
from notify.preferences import Preferences, choose, preferences_of


def make_router(
    pool: AsyncConnectionPool, auth: Authenticator, clock: Callable[[], datetime], prefix: str
) -> APIRouter:
    router = APIRouter(tags=["notifications"])
    Caller = Annotated[Principal, Depends(auth.caller)]  # roles: fabhub/policy.py

    @router.get(f"{prefix}/me/notifications", summary="Show my notification preferences")
    async def my_preferences(principal: Caller) -> Preferences:
        async with pool.connection() as conn:
            return await preferences_of(conn, principal.id)

    @router.put(f"{prefix}/me/notifications", summary="Set my notification preferences")
    async def set_preferences(principal: Caller, body: Preferences) -> Preferences:
        async with pool.connection() as conn:
            return await choose(conn, principal.id, body)

    @router.get(f"{prefix}/notifications", summary="List the notifications sent")
    async def log(
        principal: Caller,
        page: Paging,
        status: Status | None = None,
        kind: Annotated[str | None, Query(pattern=r"^[a-z_]+\.[a-z_]+$", description="e.g. booking.confirmed")] = None,
        recipient: Annotated[str | None, Query(min_length=1, max_length=320, description="part of the address")] = None,
    ) -> Page[Delivered]:
        """Every message made, newest first, with its status, attempts and last error."""
        async with pool.connection() as conn:
            return await deliveries(conn, page, status=status, kind=kind, recipient=recipient)

    @router.get(f"{prefix}/notifications/{{notification_id}}", responses={404: {}}, summary="Show a notification")
    async def one(principal: Caller, notification_id: RowId) -> DeliveredWithBody:
        async with pool.connection() as conn:
            return await delivery(conn, notification_id)

    @router.post(
        f"{prefix}/notifications/{{notification_id}}/resend",
        responses={404: {}, 409: {}},
        summary="Send a failed notification again",
    )
    async def send_again(principal: Caller, notification_id: RowId) -> DeliveredWithBody:
        """Queue a failed message again, its attempts counted afresh (audited)."""
        async with pool.connection() as conn:
            return await resend(conn, principal, notification_id, clock())

    return router
