"""The people who log in. Admins find, create and edit them (role, organization, deactivation), invite them by
email (the person chooses a password through the emailed link; an admin may send a new link until then) and
set a new password for one who lost theirs, which ends that user's sessions; technicians and admins grant,
renew and revoke qualifications per device class, as over the API. accounts.users, accounts.invitations and
accounts.qualifications check and audit every change."""

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg_pool import AsyncConnectionPool
from starlette.datastructures import FormData

from accounts import invitations, qualifications, users
from accounts.model import Principal, Role
from accounts.organizations import list_organizations
from booking.catalogue import Catalogue
from common.errors import DomainError
from common.http import RowId
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions, field


def row_id(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 19 else None


def read_user(form: FormData) -> dict[str, Any]:
    """The user form's fields, as accounts.users takes them (it checks them)."""
    return {
        "email": field(form, "email", ""),
        "name": field(form, "name", ""),
        "role": field(form, "role", ""),
        "organization_id": row_id(field(form, "organization_id", "")),
    }


def make_router(
    pages: Pages, sessions: WebSessions, pool: AsyncConnectionPool, catalogue: Catalogue, clock: Any
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py

    def today() -> date:
        return clock().astimezone(pages.zone).date()

    async def list_page(
        request: Request, user: Principal, query: dict[str, Any], status: int = 200, **extra: Any
    ) -> HTMLResponse:
        role = query.get("role") if query.get("role") in set(Role) else None
        async with pool.connection() as conn:
            found = await users.search_users(
                conn, query.get("q") or None, role=role, organization_id=query.get("organization_id")
            )
            orgs = await list_organizations(conn)
        return pages.render(
            request,
            "admin_users.html",
            user,
            status=status,
            query=query,
            users=found,
            roles=list(Role),
            organizations=orgs,
            org_names={o.id: o.name for o in orgs},
            values=extra.pop("values", {"organization_id": query.get("organization_id")}),
            **extra,
        )

    @router.get("/admin/users")
    async def users_list(
        request: Request, user: Visitor, q: str | None = None, role: str | None = None, organization_id: str = ""
    ) -> HTMLResponse:
        query = {"q": (q or "").strip()[:100], "role": role, "organization_id": row_id(organization_id)}
        return await list_page(request, user, query)

    @router.post("/admin/users")
    async def create(request: Request, user: Visitor) -> Response:
        form = await sessions.csrf.checked_form(request)
        values = read_user(form)
        try:
            async with pool.connection() as conn, conn.transaction():
                new_id = await users.create_user(
                    conn, **values, password=str(form.get("password", "")), at=clock(), actor=user
                )
        except DomainError as exc:
            problems = [pages.texts(request).error(exc.detail)]
            return await list_page(
                request, user, {}, status=exc.status, values=values, problems=problems, problem_form="create"
            )
        return RedirectResponse(f"/admin/users/{new_id}?saved=1", status_code=303)

    @router.post("/admin/users/invite")  # before /admin/users/{user_id}, which would take "invite" for an id
    async def invite(request: Request, user: Visitor) -> Response:
        form = await sessions.csrf.checked_form(request)
        values = read_user(form) | {"language": field(form, "language", "")}
        link = invitations.link_base(str(request.base_url))
        try:
            async with pool.connection() as conn, conn.transaction():
                invited = await invitations.invite(conn, **values, link=link, at=clock(), actor=user)
        except DomainError as exc:
            problems = [pages.texts(request).error(exc.detail)]
            return await list_page(
                request, user, {}, status=exc.status, values=values, problems=problems, problem_form="invite"
            )
        return RedirectResponse(f"/admin/users/{invited.user.id}?invited=1", status_code=303)

    async def user_page(
        request: Request, user: Principal, user_id: int, status: int = 200, **extra: Any
    ) -> HTMLResponse:
        async with pool.connection() as conn:
            try:
                person = await users.get_user(conn, user_id)
            except DomainError:
                return pages.not_found(request, user)
            held = await qualifications.list_qualifications(conn, user_id)
            orgs = await list_organizations(conn)
            invitable, invited_until = await invitations.invitation_state(conn, user_id)
        texts = pages.texts(request)
        classes = {c.id: (c.name_zh or c.name) if texts.lang == "zh" else c.name for c in catalogue.classes.values()}
        return pages.render(
            request,
            "admin_user.html",
            user,
            status=status,
            person=person,
            held=held,
            classes=classes,
            today=today(),
            invitable=invitable,
            invited_until=invited_until,
            now=clock(),
            default_expiry=today() + timedelta(days=365),
            roles=list(Role),
            organizations=orgs,
            org_names={o.id: o.name for o in orgs},
            values=extra.pop("values", person.model_dump()),
            **extra,
        )

    @router.get("/admin/users/{user_id}")
    async def user_detail(
        request: Request, user: Visitor, user_id: RowId, saved: str | None = None, invited: str | None = None
    ) -> HTMLResponse:
        texts = pages.texts(request)
        notice = texts("Saved.") if saved else texts("The invitation is on its way.") if invited else None
        return await user_page(request, user, user_id, notice=notice)

    async def act(
        request: Request, user: Principal, user_id: int, form_name: str, work: Any, done: str = "saved", **kept: Any
    ) -> Response:
        """Runs one change in a transaction: back to the user's page (saying `done`), or the page with the
        problem at the form."""
        try:
            async with pool.connection() as conn, conn.transaction():
                await work(conn)
        except DomainError as exc:
            problems = [pages.texts(request).error(exc.detail)]
            return await user_page(
                request, user, user_id, status=exc.status, problems=problems, problem_form=form_name, **kept
            )
        return RedirectResponse(f"/admin/users/{user_id}?{done}=1", status_code=303)

    @router.post("/admin/users/{user_id}")
    async def update(request: Request, user: Visitor, user_id: RowId) -> Response:
        """The edit form (email, name, role, organization, active)."""
        form = await sessions.csrf.checked_form(request)
        changes = read_user(form) | {"active": form.get("active") == "on"}

        async def work(conn: Any) -> None:
            await users.update_user(conn, user_id, changes, at=clock(), actor=user)

        return await act(request, user, user_id, "edit", work, values=changes)

    @router.post("/admin/users/{user_id}/password")
    async def reset_password(request: Request, user: Visitor, user_id: RowId) -> Response:
        form = await sessions.csrf.checked_form(request)
        password = str(form.get("password", ""))

        async def work(conn: Any) -> None:
            await users.set_password(conn, user_id, password=password, at=clock(), actor=user)

        return await act(request, user, user_id, "password", work)

    @router.post("/admin/users/{user_id}/invite")
    async def reinvite(request: Request, user: Visitor, user_id: RowId) -> Response:
        """A new link for a user who has not chosen a password yet; the previous one stops working."""
        await sessions.csrf.checked_form(request)
        link = invitations.link_base(str(request.base_url))

        async def work(conn: Any) -> None:
            await invitations.reinvite(conn, user_id, link, clock(), user)

        return await act(request, user, user_id, "invite", work, done="invited")

    @router.post("/admin/users/{user_id}/qualifications")
    async def grant(request: Request, user: Visitor, user_id: RowId) -> Response:
        """Grants a class, or renews it with the new expiry (the API's rules: a known class, not in the past)."""
        form = await sessions.csrf.checked_form(request)
        texts = pages.texts(request)
        device_class = field(form, "device_class", "")
        form_name = f"qualification-{device_class}" if field(form, "renew") else "grant"
        try:
            expires_on = date.fromisoformat(field(form, "expires_on", ""))
        except ValueError:
            expires_on = None
        problem = None
        if device_class not in catalogue.classes:
            problem = texts("Choose a class of machines.")
        elif expires_on is None or expires_on.year > 2199:
            problem = texts("Give the last day the qualification holds.")
        elif expires_on < today():
            problem = texts("The expiry date has passed already.")
        if problem is not None or expires_on is None:
            return await user_page(request, user, user_id, status=422, problems=[problem], problem_form=form_name)
        until = expires_on

        async def work(conn: Any) -> None:
            await qualifications.grant_qualification(
                conn, user_id=user_id, device_class=device_class, expires_on=until, at=clock(), actor=user
            )

        return await act(request, user, user_id, form_name, work)

    @router.post("/admin/users/{user_id}/qualifications/{device_class}/revoke")
    async def revoke(request: Request, user: Visitor, user_id: RowId, device_class: str) -> Response:
        form = await sessions.csrf.checked_form(request)
        reason = field(form, "reason", "")[:500].replace("\x00", "") or None

        async def work(conn: Any) -> None:
            await qualifications.revoke_qualification(
                conn, user_id=user_id, device_class=device_class, at=clock(), actor=user, reason=reason
            )

        return await act(request, user, user_id, f"qualification-{device_class}", work)

    return router
