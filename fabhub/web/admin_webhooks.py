"""Webhooks on a page: admins list the endpoints, register one (its secret shown on the answer to the form,
once, never in an address) and disable one, as over the API; notify.webhooks checks and audits every change.
Each endpoint links to its deliveries in the delivery log."""

from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from accounts.model import Principal
from common.errors import DomainError
from common.http import RowId
from fabhub.web.admin_notifications import KINDS
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions, field
from notify import webhooks
from notify.webhooks import EventKind, WebhookIn

EVENTS: tuple[str, ...] = get_args(EventKind)


def make_router(pages: Pages, sessions: WebSessions, pool: AsyncConnectionPool, clock: Any) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py

    async def list_page(request: Request, user: Principal, status: int = 200, **extra: Any) -> HTMLResponse:
        async with pool.connection() as conn:
            found = await webhooks.listed(conn)
        return pages.render(
            request,
            "admin_webhooks.html",
            user,
            status=status,
            webhooks=found,
            events=EVENTS,
            kinds=KINDS,
            values=extra.pop("values", {"events": EVENTS}),
            disabled=request.query_params.get("disabled") == "1",
            **extra,
        )

    @router.get("/admin/webhooks")
    async def webhooks_list(request: Request, user: Visitor) -> HTMLResponse:
        return await list_page(request, user)

    @router.post("/admin/webhooks")
    async def register(request: Request, user: Visitor) -> Response:
        form = await sessions.csrf.checked_form(request)
        texts = pages.texts(request)
        values = {
            "url": field(form, "url", ""),
            "description": field(form, "description", ""),
            "events": [e for e in form.getlist("events") if isinstance(e, str)],
        }
        try:
            body = WebhookIn(**values)
        except ValidationError:
            problems = [texts("Give an https:// URL of at most 300 characters and choose at least one event.")]
            return await list_page(request, user, status=422, values=values, problems=problems)
        try:
            async with pool.connection() as conn, conn.transaction():
                made = await webhooks.create(conn, body, at=clock(), actor=user)
        except DomainError as exc:
            return await list_page(request, user, status=exc.status, values=values, problems=[texts.error(exc.detail)])
        return await list_page(request, user, status=201, created=made)

    @router.post("/admin/webhooks/{webhook_id}/disable")
    async def disable(request: Request, user: Visitor, webhook_id: RowId) -> Response:
        await sessions.csrf.checked_form(request)
        try:
            async with pool.connection() as conn, conn.transaction():
                await webhooks.disable(conn, webhook_id, at=clock(), actor=user)
        except DomainError:
            return pages.not_found(request, user)
        return RedirectResponse("/admin/webhooks?disabled=1", status_code=303)

    return router
