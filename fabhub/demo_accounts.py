"""Demo accounts for `fabhub demo`: one per role and a customer SME qualified for every class, so a visitor
can log in and book at once. Created only by the demo, only when missing, with a password printed on the
banner: never on a real installation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from accounts.model import Role
from accounts.organizations import create_organization, list_organizations
from accounts.qualifications import grant_qualification
from accounts.users import create_user, list_users

PASSWORD = "fabhub-demo-2026"
ACTOR = "demo"
# A real-looking unified social credit code with a valid check character.
ORGANIZATION = ("靖江示例精密机械有限公司", "91321282MA1XDEM00L")


@dataclass(frozen=True, slots=True)
class DemoAccount:
    email: str
    role: Role


ACCOUNTS = (
    DemoAccount("admin@demo.fabhub", Role.admin),
    DemoAccount("technician@demo.fabhub", Role.technician),
    DemoAccount("finance@demo.fabhub", Role.finance),
    DemoAccount("customer@demo.fabhub", Role.customer),
)
NAMES = {Role.admin: "演示管理员", Role.technician: "演示技术员", Role.finance: "演示财务", Role.customer: "演示客户"}


async def ensure_demo_accounts(
    url: str, classes: list[str], programs: list[str], now: datetime, zone: ZoneInfo
) -> tuple[DemoAccount, ...]:
    async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
        name, uscc = ORGANIZATION
        org_id = await ensure_organization(conn, name, uscc, programs, "王经理", now)
        existing = {u.email for u in await list_users(conn)}
        for account in ACCOUNTS:
            if account.email in existing:
                continue
            if account.role is Role.customer:
                await create_customer(conn, account.email, NAMES[account.role], org_id, classes, now, zone)
            else:
                await create_user(
                    conn,
                    email=account.email,
                    name=NAMES[account.role],
                    role=account.role,
                    organization_id=None,
                    password=PASSWORD,
                    at=now,
                    actor=ACTOR,
                )
    return ACCOUNTS


async def ensure_organization(
    conn: psycopg.AsyncConnection, name: str, uscc: str, programs: Sequence[str], contact: str, now: datetime
) -> int:
    """The organization with this credit code, created when missing."""
    org = next((o for o in await list_organizations(conn) if o.uscc == uscc), None)
    if org:
        return org.id
    return await create_organization(
        conn, name=name, uscc=uscc, subsidy_programs=programs, contact_name=contact, at=now, actor=ACTOR
    )


async def create_customer(
    conn: psycopg.AsyncConnection,
    email: str,
    name: str,
    organization_id: int,
    classes: Sequence[str],
    now: datetime,
    zone: ZoneInfo,
) -> int:
    """A customer user qualified for every class for a year, so the demo can book anything for them."""
    user_id = await create_user(
        conn,
        email=email,
        name=name,
        role=Role.customer,
        organization_id=organization_id,
        password=PASSWORD,
        at=now,
        actor=ACTOR,
    )
    expires = (now + timedelta(days=365)).astimezone(zone).date()
    for device_class in classes:
        await grant_qualification(
            conn, user_id=user_id, device_class=device_class, expires_on=expires, at=now, actor=ACTOR
        )
    return user_id
