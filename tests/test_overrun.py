"""Overrun on the overage basis stops where the device is next taken (issue 14): customer C books a printer
10:00-14:00, customer D 14:00-18:00, and the machine runs without a break until 17:00. C's overrun is 0 and
D's slot, with its running, is D's; with a gap before D's booking (or a maintenance window), C's overrun runs
up to its start; a cancelled booking takes nothing. Worked by hand at 30.00 CNY/h."""

from datetime import datetime
from decimal import Decimal

import pytest

from oee import results
from oee.invoices import Invoicing
from telemetry import BatchWriter, Sample
from tests.test_invoices import MARCH, NOW, ZONE, book, center, customer, lines_of, setup, t

PRINTER = "printer-01"


async def run_until_five(pool) -> None:
    """The printer runs from 10:00 on 2 March without a break until 17:00."""
    await BatchWriter(pool, clock=lambda: NOW).write_batch(
        [Sample(t(2, 10), PRINTER, "state", "running"), Sample(t(2, 17), PRINTER, "state", "idle")]
    )


async def usage_of(pool, booking_id):
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT running_s, overrun_s FROM usage_record WHERE booking_id = %s", (booking_id,))
        return await cur.fetchone()


async def draft(pool, invoicing, org_id):
    async with pool.connection() as conn:
        invoice_id = await invoicing.draft(conn, org_id, MARCH, "tests")
    return [(kind, quantity, amount) for kind, quantity, amount in await lines_of(pool, invoice_id)]


async def test_back_to_back_the_next_customers_slot_is_theirs(pool):
    invoicing = await setup(pool, center())
    (c_org, c_user), (d_org, d_user) = await customer(pool), await customer(pool)
    await run_until_five(pool)
    c = await book(pool, c_org, c_user, PRINTER, t(2, 10), t(2, 14), "completed", "120.00", subsidy=False)
    d = await book(pool, d_org, d_user, PRINTER, t(2, 14), t(2, 18), "completed", "120.00", subsidy=False)
    # C: the slot only (4 h x 30.00); not the 3 h the machine ran on inside D's slot.
    assert await draft(pool, invoicing, c_org) == [("usage", Decimal("4.0000"), Decimal("120.00"))]
    assert await usage_of(pool, c) == (4 * 3600.0, 0.0)
    # D: its full slot (overage bills the slot), and the running 14:00-17:00 is D's usage.
    assert await draft(pool, invoicing, d_org) == [("usage", Decimal("4.0000"), Decimal("120.00"))]
    assert await usage_of(pool, d) == (3 * 3600.0, 0.0)


@pytest.mark.parametrize(
    ("taken_by", "overrun_h", "c_hours", "c_amount"),
    [
        ("booking", 1, "5.0000", "150.00"),  # D at 15:00: C ran on 14:00-15:00, 5 h x 30.00
        ("maintenance", 1, "5.0000", "150.00"),  # a technician's window at 15:00 stops it the same way
        ("cancelled booking", 3, "7.0000", "210.00"),  # a cancelled booking takes nothing: C ran on until 17:00
    ],
)
async def test_in_a_gap_the_overrun_counts_up_to_the_next_start(pool, taken_by, overrun_h, c_hours, c_amount):
    invoicing = await setup(pool, center())
    (c_org, c_user), (d_org, d_user) = await customer(pool), await customer(pool)
    await run_until_five(pool)
    c = await book(pool, c_org, c_user, PRINTER, t(2, 10), t(2, 14), "completed", "120.00", subsidy=False)
    if taken_by == "maintenance":
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO maintenance_window (device_id, during, reason, created_at)"
                " VALUES (%s, tstzrange(%s, %s), 'nozzle change', %s)",
                (PRINTER, t(2, 15), t(2, 16), NOW),
            )
    else:
        status = "completed" if taken_by == "booking" else "cancelled"
        await book(pool, d_org, d_user, PRINTER, t(2, 15), t(2, 18), status, "90.00", subsidy=False)
    assert await draft(pool, invoicing, c_org) == [("usage", Decimal(c_hours), Decimal(c_amount))]
    assert await usage_of(pool, c) == (4 * 3600.0, overrun_h * 3600.0)
    if taken_by == "booking":  # D ran 15:00-17:00 of its 3 h, and is billed its slot
        assert await draft(pool, invoicing, d_org) == [("usage", Decimal("3.0000"), Decimal("90.00"))]


async def test_a_booking_still_running_on_waits_for_the_next_draft(pool):
    """On 31 March the printer runs on past 19:00 and is still running when the month is drafted: the overrun
    is not known yet, so the booking is left for the next run (and not frozen); by then it is a day at most."""
    invoicing = await setup(pool, center())
    org, user = await customer(pool)
    await BatchWriter(pool, clock=lambda: NOW).write_batch([Sample(t(31, 18), PRINTER, "state", "running")])
    booking = await book(pool, org, user, PRINTER, t(31, 18), t(31, 19), "completed", "30.00", subsidy=False)
    async with pool.connection() as conn:
        assert await invoicing.draft(conn, org, MARCH, "tests") is None  # NOW is 1 April, 02:00
        assert await results.freeze_due(conn, invoicing.oee, NOW) == 0
    assert await usage_of(pool, booking) is None
    later = datetime(2027, 4, 2, 2, 0, tzinfo=ZONE)
    next_run = Invoicing(invoicing.oee, invoicing.vat_rate, ZONE, lambda: later)
    assert await draft(pool, next_run, org) == [("usage", Decimal("25.0000"), Decimal("750.00"))]  # 1 h + 24 h
    assert await usage_of(pool, booking) == (3600.0, 24 * 3600.0)
