"""Organizations, users and logins for HTTP tests: one call gives a test the headers of a role."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import httpx
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from accounts.model import Role
from accounts.organizations import create_organization
from accounts.uscc import ALPHABET, check_character
from accounts.users import create_user

PASSWORD = "correct horse battery"
ACTOR = "tests"
_serial = itertools.count(1)


class Clock:
    """A clock for serve(clock=...) that tests move forward: token expiry, login windows, expiry dates."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def valid_uscc() -> str:
    """A random code with the right check character (region and type digits are not checked)."""
    first17 = "".join(random.choices(ALPHABET, k=17))
    return first17 + check_character(first17)


async def make_org(
    conn_or_pool: AsyncConnection | AsyncConnectionPool,
    name: str = "靖江精工机械有限公司",
    uscc: str | None = None,
    programs: tuple[str, ...] | list[str] = (),
) -> int:
    if isinstance(conn_or_pool, AsyncConnectionPool):
        async with conn_or_pool.connection() as conn:
            return await make_org(conn, name, uscc, programs)
    return await create_organization(
        conn_or_pool,
        name=name,
        uscc=uscc or valid_uscc(),
        subsidy_programs=programs,
        at=datetime.now(UTC),
        actor=ACTOR,
    )


async def make_user(
    pool: AsyncConnectionPool,
    role: Role | str,
    org_id: int | None = None,
    email: str | None = None,
    password: str = PASSWORD,
) -> int:
    """A customer without an org_id gets an organization of its own."""
    role = Role(role)
    if role is Role.customer and org_id is None:
        org_id = await make_org(pool)
    async with pool.connection() as conn:
        return await create_user(
            conn,
            email=email or f"{role}-{next(_serial)}@example.com",
            name=f"Test {role}",
            role=role,
            organization_id=org_id,
            password=password,
            at=datetime.now(UTC),
            actor=ACTOR,
        )


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    r = await client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def as_role(
    pool: AsyncConnectionPool, client: httpx.AsyncClient, role: Role | str, org_id: int | None = None
) -> dict[str, str]:
    email = f"{Role(role)}-{next(_serial)}@example.com"
    await make_user(pool, role, org_id, email)
    return await login(client, email)
