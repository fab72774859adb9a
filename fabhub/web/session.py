"""Browser sessions. The access token rides in an HttpOnly, SameSite=Lax cookie that lasts a working day;
every form carries a double-submit CSRF token (a random cookie the server echoes into the form; a POST must
bring both, equal). The account is read on every request, as for API tokens, so a deactivation or a role
change applies at once. A page takes its visitor through `visitor`, which admits the roles the app's policy
(fabhub/policy.py, through the Authenticator) gives the page, like the API's `auth.caller`."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request, Response
from starlette.datastructures import FormData

from accounts.auth import SESSION_COOKIE, Authenticator, roles_of
from accounts.model import Principal
from common.errors import Unauthorized

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


def return_to(request: Request) -> str:
    """Where to come back after logging in: this page, or for a form (which cannot be sent again by a
    redirect) the page it was posted from."""
    if request.method == "GET":
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    referer = urlsplit(request.headers.get("referer", ""))
    same_site = referer.netloc == request.url.netloc
    return (safe_next(referer.path + (f"?{referer.query}" if referer.query else "")) if same_site else None) or "/"


def login_url(next_url: str) -> str:
    return f"/login?next={quote(next_url, safe='/')}"


class WebSessions:
    def __init__(self, auth: Authenticator, ttl: timedelta, csrf: Csrf) -> None:
        self.auth = auth
        self.ttl = ttl
        self.csrf = csrf
        self.visitor = self._visitor()

    def _visitor(self) -> Callable[..., Awaitable[Principal]]:
        """The dependency of every page that needs a login (`Depends(sessions.visitor)`)."""

        async def visitor(request: Request) -> Principal:
            token = request.cookies.get(SESSION_COOKIE)
            here = return_to(request)
            if not token:
                raise LoginRequired(here, expired=False)
            try:
                principal = await self.auth.principal(token)
            except Unauthorized as exc:
                raise LoginRequired(here, expired=True) from exc
            if principal.role not in roles_of(self.auth.policy, request):
                raise PageForbidden("You may not open this page.")
            return principal

        visitor.policy = self.auth.policy  # type: ignore[attr-defined]
        return visitor

    async def still_admits(self, request: Request) -> bool:
        """For a response that lasts (the board's event stream): does the session still hold, in a role the
        page admits? A deactivation, a role change or the end of the session then ends the stream too."""
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return False
        try:
            principal = await self.auth.principal(token)
        except Unauthorized:
            return False
        return principal.role in roles_of(self.auth.policy, request)

    def start(self, response: Response, token: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(self.ttl.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=self.csrf.secure,
            path="/",
        )

    @staticmethod
    def end(response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/")


class Csrf:
    """The token every form carries. With a session it is an HMAC of the session token under the app's key,
    so a cookie planted by a neighbour (a sibling subdomain, a plain-HTTP hop) cannot forge it; before login
    it is a random cookie the form must echo (double submit)."""

    def __init__(self, secret: str, secure: bool) -> None:
        self._key = hashlib.sha256(b"fabhub-csrf\0" + secret.encode()).digest()
        self.secure = secure

    def token(self, request: Request) -> str:
        token = getattr(request.state, "csrf", None)
        if token is None:
            session = request.cookies.get(SESSION_COOKIE)
            if session:
                token = hmac.new(self._key, session.encode(), hashlib.sha256).hexdigest()
            else:
                token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
                request.state.anonymous_csrf = token
            request.state.csrf = token
        return token

    def issue_cookie(self, request: Request, response: Response) -> None:
        """Before login only: the random token's cookie, when the page just rendered made one."""
        token = getattr(request.state, "anonymous_csrf", None)
        if token is not None and request.cookies.get(CSRF_COOKIE) != token:
            response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="lax", secure=self.secure, path="/")

    async def checked_form(self, request: Request) -> FormData:
        """The posted form, once its token is the one this browser's session (or cookie) calls for."""
        form = await request.form()
        sent = form.get(CSRF_FIELD, "")
        session = request.cookies.get(SESSION_COOKIE)
        if session:
            wanted = hmac.new(self._key, session.encode(), hashlib.sha256).hexdigest()
        else:
            wanted = request.cookies.get(CSRF_COOKIE, "")
        if not wanted or not isinstance(sent, str) or not hmac.compare_digest(wanted.encode(), sent.encode()):
            raise PageForbidden("The form has expired; please try again.")
        return form


def field(form: FormData, name: str, default: Any = None) -> Any:
    value = form.get(name, default)
    return value.strip() if isinstance(value, str) else default
