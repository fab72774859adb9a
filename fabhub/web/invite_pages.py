"""The page an invitation's emailed link opens: the invited person chooses a password (the usual rules) and
is logged in. accounts.invitations checks the link and audits its use; a link that is used, replaced, expired
or unknown gets a page that says so in the reader's language, never an error."""

from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg_pool import AsyncConnectionPool

from accounts import invitations
from accounts.auth import public
from accounts.model import Principal
from common.errors import DomainError, NotFound
from fabhub.web.render import Pages, home_of
from fabhub.web.session import WebSessions

PAGE = invitations.INVITE_PAGE + "/{token}"


def make_router(
    pages: Pages, sessions: WebSessions, pool: AsyncConnectionPool, clock: Callable[[], datetime]
) -> APIRouter:
    router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])

    def refused(request: Request, exc: DomainError) -> HTMLResponse:
        invalid = pages.texts(request).error(exc.detail)
        return pages.render(request, "invite.html", None, status=exc.status, invalid=invalid)

    async def invited(token: str) -> Principal:
        async with pool.connection() as conn, conn.transaction():
            return await invitations.invited(conn, token, clock())

    @router.get(PAGE)
    async def invitation(request: Request, token: str) -> HTMLResponse:
        try:
            person = await invited(token)
        except NotFound as exc:
            return refused(request, exc)
        return pages.render(request, "invite.html", None, person=person, problems=[])

    @router.post(PAGE)
    async def accept(request: Request, token: str) -> Response:
        form = await sessions.csrf.checked_form(request)
        texts = pages.texts(request)
        password = str(form.get("password", ""))
        try:
            person = await invited(token)
            if password == form.get("repeat"):
                async with pool.connection() as conn, conn.transaction():
                    await invitations.accept(conn, token, password, clock())
                response = RedirectResponse(home_of(person.role), status_code=303)
                sessions.start(response, sessions.auth.issue(person.id, sessions.ttl).access_token)
                return response
            problem, status = texts("The two passwords differ."), 422
        except NotFound as exc:
            return refused(request, exc)
        except DomainError as exc:  # the password's rules
            problem, status = texts.error(exc.detail), exc.status
        return pages.render(request, "invite.html", None, status=status, person=person, problems=[problem])

    return router
