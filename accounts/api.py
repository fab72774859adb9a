"""HTTP routes of the accounts domain: login, the caller's own profile, organizations, users,
qualifications and the audit log. Every route takes its caller through `auth.caller` (roles: fabhub/policy.py); domain
errors become problem details in the app's one handler (common.problems)."""

# No `from __future__ import annotations`: FastAPI must resolve the dependency aliases made in make_router.

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.security import OAuth2PasswordRequestForm
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field, model_validator

from accounts import checks, invitations, organizations, qualifications, tokens, users
from accounts.audit import AuditEntry
from accounts.auth import Authenticator, client_address, public
from accounts.invitations import Invited
from accounts.model import Principal, Role
from accounts.organizations import Organization
from accounts.qualifications import Qualification
from accounts.sqlfiles import QUERIES
from accounts.users import User
from common.errors import DomainError, Invalid, NotFound, Unauthorized
from common.http import Instant
from common.paging import Key, Listing, Page, Paging, fetch_page

# The center's zone when the app passes none (FABHUB_TIMEZONE's default): qualifications expire at its midnight.
CENTER_ZONE = ZoneInfo("Asia/Shanghai")
MAX_ID = 2**63 - 1
AUDIT_ENTITY = r"^[a-z][a-z0-9_.-]{0,63}$"
AUDIT_ENTITY_ID = r"^[^\x00]{1,128}$"


class TokenOut(BaseModel):
    access_token: str
    token_type: str
    expires_in: int


class Me(BaseModel):
    id: int
    email: str
    name: str
    role: Role
    organization_id: int | None


