"""A center to book in: the real app on a fixed clock, a customer per organization qualified for every class."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from psycopg_pool import AsyncConnectionPool

from accounts.model import Role
from accounts.qualifications import grant_qualification
from tests.accounts_rig import ACTOR, login, make_org, make_user

ZONE = ZoneInfo("Asia/Shanghai")
# A Monday; the center opens 08:00-20:00 on weekdays and 09:00-17:00 on Saturdays.
NOW = datetime(2027, 3, 1, 7, 0, tzinfo=ZONE)


def local(day: int, hour: float) -> datetime:
    """Day offset from NOW's date, local hour (may be fractional)."""
    return datetime(2027, 3, 1, tzinfo=ZONE) + timedelta(days=day, hours=hour)


def slot(day: int, start: float, end: float, **extra) -> dict:
    return {"start": local(day, start).isoformat(), "end": local(day, end).isoformat(), **extra}


@dataclass
class Customer:
    user_id: int
    org_id: int
    headers: dict[str, str] = field(default_factory=dict)
    email: str = ""


async def customer(
    pool: AsyncConnectionPool,
    client: httpx.AsyncClient,
    programs: tuple[str, ...] = (),
    classes: tuple[str, ...] = ("cnc", "robot", "printer"),
    qualified_until: date = date(2027, 12, 31),
    org_id: int | None = None,
) -> Customer:
    org_id = org_id or await make_org(pool, programs=programs)
    email = f"booker-{org_id}-{datetime.now().timestamp()}@example.com"
    user_id = await make_user(pool, Role.customer, org_id, email)
    async with pool.connection() as conn:
        for cls in classes:
            await grant_qualification(
                conn, user_id=user_id, device_class=cls, expires_on=qualified_until, at=NOW, actor=ACTOR
            )
    return Customer(user_id, org_id, await login(client, email), email)
