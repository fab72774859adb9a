"""API keys for systems on a page: admins list them, make one (its key shown on the answer to the form, once,
and never put in an address or a redirect) and revoke one, as over the API; accounts.api_keys checks and
audits every change."""

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg_pool import AsyncConnectionPool

from accounts import api_keys
from accounts.model import Principal
from accounts.organizations import list_organizations
from common.errors import DomainError, Invalid
from common.http import RowId
from fabhub.web.admin_users import row_id
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions, field


def make_router(pages: Pages, sessions: WebSessions, pool: AsyncConnectionPool, clock: Any) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py

    def end_of(day: str) -> datetime | None:
        """The form's last valid day, in the center's calendar: the key holds through it."""
        if not day:
            return None
        try:
            last = date.fromisoformat(day)
        except ValueError:
            raise Invalid(f"{day[:20]!r} is not a date") from None
        return datetime.combine(last + timedelta(days=1), time(), pages.zone)

    async def list_page(request: Request, user: Principal, status: int = 200, **extra: Any) -> HTMLResponse:
        async with pool.connection() as conn:
            keys = await api_keys.list_keys(conn)
            orgs = await list_organizations(conn)
        return pages.render(
            request,
            "admin_api_keys.html",
            user,
            status=status,
            keys=keys,
            roles=sorted(api_keys.KEY_ROLES),
            organizations=orgs,
            org_names={o.id: o.name for o in orgs},
            now=clock(),
            values=extra.pop("values", {}),
            revoked=request.query_params.get("revoked") == "1",
            **extra,
        )

    @router.get("/admin/api-keys")
    async def keys_list(request: Request, user: Visitor) -> HTMLResponse:
        return await list_page(request, user)

    @router.post("/admin/api-keys")
    async def create(request: Request, user: Visitor) -> Response:
        form = await sessions.csrf.checked_form(request)
        values = {
            "name": field(form, "name", ""),
            "role": field(form, "role", ""),
            "organization_id": row_id(field(form, "organization_id", "")),
            "expires_on": field(form, "expires_on", ""),
        }
        try:
            async with pool.connection() as conn, conn.transaction():
                made = await api_keys.create_key(
                    conn,
                    name=values["name"],
                    role=values["role"],
                    organization_id=values["organization_id"],
                    expires_at=end_of(values["expires_on"]),
                    at=clock(),
                    actor=user,
                )
        except DomainError as exc:
            problems = [pages.texts(request).error(exc.detail)]
            return await list_page(request, user, status=exc.status, values=values, problems=problems)
        return await list_page(request, user, status=201, created=made)

    @router.post("/admin/api-keys/{key_id}/revoke")
    async def revoke(request: Request, user: Visitor, key_id: RowId) -> Response:
        await sessions.csrf.checked_form(request)
        try:
            async with pool.connection() as conn, conn.transaction():
                await api_keys.revoke_key(conn, key_id, at=clock(), actor=user)
        except DomainError:
            return pages.not_found(request, user)
        return RedirectResponse("/admin/api-keys?revoked=1", status_code=303)

    return router