class Input(BaseModel):
    """A request body: a misspelt field is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Patch(Input):
    """A partial update: only the fields sent change. Sending null is refused except for NULLABLE fields, so
    a null never quietly means 'leave as is'."""

    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_nulls(self) -> "Patch":
        nulls = sorted(f for f in self.model_fields_set if getattr(self, f) is None and f not in self.NULLABLE)
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


# Lengths here only bound the input; the service modules check the rules and give the reasons.
Name = Annotated[str, Field(max_length=checks.NAME_MAX)]
Email = Annotated[str, Field(max_length=checks.EMAIL_MAX)]
Phone = Annotated[str, Field(max_length=checks.PHONE_MAX)]
CreditCode = Annotated[str, Field(max_length=64, description="unified social credit code (18 characters)")]
Programs = Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=20)]
Password = Annotated[str, Field(description="8 to 128 characters, no leading or trailing spaces")]
OrganizationId = Annotated[int, Field(gt=0, le=MAX_ID)]


TaxpayerType = Annotated[
    Literal["", "general", "small_scale"],
    Field(description="general (一般纳税人), small_scale (小规模纳税人), or empty"),
]
Address = Annotated[str, Field(max_length=200, description="as printed on its tax invoices")]
InvoicePhone = Annotated[str, Field(max_length=30, description="digits, dashes and spaces, as printed on invoices")]
BankName = Annotated[str, Field(max_length=100)]
BankAccount = Annotated[str, Field(max_length=60, description="8 to 32 digits (spaces between groups dropped)")]


class OrganizationIn(Input):
    name: Name
    uscc: CreditCode
    contact_name: Name = ""
    contact_phone: Phone = ""
    contact_email: Email = ""
    subsidy_programs: Programs = []
    reference_required: bool = Field(False, description="every booking needs a project or purchase-order reference")
    taxpayer_type: TaxpayerType = ""
    invoice_address: Address = ""
    invoice_phone: InvoicePhone = ""
    bank_name: BankName = ""
    bank_account: BankAccount = ""


class OrganizationPatch(Patch):
    name: Name | None = None
    uscc: CreditCode | None = None
    contact_name: Name | None = None
    contact_phone: Phone | None = None
    contact_email: Email | None = None
    subsidy_programs: Programs | None = None
    active: bool | None = Field(None, description="false locks the organization's users out at once")
    reference_required: bool | None = None
    taxpayer_type: TaxpayerType | None = None
    invoice_address: Address | None = None
    invoice_phone: InvoicePhone | None = None
    bank_name: BankName | None = None
    bank_account: BankAccount | None = None


class UserIn(Input):
    email: Email
    name: Name
    role: Role
    organization_id: OrganizationId | None = Field(None, description="required for a customer, empty for staff")
    password: Password


class InvitationIn(Input):
    email: Email
    name: Name
    role: Role
    organization_id: OrganizationId | None = Field(None, description="required for a customer, empty for staff")
    language: Literal["zh-CN", "en"] = Field("zh-CN", description="the language of the email")


class AcceptIn(Input):
    token: str = Field(pattern=tokens.LINK_TOKEN, description="the token at the end of the emailed link")
    password: Password


class UserPatch(Patch):
    NULLABLE: ClassVar[frozenset[str]] = frozenset({"organization_id"})

    email: Email | None = None
    name: Name | None = None
    role: Role | None = None
    organization_id: OrganizationId | None = None
    active: bool | None = Field(None, description="false ends the user's access at once, tokens included")
    password: Password | None = None


class PasswordChange(Input):
    current_password: str
    new_password: Password


class QualificationIn(Input):
    expires_on: date = Field(description="the last day the qualification holds, in the center's calendar")


class QualificationOut(Qualification):
    expired: bool = Field(description="expires_on is before today in the center's time zone")


ORGANIZATIONS = Listing("organizations", (Key("name", "text"), Key("id", "int")))
USERS = Listing("users", (Key("id", "int"),))
# Newest first; entries are never changed, so `updated_since` reads their time.
AUDIT = Listing("audit", (Key("id", "int", descending=True),), updated="at")


def make_router(
    pool: AsyncConnectionPool,
    auth: Authenticator,
    clock: Callable[[], datetime],
    known_class: Callable[[str], bool],
    known_program: Callable[[str], bool],
    prefix: str,
    *,
    zone: ZoneInfo = CENTER_ZONE,
) -> APIRouter:
    router = APIRouter(tags=["accounts"])
    Caller = Annotated[Principal, Depends(auth.caller)]  # roles: fabhub/policy.py
    OrgId = Annotated[int, Path(gt=0, le=MAX_ID)]
    UserId = Annotated[int, Path(gt=0, le=MAX_ID)]
    DeviceClass = Annotated[str, Path(pattern=checks.ID.pattern, description="a device class of devices.yaml")]

    def today() -> date:
        return clock().astimezone(zone).date()

    def check_programs(programs: list[str] | None) -> None:
        checks.known_programs(programs, known_program)

    def visible_user(principal: Principal, user_id: int) -> None:
        """Staff see every user, others only themselves; the rest looks missing, not forbidden."""
        if not principal.is_staff and principal.id != user_id:
            raise users.missing(user_id)

    # -- authentication ----------------------------------------------------------------------------------

    @router.post(
        f"{prefix}/auth/token",
        dependencies=[Depends(public)],
        responses={401: {"description": "wrong email or password"}, 429: {"description": "too many failures"}},
        summary="Log in for an access token",
    )
    async def login(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenOut:
        """OAuth2 password flow: the email as username. Failures are limited per account and per address."""
        token = await auth.login(form.username, form.password, client_address(request))
        return TokenOut(access_token=token.access_token, token_type=token.token_type, expires_in=token.expires_in)

    @router.get(f"{prefix}/me", summary="Show who I am")
    async def me(principal: Caller) -> Me:
        return Me(
            id=principal.id,
            email=principal.email,
            name=principal.name,
            role=principal.role,
            organization_id=principal.organization_id,
        )

    @router.post(
        f"{prefix}/me/password",
        status_code=204,
        responses={400: {"description": "the current password is wrong"}, 429: {"description": "too many failures"}},
        summary="Change my password",
    )
    async def change_my_password(request: Request, principal: Caller, body: PasswordChange) -> None:
        """Needs the current password, counted against the login limits like a failed login."""
        try:
            await auth.confirm_password(principal, body.current_password, client_address(request))
        except Unauthorized:
            raise DomainError("current_password is wrong") from None
        async with pool.connection() as conn, conn.transaction():
            await users.set_password(conn, principal.id, password=body.new_password, at=clock(), actor=principal)

    # -- organizations -----------------------------------------------------------------------------------

    @router.get(f"{prefix}/organizations", summary="List the organizations")
    async def list_organizations(principal: Caller, page: Paging) -> Page[Organization]:
        """Staff see every organization, by name; a customer sees its own."""
        own = None if principal.is_staff else principal.organization_id
        async with pool.connection() as conn:
            return await fetch_page(conn, ORGANIZATIONS, QUERIES.organizations.sql, {"id": own}, page, Organization)

    @router.post(
        f"{prefix}/organizations",
        status_code=201,
        summary="Create an organization",
        responses={409: {"description": "the credit code (USCC) is taken"}},
    )
    async def create_organization(principal: Caller, body: OrganizationIn) -> Organization:
        check_programs(body.subsidy_programs)
        async with pool.connection() as conn, conn.transaction():
            new_id = await organizations.create_organization(conn, **body.model_dump(), at=clock(), actor=principal)
            return await organizations.get_organization(conn, new_id)

    @router.get(f"{prefix}/organizations/{{organization_id}}", summary="Show an organization")
    async def get_organization(principal: Caller, organization_id: OrgId) -> Organization:
        if not principal.sees_organization(organization_id):
            raise organizations.missing(organization_id)
        async with pool.connection() as conn:
            return await organizations.get_organization(conn, organization_id)

    @router.patch(
        f"{prefix}/organizations/{{organization_id}}",
        summary="Change an organization",
        responses={409: {"description": "the credit code (USCC) is taken"}},
    )
    async def update_organization(principal: Caller, organization_id: OrgId, body: OrganizationPatch) -> Organization:
        check_programs(body.subsidy_programs)
        async with pool.connection() as conn, conn.transaction():
            return await organizations.update_organization(
                conn, organization_id, body.changes(), at=clock(), actor=principal
            )

    # -- users -------------------------------------------------------------------------------------------

    @router.get(f"{prefix}/users", summary="List the users")
    async def list_users(
        principal: Caller, page: Paging, organization_id: Annotated[int | None, Query(gt=0, le=MAX_ID)] = None
    ) -> Page[User]:
        """In the order they were created."""
        async with pool.connection() as conn:
            return await fetch_page(conn, USERS, QUERIES.users.sql, {"organization_id": organization_id}, page, User)

    @router.post(
        f"{prefix}/users",
        status_code=201,
        summary="Create a user",
        responses={409: {"description": "the email is taken"}},
    )
    async def create_user(principal: Caller, body: UserIn) -> User:
        async with pool.connection() as conn, conn.transaction():
            new_id = await users.create_user(conn, **body.model_dump(), at=clock(), actor=principal)
            return await users.get_user(conn, new_id)

    @router.post(
        f"{prefix}/invitations",
        status_code=201,
        responses={409: {"description": "the email is taken"}},
        summary="Invite a new user by email",
    )
    async def invite_user(request: Request, principal: Caller, body: InvitationIn) -> Invited:
        """Creates the user without a password and emails a link (valid 7 days, used once) where the person
        chooses one."""
        link = invitations.link_base(str(request.base_url))
        async with pool.connection() as conn, conn.transaction():
            return await invitations.invite(conn, **body.model_dump(), link=link, at=clock(), actor=principal)

    @router.post(
        f"{prefix}/invitations/accept",
        status_code=204,
        dependencies=[Depends(public)],
        responses={404: {"description": "the link is used, replaced, expired or unknown"}},
        summary="Accept an invitation and choose a password",
    )
    async def accept_invitation(body: AcceptIn) -> None:
        """The emailed link's token and the password the person chose; they then log in with it."""
        async with pool.connection() as conn, conn.transaction():
            await invitations.accept(conn, body.token, body.password, clock())

    @router.post(
        f"{prefix}/users/{{user_id}}/invitation",
        responses={409: {"description": "the user has a password already, or is deactivated"}},
        summary="Send a user a new invitation link",
    )
    async def reinvite_user(request: Request, principal: Caller, user_id: UserId) -> Invited:
        """A new link for a user who has not chosen a password yet; the previous link stops working."""
        link = invitations.link_base(str(request.base_url))
        async with pool.connection() as conn, conn.transaction():
            return await invitations.reinvite(conn, user_id, link, clock(), principal)

    @router.get(f"{prefix}/users/{{user_id}}", summary="Show a user")
    async def get_user(principal: Caller, user_id: UserId) -> User:
        visible_user(principal, user_id)
        async with pool.connection() as conn:
            return await users.get_user(conn, user_id)

    @router.patch(
        f"{prefix}/users/{{user_id}}", summary="Change a user", responses={409: {"description": "the email is taken"}}
    )
    async def update_user(principal: Caller, user_id: UserId, body: UserPatch) -> User:
        """A new role or deactivation applies to the user's existing tokens at their next request."""
        async with pool.connection() as conn, conn.transaction():
            return await users.update_user(conn, user_id, body.changes(), at=clock(), actor=principal)

    # -- qualifications ----------------------------------------------------------------------------------

    @router.get(f"{prefix}/users/{{user_id}}/qualifications", summary="List a user's machine qualifications")
    async def list_qualifications(principal: Caller, user_id: UserId) -> list[QualificationOut]:
        visible_user(principal, user_id)
        async with pool.connection() as conn:
            await users.get_user(conn, user_id)
            held = await qualifications.list_qualifications(conn, user_id)
        now = today()
        return [QualificationOut(**q.model_dump(), expired=q.expires_on < now) for q in held]

    @router.put(
        f"{prefix}/users/{{user_id}}/qualifications/{{device_class}}", summary="Qualify a user for a machine class"
    )
    async def grant_qualification(
        principal: Caller, user_id: UserId, device_class: DeviceClass, body: QualificationIn
    ) -> QualificationOut:
        """Grants the class, or renews it with the new expiry."""
        if not known_class(device_class):
            raise NotFound(f"unknown device class {device_class!r}")
        now = today()
        if body.expires_on < now:
            raise Invalid(f"expires_on {body.expires_on} is in the past: today is {now} at the center")
        at = clock()
        async with pool.connection() as conn, conn.transaction():
            await qualifications.grant_qualification(
                conn, user_id=user_id, device_class=device_class, expires_on=body.expires_on, at=at, actor=principal
            )
        return QualificationOut(
            device_class=device_class, expires_on=body.expires_on, granted_by=principal.id, granted_at=at, expired=False
        )

    @router.delete(
        f"{prefix}/users/{{user_id}}/qualifications/{{device_class}}",
        status_code=204,
        summary="Revoke a user's qualification",
    )
    async def revoke_qualification(
        principal: Caller,
        user_id: UserId,
        device_class: DeviceClass,
        reason: Annotated[str | None, Query(max_length=500, description="kept in the audit log")] = None,
    ) -> None:
        """Works for a class no longer in devices.yaml too, so stale qualifications can be cleared."""
        async with pool.connection() as conn, conn.transaction():
            await qualifications.revoke_qualification(
                conn, user_id=user_id, device_class=device_class, at=clock(), actor=principal, reason=reason
            )

    # -- audit log ---------------------------------------------------------------------------------------

    @router.get(f"{prefix}/audit", summary="Read the audit log")
    async def audit_log(
        principal: Caller,
        page: Paging,
        entity: Annotated[
            str | None, Query(pattern=AUDIT_ENTITY, description="organization, user, qualification, …")
        ] = None,
        entity_id: Annotated[str | None, Query(pattern=AUDIT_ENTITY_ID)] = None,
        actor: Annotated[str | None, Query(pattern=AUDIT_ENTITY_ID, description="part of the actor's email")] = None,
        since: Annotated[Instant | None, Query(description="entries at or after")] = None,
        until: Annotated[Instant | None, Query(description="entries before")] = None,
    ) -> Page[AuditEntry]:
        """Newest first."""
        params = {
            "entity": entity,
            "entity_id": entity_id,
            "actor": actor,
            "since": since,
            "until": until,
            "before_id": None,
        }
        async with pool.connection() as conn:
            return await fetch_page(conn, AUDIT, QUERIES.audit_entries.sql, params, page, AuditEntry)

    return router
