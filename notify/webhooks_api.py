"""HTTP routes of webhooks: admins register an endpoint (its secret shown once), list them and disable one.
What was delivered is in the delivery log (`GET /api/v1/notifications?recipient=<url>`). Roles:
fabhub/policy.py."""

# No `from __future__ import annotations`: FastAPI must resolve the dependency alias made in make_router.

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from psycopg_pool import AsyncConnectionPool

from accounts.auth import Authenticator
from accounts.model import Principal
from common.http import RowId
from common.paging import Key, Listing, Page, Paging, fetch_page
from notify import webhooks
from notify.sqlfiles import QUERIES
from notify.webhooks import NewWebhook, Webhook, WebhookIn

WEBHOOKS = Listing("webhooks", (Key("id", "int", descending=True),))


def make_router(
    pool: AsyncConnectionPool, auth: Authenticator, clock: Callable[[], datetime], prefix: str
) -> APIRouter:
    router = APIRouter(tags=["webhooks"])
    Caller = Annotated[Principal, Depends(auth.caller)]  # roles: fabhub/policy.py

    @router.post(
        f"{prefix}/webhooks",
        status_code=201,
        responses={409: {}, 422: {}},
        summary="Register a webhook endpoint (its signing secret is shown once)",
    )
    async def register_webhook(principal: Caller, body: WebhookIn) -> NewWebhook:
        """Register an endpoint for some event kinds. `secret` is in this answer only: the receiver checks each
        delivery's `webhook-signature` with it (README, "Webhooks")."""
        async with pool.connection() as conn, conn.transaction():
            return await webhooks.create(conn, body, at=clock(), actor=principal)

    @router.get(f"{prefix}/webhooks", summary="List the webhook endpoints")
    async def list_webhooks(principal: Caller, page: Paging) -> Page[Webhook]:
        """Newest first, never with their secrets."""
        async with pool.connection() as conn:
            return await fetch_page(conn, WEBHOOKS, QUERIES.webhooks.sql, {"id": None}, page, Webhook)

    @router.delete(f"{prefix}/webhooks/{{webhook_id}}", responses={404: {}}, summary="Disable a webhook endpoint")
    async def disable_webhook(principal: Caller, webhook_id: RowId) -> Webhook:
        """Disable an endpoint: nothing more is delivered to it and its waiting deliveries fail; it stays, with
        its deliveries, in the log. Disabling it again changes nothing."""
        async with pool.connection() as conn, conn.transaction():
            return await webhooks.disable(conn, webhook_id, at=clock(), actor=principal)

    return router
