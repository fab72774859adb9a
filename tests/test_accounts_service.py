"""The accounts service functions that the API, the CLI and the booking package call directly, and the
access dependency every accounts route takes."""

import hashlib
from datetime import UTC, date, datetime

import pytest

from accounts import audit, passwords
from accounts.api import make_router
from accounts.auth import Authenticator, public
from accounts.calendar_secrets import principal_by_calendar_secret, rotate_calendar_secret
from accounts.model import Principal, Role
from accounts.organizations import create_organization, get_organization, update_organization
from accounts.qualifications import grant_qualification, qualification_expiry, revoke_qualification
from accounts.users import create_user, get_user, update_user
from common.errors import Conflict, Invalid, NotFound
from fabhub.policy import ROLES
from tests.accounts_rig import PASSWORD, make_org, make_user
from tests.http import SECRET

AT = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


async def test_lifecycle_on_both_backends(any_pool):
    async with any_pool.connection() as conn:
        org = await create_organization(
            conn,
            name="靖江精工",
            uscc="91350100m000100y43",
            contact_email="Boss@JJ.cn",
            subsidy_programs=["jingjiang-sme", "jingjiang-sme"],
            at=AT,
            actor="devices.yaml",
        )
        user_id = await create_user(
            conn,
            email="Op@JJ.cn",
            name="操作员",
            role=Role.customer,
            organization_id=org,
            password=PASSWORD,
            at=AT,
            actor="cli",
        )
        await grant_qualification(
            conn, user_id=user_id, device_class="cnc", expires_on=date(2026, 6, 30), at=AT, actor="cli"
        )
        saved = await get_organization(conn, org)
        user = await get_user(conn, user_id)
        expiry = await qualification_expiry(conn, user_id, "cnc")
        entries = await audit.entries(conn)
    assert (saved.uscc, saved.contact_email, saved.subsidy_programs) == (
        "91350100M000100Y43",
        "boss@jj.cn",
        ["jingjiang-sme"],
    )
    assert (user.email, user.role, user.organization_id, user.active) == ("op@jj.cn", Role.customer, org, True)
    assert expiry == date(2026, 6, 30)
    assert [(e.action, e.entity, e.actor, e.actor_id) for e in entries] == [
        ("grant", "qualification", "cli", None),
        ("create", "user", "cli", None),
        ("create", "organization", "devices.yaml", None),
    ]


async def test_conflicts_leave_the_callers_transaction_usable(pool):
    async with pool.connection() as conn, conn.transaction():
        org = await make_org(conn, uscc="91110000600037341L")
        with pytest.raises(Conflict, match="belongs to another organization"):
            await make_org(conn, uscc="91110000600037341L")
        args = {"name": "N", "role": Role.technician, "organization_id": None, "password": PASSWORD, "at": AT}
        await create_user(conn, email="dup@example.com", actor="t", **args)
        with pytest.raises(Conflict, match="in use"):
            await create_user(conn, email="DUP@example.com", actor="t", **args)
        other = await create_user(conn, email="other@example.com", actor="t", **args)
        with pytest.raises(Conflict, match="in use"):
            await update_user(conn, other, {"email": "Dup@Example.com"}, at=AT, actor="t")
        second = await make_org(conn)
        with pytest.raises(Conflict):
            await update_organization(conn, second, {"uscc": "91110000600037341L"}, at=AT, actor="t")
        # still one transaction, still working
        assert (await get_organization(conn, org)).uscc == "91110000600037341L"
    async with pool.connection() as conn:
        assert (await get_user(conn, other)).email == "other@example.com"


async def test_service_refusals(pool):
    async with pool.connection() as conn:
        with pytest.raises(Invalid, match="check character"):
            await create_organization(conn, name="X", uscc="91350100M000100Y44", at=AT, actor="t")
        with pytest.raises(Invalid, match="subsidy program 'Jingjiang SME' is not an id"):
            await create_organization(
                conn, name="X", uscc="91350100M000100Y43", subsidy_programs=["Jingjiang SME"], at=AT, actor="t"
            )
        with pytest.raises(Invalid, match="organization 42 does not exist"):
            await create_user(
                conn, email="c@example.com", name="C", role=Role.customer, organization_id=42, password=PASSWORD,
                at=AT, actor="t",
            )  # fmt: skip
        with pytest.raises(Invalid, match="unknown role 'boss'"):
            await create_user(
                conn, email="c@example.com", name="C", role="boss", organization_id=None, password=PASSWORD,
                at=AT, actor="t",
            )  # fmt: skip
        with pytest.raises(Invalid, match="cannot change id, password_hash"):
            await update_user(conn, 1, {"id": 2, "password_hash": "x"}, at=AT, actor="t")
        with pytest.raises(NotFound, match="no user 77"):
            await grant_qualification(
                conn, user_id=77, device_class="cnc", expires_on=date(2026, 6, 30), at=AT, actor="t"
            )
        with pytest.raises(NotFound, match="no organization 77"):
            await update_organization(conn, 77, {"name": "Y"}, at=AT, actor="t")


