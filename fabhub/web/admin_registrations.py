"""Companies that registered themselves, for the admin to decide: the confirmed ones wait for approval
(with the subsidy programs the new organization is eligible for) or a refusal with its reason, which the
contact is then emailed. The licence opens from the page. accounts.registration checks and audits each
decision, as for the API."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg_pool import AsyncConnectionPool

from accounts import registration
from accounts.model import Principal
from booking.catalogue import Catalogue
from common.errors import DomainError
from common.http import RowId
from common.paging import PageRequest
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions, field

STATUSES = ("pending", "unconfirmed", "approved", "refused")
PAGE = 50


def make_router(
    pages: Pages, sessions: WebSessions, pool: AsyncConnectionPool, catalogue: Catalogue, clock: Any
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py
    programs = sorted(catalogue.programs.values(), key=lambda p: p.id)

    async def list_page(
        request: Request, user: Principal, status: str, cursor: str | None = None, code: int = 200, **extra: Any
    ) -> HTMLResponse:
        async with pool.connection() as conn:
            try:
                found = await registration.listing(conn, PageRequest(cursor, PAGE, None), status)
            except DomainError:  # a stale or edited cursor: the first page
                found = await registration.listing(conn, PageRequest(None, PAGE, None), status)
        return pages.render(
            request,
            "admin_registrations.html",
            user,
            status=code,
            found=found,
            shown=status,
            statuses=STATUSES,
            programs=programs,
            **extra,
        )

    @router.get("/admin/registrations")
    async def registrations(
        request: Request,
        user: Visitor,
        status: str = "pending",
        cursor: str | None = None,
        approved: str | None = None,
        refused: str | None = None,
    ) -> HTMLResponse:
        texts = pages.texts(request)
        notice = texts("Approved: the company's contact can log in now.") if approved else None
        notice = notice or (texts("Refused: the contact is told the reason.") if refused else None)
        chosen = status if status in STATUSES else "pending"
        return await list_page(request, user, chosen, cursor, notice=notice)

    async def decide(request: Request, user: Principal, registration_id: int, action: str, work: Any) -> Response:
        try:
            async with pool.connection() as conn, conn.transaction():
                await work(conn)
        except DomainError as exc:
            problems = [pages.texts(request).error(exc.detail)]
            form = f"{action}-{registration_id}"
            return await list_page(request, user, "pending", code=exc.status, problems=problems, problem_form=form)
        return RedirectResponse(f"/admin/registrations?{action}d=1", status_code=303)

    @router.post("/admin/registrations/{registration_id}/approve")
    async def approve(request: Request, user: Visitor, registration_id: RowId) -> Response:
        form = await sessions.csrf.checked_form(request)
        chosen = [p for p in form.getlist("programs") if isinstance(p, str) and p in catalogue.programs]

        async def work(conn: Any) -> None:
            await registration.approve(conn, registration_id, chosen, user, clock())

        return await decide(request, user, registration_id, "approve", work)

    @router.post("/admin/registrations/{registration_id}/refuse")
    async def refuse(request: Request, user: Visitor, registration_id: RowId) -> Response:
        form = await sessions.csrf.checked_form(request)
        reason = field(form, "reason", "")

        async def work(conn: Any) -> None:
            await registration.refuse(conn, registration_id, reason, user, clock())

        return await decide(request, user, registration_id, "refuse", work)

    return router
