"""HTTP routes of self-registration: the public form (multipart, with the licence file) and confirmation,
and the admins' review: list, read, download the licence, approve or refuse."""

# No `from __future__ import annotations`: FastAPI must resolve the dependency alias made in make_router.

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from accounts import checks, registration, tokens
from accounts.auth import Authenticator, client_address, public
from accounts.model import Principal
from accounts.registration import Application, Licences, Registration
from common.http import RowId, Text
from common.paging import Page, Paging

CONFIRM_PAGE = "/register/confirm"  # the page the emailed link opens (fabhub/web)


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(pattern=tokens.LINK_TOKEN)


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subsidy_programs: list[Annotated[str, Field(max_length=64)]] = Field([], max_length=20)


class RefuseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Text = Field(min_length=3, max_length=500)


def make_router(
    pool: AsyncConnectionPool,
    auth: Authenticator,
    licences: Licences,
    known_program: Callable[[str], bool],
    clock: Callable[[], datetime],
    prefix: str,
) -> APIRouter:
    router = APIRouter(tags=["registration"])
    Caller = Annotated[Principal, Depends(auth.caller)]  # roles: fabhub/policy.py
    Field200 = Annotated[str, Form(max_length=200)]

    @router.post(
        f"{prefix}/registrations",
        status_code=202,
        dependencies=[Depends(public)],
        summary="Register a company",
        responses={
            409: {"description": "the credit code or the email is registered already"},
            429: {"description": "too many registrations from this address or with this email"},
        },
    )
    async def register(
        request: Request,
        organization_name: Field200,
        uscc: Annotated[str, Form(max_length=64)],
        contact_name: Field200,
        contact_phone: Annotated[str, Form(max_length=50)],
        contact_email: Annotated[str, Form(max_length=254)],
        password: Annotated[str, Form(max_length=128)],
        licence: Annotated[UploadFile, File(description="the business licence: PDF, JPG or PNG, at most 10 MB")],
        language: Annotated[Literal["zh-CN", "en"], Form()] = "zh-CN",
    ) -> Registration:
        """Register a company. Nothing can be booked yet: the contact confirms the email from the message sent
        now, then an admin approves or refuses. 429 past the per-address and per-email limits."""
        application = Application(
            organization_name, uscc, contact_name, contact_phone, contact_email, password, language
        )
        content = await licence.read(registration.MAX_LICENCE_BYTES + 1)
        confirm_url = str(request.base_url).rstrip("/") + CONFIRM_PAGE
        async with pool.connection() as conn, conn.transaction():
            return await registration.submit(
                conn, application, content, licences, client_address(request), confirm_url, clock()
            )

    @router.post(
        f"{prefix}/registrations/confirm",
        dependencies=[Depends(public)],
        responses={404: {}},
        summary="Confirm a registration's email",
    )
    async def confirm(body: ConfirmIn) -> Registration:
        """The emailed link's token; the registration then awaits an admin's decision."""
        async with pool.connection() as conn, conn.transaction():
            return await registration.confirm(conn, body.token, clock())

    @router.get(f"{prefix}/registrations", summary="List the registrations")
    async def registrations(
        principal: Caller,
        page: Paging,
        status: Annotated[Literal["unconfirmed", "pending", "approved", "refused"] | None, Query()] = None,
    ) -> Page[Registration]:
        """Newest first."""
        async with pool.connection() as conn:
            return await registration.listing(conn, page, status)

    @router.get(f"{prefix}/registrations/{{registration_id}}", responses={404: {}}, summary="Show a registration")
    async def one(principal: Caller, registration_id: RowId) -> Registration:
        async with pool.connection() as conn:
            return await registration.get(conn, registration_id)

    @router.get(
        f"{prefix}/registrations/{{registration_id}}/licence",
        response_class=FileResponse,
        summary="Download a registration's business licence",
    )
    async def licence_file(principal: Caller, registration_id: RowId) -> FileResponse:
        async with pool.connection() as conn:
            found = await registration.get(conn, registration_id)
        path = licences.path(found.licence_sha256, found.licence_type)
        name = f"licence-{found.uscc}.{path.suffix.lstrip('.')}"
        return FileResponse(path, media_type=found.licence_type, filename=name)

    @router.post(
        f"{prefix}/registrations/{{registration_id}}/approve",
        responses={404: {}, 409: {}},
        summary="Approve a registration",
    )
    async def approve(principal: Caller, registration_id: RowId, body: ApproveIn) -> Registration:
        """Creates the organization (eligible for the programs given) and its first user, who logs in with the
        password chosen when registering."""
        checks.known_programs(body.subsidy_programs, known_program)
        async with pool.connection() as conn, conn.transaction():
            return await registration.approve(conn, registration_id, body.subsidy_programs, principal, clock())

    @router.post(
        f"{prefix}/registrations/{{registration_id}}/refuse",
        responses={404: {}, 409: {}},
        summary="Refuse a registration",
    )
    async def refuse(principal: Caller, registration_id: RowId, body: RefuseIn) -> Registration:
        async with pool.connection() as conn, conn.transaction():
            return await registration.refuse(conn, registration_id, body.reason, principal, clock())

    return router