async def test_password_is_stored_as_an_argon2_hash(pool):
    user_id = await make_user(pool, Role.admin, email="root@example.com")
    async with pool.connection() as conn:
        (stored,) = await (await conn.execute("SELECT password_hash FROM app_user WHERE id = %s", [user_id])).fetchone()
        (logged,) = await (await conn.execute("SELECT after::text FROM audit_log WHERE entity = 'user'")).fetchone()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert await passwords.verify_password(stored, PASSWORD)
    assert "argon2" not in logged and PASSWORD not in logged


async def test_qualification_grant_renew_revoke(pool):
    user_id = await make_user(pool, Role.customer)
    granter = Principal(user_id, "x@example.com", "X", Role.technician, None)
    async with pool.connection() as conn:
        assert await qualification_expiry(conn, user_id, "cnc") is None
        await grant_qualification(
            conn, user_id=user_id, device_class="cnc", expires_on=date(2026, 4, 1), at=AT, actor=granter
        )
        await grant_qualification(
            conn, user_id=user_id, device_class="cnc", expires_on=date(2026, 9, 1), at=AT, actor="job:import"
        )
        assert await qualification_expiry(conn, user_id, "cnc") == date(2026, 9, 1)
        assert await qualification_expiry(conn, user_id, "robot") is None
        await revoke_qualification(conn, user_id=user_id, device_class="cnc", at=AT, actor="t", reason="test")
        assert await qualification_expiry(conn, user_id, "cnc") is None
        with pytest.raises(NotFound):
            await revoke_qualification(conn, user_id=user_id, device_class="cnc", at=AT, actor="t")
        renewal, first = [e for e in await audit.entries(conn, entity="qualification") if e.action == "grant"]
    assert first.actor_id == user_id and first.after["granted_by"] == user_id
    assert renewal.actor_id is None and renewal.after["granted_by"] is None
    assert renewal.before["expires_on"] == "2026-04-01"


async def test_calendar_secret(pool):
    user_id = await make_user(pool, Role.customer, email="cal@example.com")
    async with pool.connection() as conn:
        secret = await rotate_calendar_secret(conn, user_id)
        (stored,) = await (
            await conn.execute("SELECT calendar_secret_sha256 FROM app_user WHERE id = %s", [user_id])
        ).fetchone()
        assert stored == hashlib.sha256(secret.encode()).digest()
        assert len(secret) >= 40
        principal = await principal_by_calendar_secret(conn, secret)
        assert (principal.id, principal.email, principal.role) == (user_id, "cal@example.com", Role.customer)
        newer = await rotate_calendar_secret(conn, user_id)
        assert newer != secret
        assert await principal_by_calendar_secret(conn, secret) is None
        assert (await principal_by_calendar_secret(conn, newer)).id == user_id
        assert await principal_by_calendar_secret(conn, "") is None
        await update_user(conn, user_id, {"active": False}, at=AT, actor="t")
        assert await principal_by_calendar_secret(conn, newer) is None
        with pytest.raises(NotFound):
            await rotate_calendar_secret(conn, 999_999)


# -- the roles of every accounts route ---------------------------------------------------------------------


def _access(dependant) -> list:
    """The access dependencies found, depth first: auth.caller (carries `.policy`) or public (`.roles`)."""
    found = []
    for dep in dependant.dependencies:
        if hasattr(dep.call, "policy") or hasattr(dep.call, "roles"):
            found.append(dep.call)
        found += _access(dep)
    return found


def test_every_accounts_route_takes_its_roles_from_the_policy():
    """The roles themselves are fabhub/policy.py's (tests/test_authorization.py calls every route as every
    role); here: each route of the router alone has its line there and one access dependency."""
    auth = Authenticator(None, SECRET, lambda: AT, policy=ROLES)  # never called: only the dependencies are read
    router = make_router(None, auth, lambda: AT, {"cnc"}.__contains__, set().__contains__, "/api/v1")
    for route in router.routes:
        for method in route.methods:
            [access] = _access(route.dependant)
            if ROLES[(method, route.path)] is None:
                assert access is public, route.path
            else:
                assert access is auth.caller, route.path
