"""Admins run the SME customers here: find one, register one (its credit code checked in full), edit it, make
it eligible for subsidy programs, require a project or PO reference on its bookings, deactivate it, and see
its users and this year's subsidy against each program's annual cap. Every change goes through
accounts.organizations, which checks and audits it as for the API."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg_pool import AsyncConnectionPool
from starlette.datastructures import FormData

from accounts import organizations, tax_data
from accounts.model import Principal
from accounts.users import list_users
from booking.catalogue import Catalogue
from common.errors import DomainError
from common.http import RowId
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions, field
from oee.invoices import subsidy_use

FIELDS = ("name", "uscc", "contact_name", "contact_phone", "contact_email", *tax_data.FIELDS)


def read_organization(form: FormData) -> dict[str, Any]:
    """The organization form's fields, as accounts.organizations takes them (it checks them)."""
    values: dict[str, Any] = {name: field(form, name, "") for name in FIELDS}
    values["subsidy_programs"] = [p for p in form.getlist("programs") if isinstance(p, str)]
    values["reference_required"] = form.get("reference_required") == "on"
    return values


def make_router(
    pages: Pages, sessions: WebSessions, pool: AsyncConnectionPool, catalogue: Catalogue, clock: Any
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py

    def unknown_programs(request: Request, values: dict[str, Any]) -> list[str]:
        unknown = [p for p in values["subsidy_programs"] if p not in catalogue.programs]
        return [pages.texts(request)("Choose subsidy programs from the list.")] if unknown else []

    async def list_page(
        request: Request, user: Principal, q: str | None, status: int = 200, **extra: Any
    ) -> HTMLResponse:
        async with pool.connection() as conn:
            found = await organizations.search_organizations(conn, (q or "").strip()[:100] or None)
        return pages.render(
            request,
            "admin_orgs.html",
            user,
            status=status,
            q=q or "",
            organizations=found,
            programs=sorted(catalogue.programs.values(), key=lambda p: p.id),
            program_names={p.id: p.name for p in catalogue.programs.values()},
            values=extra.pop("values", {}),
            **extra,
        )

    @router.get("/admin/organizations")
    async def organizations_list(request: Request, user: Visitor, q: str | None = None) -> HTMLResponse:
        return await list_page(request, user, q)

    @router.post("/admin/organizations")
    async def create(request: Request, user: Visitor) -> Response:
        values = read_organization(await sessions.csrf.checked_form(request))
        problems, status = unknown_programs(request, values), 422
        if not problems:
            try:
                async with pool.connection() as conn, conn.transaction():
                    new_id = await organizations.create_organization(conn, **values, at=clock(), actor=user)
                return RedirectResponse(f"/admin/organizations/{new_id}?saved=1", status_code=303)
            except DomainError as exc:
                problems, status = [pages.texts(request).error(exc.detail)], exc.status
        return await list_page(
            request, user, None, status=status, values=values, problems=problems, problem_form="create"
        )

    async def org_page(
        request: Request, user: Principal, organization_id: int, status: int = 200, **extra: Any
    ) -> HTMLResponse:
        year = clock().astimezone(pages.zone).year
        async with pool.connection() as conn:
            try:
                org = await organizations.get_organization(conn, organization_id)
            except DomainError:
                return pages.not_found(request, user)
            members = await list_users(conn, organization_id=organization_id)
            use = await subsidy_use(conn, organization_id, org.subsidy_programs, year)
        return pages.render(
            request,
            "admin_org.html",
            user,
            status=status,
            org=org,
            values=extra.pop("values", org.model_dump()),
            members=members,
            use=use,
            year=year,
            programs=sorted(catalogue.programs.values(), key=lambda p: p.id),
            **extra,
        )

    @router.get("/admin/organizations/{organization_id}")
    async def organization(
        request: Request, user: Visitor, organization_id: RowId, saved: str | None = None
    ) -> HTMLResponse:
        notice = pages.texts(request)("Saved.") if saved else None
        return await org_page(request, user, organization_id, notice=notice)

    @router.post("/admin/organizations/{organization_id}")
    async def update(request: Request, user: Visitor, organization_id: RowId) -> Response:
        """Saves the edit form, or with `active` alone (the deactivate and reactivate buttons) only that."""
        form = await sessions.csrf.checked_form(request)
        changes: dict[str, Any]
        if "active" in form and "name" not in form:
            changes = {"active": form.get("active") == "true"}
        else:
            changes = read_organization(form)
        problems = unknown_programs(request, changes) if "subsidy_programs" in changes else []
        status = 422
        if not problems:
            try:
                async with pool.connection() as conn, conn.transaction():
                    await organizations.update_organization(conn, organization_id, changes, at=clock(), actor=user)
                return RedirectResponse(f"/admin/organizations/{organization_id}?saved=1", status_code=303)
            except DomainError as exc:
                problems, status = [pages.texts(request).error(exc.detail)], exc.status
        kept = {"values": changes} if "name" in changes else {}  # what was typed stays in the form
        return await org_page(
            request, user, organization_id, status=status, problems=problems, problem_form="edit", **kept
        )

    return router
