"""A month of history for `fabhub demo`, so every page has something to show on the first visit: the month
of `fabhub.demo_plan` (last month and this one up to yesterday, every machine, several SMEs) written the way
the center would have lived it. Bookings go through the booking domain (created with an override reason,
one cancelled late), maintenance windows through the maintenance domain, down time reasons through the
down-time domain, states and samples through the telemetry writer in one batch; the lifecycle then checks
in, completes or marks no-shows by its own rules, so finance can draft last month at once. Two bookings of
the demo SME are under way now on the simulated machines. Only the demo's own embedded database gets it,
once."""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from accounts.model import Principal, Role
from accounts.users import list_users
from booking import lifecycle, maintenance
from booking.bookings import BookingRequest, Bookings
from booking.catalogue import Catalogue, sync
from fabhub.catalogue import catalogue_from, oee_facts
from fabhub.demo_accounts import create_customer, ensure_organization
from fabhub.demo_plan import DEMO_SME, SEED, SMES, Plan, Session, plan_month
from fabhub.demo_samples import energy, parts, state_changes
from fabhub.devices import DeviceFile
from oee import downtime
from oee.invoices import first_of_month
from telemetry import BatchWriter, Sample
from telemetry.activity import activity_after_start

ACTOR_REASON = "demo history"
NOW_HOURS = (("cnc-01", 3), ("printer-01", 4))


async def ensure_history(
    pool: AsyncConnectionPool,
    devices: DeviceFile,
    zone: ZoneInfo,
    now: datetime,
    admin: Principal,
    customer_user_id: int,
    organization_id: int,
) -> bool:
    """Returns whether it wrote the history (False when the demo SME has bookings already)."""
    catalogue = catalogue_from(devices)
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT EXISTS (SELECT 1 FROM booking WHERE organization_id = %s)", (organization_id,))
        row = await cur.fetchone()
        assert row is not None  # EXISTS always answers
        if row[0]:
            return False
        async with conn.transaction():
            await sync(conn, catalogue, now)
            users = {DEMO_SME: customer_user_id}
            existing = {u.email: u.id for u in await list_users(conn)}  # a first start that broke off midway
            for sme in SMES:
                org = await ensure_organization(conn, sme.name, sme.uscc, sme.programs, sme.contact, now)
                email = f"{sme.key}@sme.demo.fabhub"
                users[sme.key] = existing.get(email) or await create_customer(
                    conn, email, sme.contact, org, list(catalogue.classes), now, zone
                )
    today = now.astimezone(zone).date()
    ids = [d.id for d in catalogue.devices.values() if not d.retired]
    plan = plan_month(first_of_month(first_of_month(today) - timedelta(days=1)), today, zone, ids)
    rng = random.Random(SEED)
    changes = state_changes(plan, ids, datetime.combine(today, time(), zone), zone)
    samples = [Sample(at, device, "state", state) for device, rows in changes.items() for at, state in rows]
    ideal, _, facts = oee_facts(devices)
    samples += parts(plan, ideal, rng)
    for device, rows in changes.items():
        samples += energy(facts.sources.get(device, (device,)), catalogue.devices[device].class_id, rows, rng)
    await BatchWriter(pool, clock=lambda: now).write_batch(samples)
    async with pool.connection() as conn:
        for window in plan.maintenance:  # decided a week ahead, as technicians do
            await maintenance.create(
                conn,
                admin,
                window.device,
                window.start,
                window.end,
                window.reason,
                False,
                window.start - timedelta(days=7),
            )
        for session in plan.sessions + _under_way(catalogue, zone, now):
            async with conn.transaction():
                await _book(conn, pool, catalogue, zone, now, admin, users[session.sme], session)
        for _ in range(2):  # check in (or mark the no-show), then complete
            async with conn.transaction():
                await lifecycle.advance(conn, now, catalogue, zone, activity_after_start)
        await _explain(conn, plan, admin, now)
    return True


async def _book(
    conn: AsyncConnection,
    pool: AsyncConnectionPool,
    catalogue: Catalogue,
    zone: ZoneInfo,
    now: datetime,
    admin: Principal,
    user_id: int,
    session: Session,
) -> None:
    """A session booked by the center for its customer (confirmed by mail only when it has not ended); a late
    cancellation is booked and cancelled three hours before its start, so its fee follows the class's rule."""
    at = session.start - timedelta(hours=3) if session.cancelled_late else now
    bookings = Bookings(pool, catalogue, zone, lambda: at)
    request = BookingRequest(
        start=session.start, end=session.end, device_id=session.device, user_id=user_id, override_reason=ACTOR_REASON
    )
    booked = await bookings.create(conn, admin, request, announce=session.end > now)
    if session.cancelled_late:
        await bookings.cancel(conn, admin, booked["id"])


def _under_way(catalogue: Catalogue, zone: ZoneInfo, now: datetime) -> list[Session]:
    """The demo SME's two bookings under way now, from the last half hour on, so the board names who has a
    machine while the simulators run (what the machine does in them is the simulators' part)."""
    grid = timedelta(minutes=30).total_seconds()
    start = datetime.fromtimestamp(now.timestamp() // grid * grid, zone)
    return [
        Session(DEMO_SME, device, start, start + timedelta(hours=hours), 0)
        for device, hours in NOW_HOURS
        if device in catalogue.devices
    ]


async def _explain(conn: AsyncConnection, plan: Plan, admin: Principal, now: datetime) -> None:
    """The technicians' reasons on the down intervals they explained (some are left unexplained)."""
    faults = plan.faults + [f for s in plan.sessions if s.running_min and (f := s.fault()) is not None]
    for fault in faults:
        if fault.code is not None:
            await downtime.set_reason(conn, admin, fault.device, fault.start, fault.code, fault.note, now)


def admin_principal(user_id: int, email: str) -> Principal:
    return Principal(user_id, email, "demo", Role.admin, None)
