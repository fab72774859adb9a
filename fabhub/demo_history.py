"""A month of history for `fabhub demo`, so every page has something to show on the first visit: the demo
SME's bookings of last month with the machines' states and parts during them (one left unused: a no-show),
checked in and completed by the lifecycle's own rules, and two bookings under way now on the simulated
machines. Finance can then draft, review and issue last month; the customer sees usage and OEE; the board
names who has a machine. Only the demo's own embedded database gets it, once."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from psycopg_pool import AsyncConnectionPool

from accounts.model import Principal, Role
from booking import lifecycle
from booking.bookings import BookingRequest, Bookings
from booking.catalogue import Catalogue, sync
from oee.invoices import first_of_month
from telemetry import BatchWriter, Sample
from telemetry.activity import activity_after_start

ACTOR_REASON = "demo history"
# (device, day of the month, local start hour, hours, minutes of it running; 0 = nobody came)
LAST_MONTH = (
    ("cnc-01", 3, 9, 3, 140),
    ("robot-01", 4, 14, 2, 70),
    ("printer-01", 6, 9, 4, 250),  # runs on past the end: billed as overage
    ("cnc-02", 11, 9, 2, 100),
    ("robot-02", 12, 9, 2, 0),
    ("cnc-01", 18, 14, 3, 150),
    ("printer-02", 20, 13, 3, 160),
    ("robot-01", 25, 9, 2, 95),
)
NOW_HOURS = (("cnc-01", 3), ("printer-01", 4))


def _weekday(day: datetime) -> datetime:
    """The center is closed at weekends: a Saturday or Sunday slot moves to the Monday after."""
    return day + timedelta(days=(7 - day.weekday()) % 7 if day.weekday() >= 5 else 0)


async def ensure_history(
    pool: AsyncConnectionPool,
    catalogue: Catalogue,
    zone: ZoneInfo,
    now: datetime,
    admin: Principal,
    customer_user_id: int,
    organization_id: int,
) -> bool:
    """Returns whether it wrote the history (False when the demo SME has bookings already)."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT EXISTS (SELECT 1 FROM booking WHERE organization_id = %s)", (organization_id,))
        row = await cur.fetchone()
        assert row is not None  # EXISTS always answers
        if row[0]:
            return False
        async with conn.transaction():
            await sync(conn, catalogue, now)
    previous = first_of_month(first_of_month(now.astimezone(zone).date()) - timedelta(days=1))
    samples: list[Sample] = []
    slots = []
    for device, day, hour, hours, running_min in LAST_MONTH:
        if device not in catalogue.devices:
            continue
        start = _weekday(datetime.combine(previous.replace(day=day), time(hour), zone))
        end = start + timedelta(hours=hours)
        slots.append((device, start, end))
        samples.append(Sample(start - timedelta(hours=1), device, "state", "idle"))
        if running_min:
            run_from = start + timedelta(minutes=10)
            run_to = run_from + timedelta(minutes=running_min)
            samples += [
                Sample(start, device, "state", "setup"),
                Sample(run_from, device, "state", "running"),
                Sample(run_to, device, "state", "idle"),
            ]
            parts = running_min // 6
            if not device.startswith("printer"):
                samples += [
                    Sample(run_to, device, "parts_total.delta", float(parts)),
                    Sample(run_to, device, "parts_good.delta", float(parts - 1)),
                ]
    # Nobody watched the machines between then and the demo's start: unknown, not idle for weeks.
    month_end = datetime.combine(first_of_month(now.astimezone(zone).date()), time(), zone)
    samples += [Sample(month_end, device, "state", "offline") for device in {d for d, _, _ in slots}]
    await BatchWriter(pool, clock=lambda: now).write_batch(samples)
    bookings = Bookings(pool, catalogue, zone, lambda: now)
    grid = timedelta(minutes=30)
    start_now = datetime.fromtimestamp(now.timestamp() // grid.total_seconds() * grid.total_seconds(), zone)
    slots += [
        (device, start_now, start_now + timedelta(hours=h)) for device, h in NOW_HOURS if device in catalogue.devices
    ]
    async with pool.connection() as conn:
        for device, start, end in slots:
            async with conn.transaction():
                request = BookingRequest(
                    start=start, end=end, device_id=device, user_id=customer_user_id, override_reason=ACTOR_REASON
                )
                await bookings.create(conn, admin, request)
        for _ in range(2):  # check in (or mark the no-show), then complete
            async with conn.transaction():
                await lifecycle.advance(conn, now, catalogue, zone, activity_after_start)
    return True


def admin_principal(user_id: int, email: str) -> Principal:
    return Principal(user_id, email, "demo", Role.admin, None)
