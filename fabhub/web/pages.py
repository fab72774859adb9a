"""The pages every visitor meets: log in and out, the language switch, and `/` sending each role home."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from accounts.auth import SESSION_COOKIE, client_address, public
from accounts.model import Principal
from common.errors import TooManyRequests, Unauthorized
from fabhub.web.i18n import LANGUAGES
from fabhub.web.render import Pages, home_of
from fabhub.web.session import LANG_COOKIE, WebSessions, field, safe_next


def make_router(pages: Pages, sessions: WebSessions) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py

    @router.get("/")
    async def home(user: Visitor) -> Response:
        return RedirectResponse(home_of(user.role), status_code=303)

    @router.get("/login", dependencies=[Depends(public)])
    async def login_form(request: Request, next: str | None = None, expired: bool = False) -> HTMLResponse:
        texts = pages.texts(request)
        problems = [texts("Your session has expired, please log in again.")] if expired else []
        return pages.render(request, "login.html", None, next=safe_next(next), problems=problems)

    @router.post("/login", dependencies=[Depends(public)])
    async def login(request: Request) -> Response:
        form = await sessions.csrf.checked_form(request)
        email, password = field(form, "email", ""), form.get("password", "")
        next_url = safe_next(field(form, "next"))
        texts = pages.texts(request)
        try:
            token = await sessions.auth.login(email, str(password), client_address(request), sessions.ttl)
        except (Unauthorized, TooManyRequests) as exc:
            message = texts("Wrong email or password.") if exc.status == 401 else exc.detail
            return pages.render(
                request, "login.html", None, status=exc.status, email=email, next=next_url, problems=[message]
            )
        user = await sessions.auth.principal(token.access_token)
        response = RedirectResponse(next_url or home_of(user.role), status_code=303)
        sessions.start(response, token.access_token)
        return response

    @router.post("/logout", dependencies=[Depends(public)])
    async def logout(request: Request) -> Response:
        await sessions.csrf.checked_form(request)
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await sessions.auth.revoke(token)  # a copy of the cookie is no good either
        response = RedirectResponse("/login", status_code=303)
        sessions.end(response)
        return response

    @router.post("/language", dependencies=[Depends(public)])
    async def switch_language(request: Request) -> Response:
        form = await sessions.csrf.checked_form(request)
        response = RedirectResponse(safe_next(field(form, "next")) or "/", status_code=303)
        lang = field(form, "lang")
        if lang in LANGUAGES:
            secure = sessions.csrf.secure
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", secure=secure, path="/")
        return response

    return router
