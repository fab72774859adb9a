"""The API's documentation pages, /docs (Swagger UI) and /redoc, with their scripts, styles and icon served by
FabHub itself: the center's network often cannot reach the foreign CDNs FastAPI's own pages load them from.
The files are the ones the fastapi-offline package bundles (pinned in pyproject.toml); the pages are
FastAPI's, pointed at them."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import fastapi_offline
from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from accounts.auth import public

FILES = Path(fastapi_offline.__file__).parent / "static"
ASSETS = "/docs-assets"  # swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png
ICON = f"{ASSETS}/favicon.png"
DOCS, REDOC, OAUTH2_REDIRECT = "/docs", "/redoc", "/docs/oauth2-redirect"


def mount_api_docs(app: FastAPI) -> None:
    """Give an app made with `docs_url=None, redoc_url=None` the two pages, public like /openapi.json (each
    has its line in fabhub/policy.py), and the assets they load."""
    assert app.docs_url is None, "FastAPI's own /docs loads its files from a CDN"
    assert app.redoc_url is None, "FastAPI's own /redoc loads its files and fonts from CDNs"
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS, StaticFiles(directory=FILES), name="docs-assets")
    public_page = partial(app.get, include_in_schema=False, dependencies=[Depends(public)])

    @public_page(DOCS)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=ICON,
            oauth2_redirect_url=OAUTH2_REDIRECT,
            # No validator badge, which loads from validator.swagger.io with the spec's address: FastAPI's
            # BaseLayout does not show it today, Swagger UI's StandaloneLayout would.
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        )

    @public_page(OAUTH2_REDIRECT)
    async def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @public_page(REDOC)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=ICON,
            with_google_fonts=False,
        )
