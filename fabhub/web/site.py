"""Mounting the web pages on the app: static files, the page routers, the CSRF cookie and what a browser
sees on a missing session (the login form), a forbidden page or a form without its token."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from fabhub.web.render import HERE, Pages
from fabhub.web.session import LoginRequired, PageForbidden, WebSessions, login_url


def mount(app: FastAPI, pages: Pages, sessions: WebSessions, *routers: object) -> None:
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for router in routers:
        app.include_router(router)  # type: ignore[arg-type]

    @app.middleware("http")
    async def page_headers(request: Request, call_next: Callable) -> Response:
        response = await call_next(request)
        sessions.csrf.issue_cookie(request, response)
        if response.headers.get("content-type", "").startswith("text/html"):
            # No page of ours is meant to be framed: a one-button form in a frame is a click away from misuse.
            response.headers["X-Frame-Options"] = "DENY"
            response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        url = login_url(exc.next_url) + ("&expired=1" if exc.expired else "")
        if request.headers.get("accept", "").startswith("text/event-stream"):
            return Response(status_code=401)  # an event stream cannot follow a redirect to a form
        return RedirectResponse(url, status_code=303)

    @app.exception_handler(PageForbidden)
    async def forbidden(request: Request, exc: PageForbidden) -> Response:
        return pages.render(request, "error.html", None, status=403, message=pages.texts(request)(exc.reason))
