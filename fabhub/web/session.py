"""Browser sessions. The access token rides in an HttpOnly, SameSite=Lax cookie that lasts a working day;
every form carries a double-submit CSRF token (a random cookie the server echoes into the form; a POST must
bring both, equal). The account is read on every request, as for API tokens, so a deactivation or a role
change applies at once. A page route states its roles through `page(...)`, which the authorization matrix
test reads off it like the API's `allow(...)`."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request, Response
from starlette.datastructures import FormData

from accounts.auth import SESSION_COOKIE, Authenticator
from accounts.model import ALL_ROLES, Principal, Role

CSRF_COOKIE = "fabhub_csrf"
LANG_COOKIE = "fabhub_lang"
CSRF_FIELD = "csrf"


class LoginRequired(Exception):
    """No valid session: the page sends the browser to the login form, and back afterwards."""

    def __init__(self, next_url: str, expired: bool) -> None:
        self.next_url = next_url
        self.expired = expired


class PageForbidden(Exception):
    """Logged in, but not in a role this page admits, or a form without its CSRF token."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def safe_next(url: str | None) -> str | None:
    """Only paths of this site: an open redirect after login would lend our name to a phishing page."""
    if url and url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url
    return None


def login_url(next_url: str) -> str:
    return f"/login?next={quote(next_url, safe='/')}"


class WebSessions:
    def __init__(self, auth: Authenticator, ttl: timedelta) -> None:
        self.auth = auth
        self.ttl = ttl

    def page(self, *roles: Role) -> Callable[..., Awaitable[Principal]]:
        allowed = frozenset(roles) or ALL_ROLES

        async def visitor(request: Request) -> Principal:
            token = request.cookies.get(SESSION_COOKIE)
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if not token:
                raise LoginRequired(here, expired=False)
            try:
                principal = await self.auth.principal(token)
            except HTTPException as exc:
                raise LoginRequired(here, expired=True) from exc
            if principal.role not in allowed:
                raise PageForbidden("You may not open this page.")
            return principal

        visitor.roles = allowed  # type: ignore[attr-defined]
        return visitor

    async def still_admits(self, request: Request, roles: frozenset[Role]) -> bool:
        """For a response that lasts (the board's event stream): does the session still hold, in one of `roles`?
        A deactivation, a role change or the end of the session then ends the stream too."""
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return False
        try:
            principal = await self.auth.principal(token)
        except HTTPException:
            return False
        return principal.role in roles

    def start(self, response: Response, token: str) -> None:
        response.set_cookie(
            SESSION_COOKIE, token, max_age=int(self.ttl.total_seconds()), httponly=True, samesite="lax", path="/"
        )

    @staticmethod
    def end(response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/")


def csrf_token(request: Request) -> str:
    """The browser's CSRF token: its cookie, or a new one that `issue_csrf_cookie` sets on the response."""
    token = getattr(request.state, "csrf", None)
    if token is None:
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        request.state.csrf = token
    return token


def issue_csrf_cookie(request: Request, response: Response) -> None:
    token = getattr(request.state, "csrf", None)
    if token is not None and request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="lax", path="/")


async def checked_form(request: Request) -> FormData:
    """The posted form, once its CSRF token matches the browser's cookie."""
    form = await request.form()
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get(CSRF_FIELD, "")
    if not cookie or not isinstance(sent, str) or not secrets.compare_digest(cookie, sent):
        raise PageForbidden("The form has expired; please try again.")
    return form


def field(form: FormData, name: str, default: Any = None) -> Any:
    value = form.get(name, default)
    return value.strip() if isinstance(value, str) else default
