"""Users: the people who log in. Customers belong to an SME organization, staff to the center itself; the
password is stored only as an argon2 hash and never enters the audit log."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from pydantic import BaseModel

from accounts import audit, checks, passwords
from accounts.model import Principal, Role
from accounts.sqlfiles import QUERIES
from common.errors import Conflict, Invalid, NotFound
from common.rows import from_row, unique_or_conflict
from common.times import Stamp

ENTITY = "user"
EDITABLE = frozenset({"email", "name", "role", "organization_id", "active", "password"})


class User(BaseModel):
    id: int
    email: str
    name: str
    role: Role
    organization_id: int | None
    active: bool
    created_at: Stamp
    updated_at: Stamp


async def create_user(
    conn: AsyncConnection,
    *,
    email: str,
    name: str,
    role: Role,
    organization_id: int | None,
    password: str,
    at: datetime,
    actor: Principal | str,
) -> int:
    # The account's own problems first (email, name, role, organization), the password's last.
    checks.email(email)
    checks.name(name, "a user's name")
    await check_membership(conn, parse_role(role), organization_id)
    hashed = await _hash(password)
    return await add_user(
        conn,
        email=email,
        name=name,
        role=role,
        organization_id=organization_id,
        password_hash=hashed,
        at=at,
        actor=actor,
    )


async def add_user(
    conn: AsyncConnection,
    *,
    email: str,
    name: str,
    role: Role,
    organization_id: int | None,
    password_hash: str | None,
    at: datetime,
    actor: Principal | str,
) -> int:
    """A user whose password was hashed already (a registration's first user chose it when registering), or
    None: an invited user, who chooses one through the emailed link."""
    email = checks.email(email)
    name = checks.name(name, "a user's name")
    role = parse_role(role)
    await check_membership(conn, role, organization_id)
    row = await QUERIES.insert_user(
        conn,
        email=email,
        name=name,
        role=role,
        organization_id=organization_id,
        password_hash=password_hash,
        at=at,
    )
    if row is None:
        raise Conflict(email_taken(email))
    created = await get_user(conn, row[0])
    await audit.record(conn, at, actor, "create", ENTITY, created.id, after=created)
    return created.id


async def add_passwordless_user(
    conn: AsyncConnection,
    *,
    email: str,
    name: str,
    role: Role,
    organization_id: int | None,
    at: datetime,
    actor: Principal | str,
) -> int:
    """An account no password verifies against: an invited person's until they choose one through the emailed
    link, an API key's service account for good."""
    return await add_user(
        conn, email=email, name=name, role=role, organization_id=organization_id, password_hash=None, at=at, actor=actor
    )


async def get_user(conn: AsyncConnection, user_id: int) -> User:
    row = await QUERIES.user(conn, id=user_id)
    if row is None:
        raise missing(user_id)
    return from_row(User, row)


async def list_users(conn: AsyncConnection, *, organization_id: int | None = None) -> list[User]:
    return [from_row(User, row) async for row in QUERIES.users(conn, organization_id=organization_id)]


async def search_users(
    conn: AsyncConnection,
    text: str | None,
    *,
    role: Role | None = None,
    organization_id: int | None = None,
    limit: int = 200,
) -> list[User]:
    """Users whose email or name holds `text` (any case), newest first."""
    rows = QUERIES.search_users(conn, q=text or None, role=role, organization_id=organization_id, limit=limit)
    return [from_row(User, row) async for row in rows]


async def update_user(
    conn: AsyncConnection,
    user_id: int,
    changes: Mapping[str, Any],
    *,
    at: datetime,
    actor: Principal | str,
) -> User:
    """A partial update: `changes` holds only the fields to change (names from EDITABLE). A new role or
    organization applies to the user's current token at its next request, since tokens name only the user."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise Invalid(f"cannot change {', '.join(sorted(unknown))} of a user")
    row = await QUERIES.user_for_update(conn, id=user_id)
    if row is None:
        raise missing(user_id)
    before = from_row(User, row)
    merged = before.model_dump(include=set(EDITABLE)) | {k: v for k, v in changes.items() if k != "password"}
    merged.update(email=checks.email(merged["email"]), name=checks.name(merged["name"], "a user's name"))
    merged["role"] = parse_role(merged["role"])
    demoted = merged["role"] is not Role.admin or not merged["active"]
    if isinstance(actor, Principal) and actor.id == user_id and before.role is Role.admin and demoted:
        raise Invalid("you cannot take away your own admin access; another admin (or `fabhub users`) can")
    if (merged["role"], merged["organization_id"]) != (before.role, before.organization_id):
        await check_membership(conn, merged["role"], merged["organization_id"])
    if "password" in changes:
        await set_password(conn, user_id, password=changes["password"], at=at, actor=actor)
    if merged == before.model_dump(include=set(EDITABLE)):
        return before
    async with unique_or_conflict(conn, email_taken(merged["email"])):
        await QUERIES.update_user(conn, id=user_id, **merged)
    after = await get_user(conn, user_id)
    await audit.record(conn, at, actor, "update", ENTITY, user_id, before=before, after=after)
    return after


async def set_password(
    conn: AsyncConnection, user_id: int, *, password: str, at: datetime, actor: Principal | str
) -> None:
    """Audited as the fact of a change only: neither password nor hash is written to the log. A new password
    also ends the calendar feed URL and every token issued before it: whoever had the old credentials may
    have had those too. It ends an open invitation as well: its link would set a password over this one."""
    if not await QUERIES.set_password_hash(conn, id=user_id, password_hash=await _hash(password)):
        raise missing(user_id)
    await QUERIES.drop_invitation(conn, user_id=user_id)
    await QUERIES.set_calendar_secret(conn, id=user_id, digest=None)
    await QUERIES.end_sessions(conn, id=user_id, at=at)
    await audit.record(conn, at, actor, "password", ENTITY, user_id)


async def active_principal(
    conn: AsyncConnection, user_id: int, jti: str | None = None, issued_at: datetime | None = None
) -> Principal | None:
    """Who the user is acting as now, or None once the account or its organization is deactivated, the token
    `jti` was revoked, or the password changed after the token was issued."""
    row = await QUERIES.principal(conn, id=user_id, jti=jti, issued_at=issued_at)
    if row is None:
        return None
    user_id, email, name, role, organization_id = row
    return Principal(user_id, email, name, Role(role), organization_id)


def missing(user_id: int) -> NotFound:
    """The one answer for a user that does not exist and for one the caller may not see."""
    return NotFound(f"no user {user_id}")


async def check_membership(conn: AsyncConnection, role: Role, organization_id: int | None) -> None:
    if role is Role.customer:
        if organization_id is None:
            raise Invalid("a customer belongs to an organization: give its organization_id")
        if await QUERIES.organization(conn, id=organization_id) is None:
            raise Invalid(f"organization {organization_id} does not exist")
    elif organization_id is not None:
        raise Invalid(f"a {role} works for the center and belongs to no organization: leave organization_id empty")


def parse_role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise Invalid(f"unknown role {value!r}; roles are {', '.join(Role)}") from None


async def _hash(password: str) -> str:
    try:
        return await passwords.hash_password(password)
    except passwords.WeakPassword as exc:
        raise Invalid(str(exc)) from None


def email_taken(email: str) -> str:
    return f"the email {email} is in use by another account already"
