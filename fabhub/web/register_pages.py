"""The pages a company meets before it has an account: the registration form and the confirmation link's
landing page. The API does the work (accounts.registration); these speak the reader's language."""

from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from psycopg_pool import AsyncConnectionPool
from starlette.datastructures import UploadFile

from accounts import registration
from accounts.auth import client_address, public
from accounts.registration import Application, Licences
from accounts.registration_api import CONFIRM_PAGE
from common.errors import DomainError
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions, field

FIELDS = ("organization_name", "uscc", "contact_name", "contact_phone", "contact_email")


def make_router(
    pages: Pages,
    sessions: WebSessions,
    pool: AsyncConnectionPool,
    licences: Licences,
    clock: Callable[[], datetime],
) -> APIRouter:
    router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])

    @router.get("/register")
    async def register_form(request: Request) -> HTMLResponse:
        return pages.render(request, "register.html", None, form={}, problems=[])

    @router.post("/register")
    async def register(request: Request) -> HTMLResponse:
        form = await sessions.csrf.checked_form(request)
        texts = pages.texts(request)
        typed = {name: str(field(form, name, ""))[:300] for name in FIELDS}
        licence = form.get("licence")
        content = await licence.read(registration.MAX_LICENCE_BYTES + 1) if isinstance(licence, UploadFile) else b""
        application = Application(
            **typed, password=str(field(form, "password", "")), language="en" if texts.lang == "en" else "zh-CN"
        )
        confirm_url = str(request.base_url).rstrip("/") + CONFIRM_PAGE
        try:
            async with pool.connection() as conn, conn.transaction():
                await registration.submit(
                    conn, application, content, licences, client_address(request), confirm_url, clock()
                )
        except DomainError as exc:
            return pages.render(
                request, "register.html", None, status=exc.status, form=typed, problems=[texts.error(exc.detail)]
            )
        done = texts("Thank you. We sent a link to your email: open it within 48 hours to confirm the address.")
        return pages.render(request, "register.html", None, form={}, problems=[], done=done)

    @router.get(CONFIRM_PAGE)
    async def confirm(request: Request, token: str = "") -> HTMLResponse:
        texts = pages.texts(request)
        try:
            async with pool.connection() as conn, conn.transaction():
                await registration.confirm(conn, token[:100], clock())
        except DomainError as exc:
            return pages.render(request, "register.html", None, status=exc.status, done=texts.error(exc.detail))
        done = texts("Your email is confirmed. The center reviews the registration and will tell you its decision.")
        return pages.render(request, "register.html", None, done=done)

    return router
