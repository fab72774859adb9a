"""The delivery log for admins: every message FabHub made, newest first, filtered by status, event and
recipient, with the text as sent and a resend for one that ran out of attempts. It reads and writes through
notify.log, as the API does."""

from datetime import datetime
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg_pool import AsyncConnectionPool

from accounts.model import Principal
from common.errors import DomainError
from common.http import RowId
from common.paging import PageRequest
from fabhub.web.admin_audit import text_filter
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions
from notify.log import Status, deliveries, delivery, resend
from notify.messages import RENDER
from notify.webhooks import SYSTEM_EVENTS

PAGE = 50
STATUSES: tuple[str, ...] = get_args(Status)
# The events' names on the page (the reader's language through the page texts).
KINDS = {
    "booking.confirmed": "Booking confirmed",
    "booking.changed": "Booking moved",
    "booking.cancelled": "Booking cancelled",
    "booking.ended": "Booking ended early",
    "booking.no_show": "No-show",
    "booking.reminder": "Reminder",
    "booking.series_confirmed": "Recurring booking confirmed",
    "waiting.offered": "Waiting-list offer",
    "invoice.issued": "Invoice issued",
    "device.down": "Machine down",
    "qualification.expiring": "Qualification ending",
    "registration.submitted": "Registration submitted",
    "registration.approved": "Registration approved",
    "registration.refused": "Registration refused",
    "user.invited": "Invitation",
    "booking.completed": "Booking completed",
    "payment.recorded": "Payment recorded",
}


def make_router(pages: Pages, sessions: WebSessions, pool: AsyncConnectionPool, clock: Any) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py
    kinds = {kind: KINDS.get(kind, kind) for kind in (*RENDER, *sorted(SYSTEM_EVENTS))}

    @router.get("/admin/notifications")
    async def log_page(
        request: Request,
        user: Visitor,
        status: str | None = None,
        kind: str | None = None,
        recipient: str | None = None,
        cursor: str | None = None,
    ) -> HTMLResponse:
        shown = {
            "status": status if status in STATUSES else None,
            "kind": kind if kind in kinds else None,
            "recipient": text_filter(recipient),
        }
        async with pool.connection() as conn:
            try:
                found = await deliveries(conn, PageRequest(cursor, PAGE, None), **shown)
            except DomainError:  # a stale or edited cursor: the first page
                found = await deliveries(conn, PageRequest(None, PAGE, None), **shown)
        link = {k: v for k, v in shown.items() if v}
        return pages.render(
            request,
            "admin_notifications.html",
            user,
            found=found,
            shown=shown,
            link=link,
            kinds=kinds,
            statuses=STATUSES,
        )

    @router.get("/admin/notifications/{notification_id}")
    async def message_page(
        request: Request, user: Visitor, notification_id: RowId, resent: str | None = None
    ) -> HTMLResponse:
        try:
            async with pool.connection() as conn:
                found = await delivery(conn, notification_id)
        except DomainError:
            return pages.not_found(request, user)
        notice = pages.texts(request)("Queued to be sent again.") if resent else None
        return pages.render(request, "admin_notification.html", user, n=found, kinds=kinds, notice=notice)

    @router.post("/admin/notifications/{notification_id}/resend")
    async def send_again(request: Request, user: Visitor, notification_id: RowId) -> Response:
        await sessions.csrf.checked_form(request)
        now: datetime = clock()
        try:
            async with pool.connection() as conn, conn.transaction():
                await resend(conn, user, notification_id, now)
        except DomainError as exc:
            async with pool.connection() as conn:
                found = await delivery(conn, notification_id)
            problems = [pages.texts(request).error(exc.detail)]
            return pages.render(
                request,
                "admin_notification.html",
                user,
                status=exc.status,
                n=found,
                kinds=kinds,
                problems=problems,
                problem_form="resend",
            )
        return RedirectResponse(f"/admin/notifications/{notification_id}?resent=1", status_code=303)

    return router
