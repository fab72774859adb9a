"""Invoices from bookings and measured usage, worked by hand: the three billing bases, fees, subsidies in
date order against the ledger's cap, VAT inside tax-inclusive totals, gapless numbers under concurrent
issuing, issued invoices that never change, credit notes."""

import asyncio
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from accounts.model import Principal, Role
from booking.catalogue import sync
from fabhub.catalogue import catalogue_from, oee_facts
from fabhub.devices import load_devices
from oee.invoices import Invoicing
from oee.service import OeeService
from telemetry import BatchWriter, Sample
from telemetry.model import Count
from tests.accounts_rig import make_org, make_user

REPO = Path(__file__).resolve().parent.parent
ZONE = ZoneInfo("Asia/Shanghai")
MARCH = date(2027, 3, 1)
NOW = datetime(2027, 4, 1, 2, 0, tzinfo=ZONE)


async def finance(pool) -> Principal:
    user_id = await make_user(pool, Role.finance)
    return Principal(user_id, f"finance-{user_id}@example.com", "Finance", Role.finance, None)


def t(day: int, hour: float) -> datetime:
    return datetime(2027, 3, day, tzinfo=ZONE) + timedelta(hours=hour)


def center(cap: str | None = None):
    devices = load_devices(REPO / "devices.yaml")
    if cap is not None:
        programs = dict(devices.subsidy_programs)
        programs["jingjiang-sme"] = programs["jingjiang-sme"].model_copy(update={"annual_cap": Decimal(cap)})
        devices = devices.model_copy(update={"subsidy_programs": programs})
    return devices


async def setup(pool, devices):
    async with pool.connection() as conn, conn.transaction():
        await sync(conn, catalogue_from(devices), NOW)
    oee = OeeService(*oee_facts(devices), ZONE, lambda: NOW)
    return Invoicing(oee, Decimal("0.06"), ZONE, lambda: NOW)


async def book(pool, org, user, device, start, end, status, gross, *, subsidy=True, fee="0"):
    async with pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO booking (device_id, organization_id, user_id, created_by, during, status, hourly_rate, gross,"
            " subsidy_program, subsidy_share, subsidy, net, fee, created_at)"
            " SELECT %s, %s, %s, %s, tstzrange(%s, %s), %s, coalesce(d.hourly_rate, c.hourly_rate), %s, %s, %s, 0, %s,"
            " %s, %s FROM device d JOIN device_class c ON c.id = d.class_id WHERE d.id = %s RETURNING id",
            (device, org, user, user, start, end, status, Decimal(gross), "jingjiang-sme" if subsidy else None,
             Decimal("0.5") if subsidy else None, Decimal(gross), Decimal(fee), NOW, device),
        )  # fmt: skip
        return (await cur.fetchone())[0]


async def customer(pool):
    org = await make_org(pool, programs=("jingjiang-sme",))
    return org, await make_user(pool, Role.customer, org)


async def month_of(pool, org):
    """B1 cnc-01 booked 2 h; B2 robot-01 metered, ran 30 min of 2 h; B3 a no-show; B4 a late cancellation."""
    org_id, user = org
    await BatchWriter(pool, clock=lambda: NOW).write_batch(
        [
            Sample(t(2, 9), "cnc-01", "state", "running"),
            Sample(t(2, 11.25), "cnc-01", "state", "idle"),  # ran on 15 min past the end
            Sample(t(3, 9), "robot-01", "state", "running"),
            Sample(t(3, 9.5), "robot-01", "state", "idle"),
            Sample(t(3, 8.9), "meter-robot-01", "energy_kwh", 1520.25),  # the meter before the slot ...
            Count(t(3, 8.9), "meter-robot-01", "energy_kwh", 152025, unit=0.01),
            Sample(t(3, 10.5), "meter-robot-01", "energy_kwh", 1523.75),  # ... and its last reading inside it
            Count(t(3, 10.5), "meter-robot-01", "energy_kwh", 152375, unit=0.01),
        ]
    )
    return [
        await book(pool, org_id, user, "cnc-01", t(2, 9), t(2, 11), "completed", "360.00"),
        await book(pool, org_id, user, "robot-01", t(3, 9), t(3, 11), "completed", "240.00"),
        await book(pool, org_id, user, "cnc-02", t(4, 9), t(4, 11), "no_show", "360.00", fee="360.00"),
        await book(pool, org_id, user, "printer-01", t(5, 9), t(5, 10), "cancelled", "30.00", fee="15.00"),
    ]


async def lines_of(pool, invoice_id):
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT kind, quantity, amount FROM invoice_line WHERE invoice_id = %s ORDER BY position", (invoice_id,)
        )
        return [(k, q, a) for k, q, a in await cur.fetchall()]


async def invoice(pool, invoice_id):
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status, number, total, vat, credited_by FROM invoice WHERE id = %s", (invoice_id,)
        )
        return await cur.fetchone()


async def ledger(pool, org_id):
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT coalesce(sum(amount), 0) FROM subsidy_ledger WHERE organization_id = %s", (org_id,)
        )
        return (await cur.fetchone())[0]


async def test_a_month_worked_by_hand(pool):
    invoicing = await setup(pool, center())
    org = await customer(pool)
    await month_of(pool, org)
    async with pool.connection() as conn:
        assert await invoicing.customers_to_bill(conn, MARCH) == [org[0]]
        invoice_id = await invoicing.draft(conn, org[0], MARCH, "tests")
    first = await lines_of(pool, invoice_id)
    assert first == [
        ("usage", Decimal("2.0000"), Decimal("360.00")),  # booked basis: the slot
        ("subsidy", Decimal("1.0000"), Decimal("-180.00")),
        ("usage", Decimal("1.0000"), Decimal("120.00")),  # metered: 30 min ran, the minimum is half of 2 h
        ("subsidy", Decimal("1.0000"), Decimal("-60.00")),
        ("no_show", Decimal("1.0000"), Decimal("360.00")),
        ("late_cancellation", Decimal("1.0000"), Decimal("15.00")),
    ]
    # 615.00 tax-inclusive; VAT 615 x 0.06 / 1.06 = 34.811... -> 34.81, once per invoice.
    assert await invoice(pool, invoice_id) == ("draft", None, Decimal("615.00"), Decimal("34.81"), None)
    assert await ledger(pool, org[0]) == Decimal("240.00")
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT running_s, overrun_s, energy_kwh FROM usage_record ORDER BY booking_id")
        assert await cur.fetchall() == [(7200.0, 900.0, None), (1800.0, 0.0, 3.5)]
    # Drafting again rebuilds the same draft: nothing billed twice, the ledger unchanged.
    async with pool.connection() as conn:
        again = await invoicing.draft(conn, org[0], MARCH, "tests")
    assert await lines_of(pool, again) == first
    assert (await invoice(pool, again))[2] == Decimal("615.00")
    assert await ledger(pool, org[0]) == Decimal("240.00")
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM invoice")
        assert (await cur.fetchone())[0] == 1


async def test_the_cap_is_reached_inside_the_month(pool):
    invoicing = await setup(pool, center(cap="200.00"))
    org = await customer(pool)
    await month_of(pool, org)
    async with pool.connection() as conn:
        invoice_id = await invoicing.draft(conn, org[0], MARCH, "tests")
    subsidies = [a for k, _, a in await lines_of(pool, invoice_id) if k == "subsidy"]
    assert subsidies == [Decimal("-180.00"), Decimal("-20.00")]  # the second gets what is left of 200.00
    assert await ledger(pool, org[0]) == Decimal("200.00")


async def test_the_month_before_drafting_is_what_the_draft_bills_and_the_preview_keeps_nothing(pool):
    invoicing = await setup(pool, center(cap="200.00"))
    org = await customer(pool)
    await month_of(pool, org)
    tables = ("invoice", "invoice_line", "subsidy_ledger", "usage_record", "booking_result", "audit_log")

    async def counts() -> list[int]:
        async with pool.connection() as conn:
            return [(await (await conn.execute(f"SELECT count(*) FROM {t}")).fetchone())[0] for t in tables]

    before = await counts()
    async with pool.connection() as conn:
        [bill] = await invoicing.preview(conn, MARCH)
        assert await invoicing.preview(conn, date(2027, 4, 1)) == []  # April is not over: nothing to draft
    # 360 + 120 usage (3 h billed) and 360 + 15 fees; the subsidies 180 + 60 capped at 200.00.
    assert (bill.organization_id, bill.bookings, bill.hours) == (org[0], 4, Decimal("3.0000"))
    assert (bill.before_subsidy, bill.subsidy, bill.due, bill.invoice) == (
        Decimal("855.00"), Decimal("200.00"), Decimal("655.00"), None
    )  # fmt: skip
    assert await counts() == before  # no draft, frozen result, ledger entry or audit line left behind
    async with pool.connection() as conn:
        invoice_id = await invoicing.draft(conn, org[0], MARCH, "tests")
        [again] = await invoicing.preview(conn, MARCH)
    assert await invoice(pool, invoice_id) == ("draft", None, Decimal("655.00"), Decimal("37.08"), None)
    assert (again.due, again.subsidy, again.invoice["id"]) == (bill.due, bill.subsidy, invoice_id)
    assert await ledger(pool, org[0]) == Decimal("200.00")  # the draft's own grants, not the preview's too


async def test_issue_is_final_and_a_credit_note_reverses_it(pool):
    invoicing = await setup(pool, center())
    clerk = await finance(pool)
    org = await customer(pool)
    await month_of(pool, org)
    async with pool.connection() as conn:
        invoice_id = await invoicing.draft(conn, org[0], MARCH, "tests")
        assert await invoicing.issue(conn, invoice_id, clerk) == "FH2027-000001"
        for statement in (
            "UPDATE invoice_line SET amount = 1 WHERE invoice_id = %s",
            "DELETE FROM invoice_line WHERE invoice_id = %s",
            "UPDATE invoice SET total = 1 WHERE id = %s",
            "DELETE FROM invoice WHERE id = %s",
        ):
            with pytest.raises(psycopg.errors.CheckViolation):
                async with conn.transaction():
                    await conn.execute(statement, (invoice_id,))
        # The month is issued: a new draft run leaves it alone.
        assert await invoicing.draft(conn, org[0], MARCH, "tests") == invoice_id
        note = await invoicing.credit(conn, invoice_id, clerk, "wrong rate on the robot")
    assert await invoice(pool, note) == ("issued", "FH2027-000002", Decimal("-615.00"), Decimal("-34.81"), None)
    assert (await invoice(pool, invoice_id))[4] == note
    assert await ledger(pool, org[0]) == Decimal("0.00")  # the subsidy went back to the cap
    async with pool.connection() as conn:
        redone = await invoicing.draft(conn, org[0], MARCH, "tests")
        with pytest.raises(Exception, match="credited already"):
            await invoicing.credit(conn, invoice_id, clerk, "again")
    assert redone not in (invoice_id, note) and (await invoice(pool, redone))[2] == Decimal("615.00")
    assert await ledger(pool, org[0]) == Decimal("240.00")


async def test_numbers_stay_gapless_under_concurrent_issuing(pool):
    invoicing = await setup(pool, center())
    clerk = await finance(pool)
    drafts = []
    for _ in range(12):
        org_id, user = await customer(pool)
        await book(pool, org_id, user, "cnc-01", t(10 + len(drafts), 9), t(10 + len(drafts), 10), "completed", "180.00")
        async with pool.connection() as conn:
            drafts.append(await invoicing.draft(conn, org_id, MARCH, "tests"))

    async def issue(invoice_id):
        async with await psycopg.AsyncConnection.connect(pool.conninfo) as conn:
            return await invoicing.issue(conn, invoice_id, clerk)

    numbers = await asyncio.gather(*(issue(i) for i in drafts))
    assert sorted(numbers) == [f"FH2027-{n:06d}" for n in range(1, 13)]


async def test_two_runs_racing_never_exceed_a_cap(pool):
    march = await setup(pool, center(cap="100.00"))
    # in May, so that April is over and may be drafted too
    invoicing = Invoicing(march.oee, march.vat_rate, ZONE, lambda: datetime(2027, 5, 2, tzinfo=ZONE))
    org_id, user = await customer(pool)
    # Two months, each with a booking whose subsidy alone would be 90.00.
    await book(pool, org_id, user, "cnc-01", t(2, 9), t(2, 10), "completed", "180.00")
    await book(
        pool,
        org_id,
        user,
        "cnc-01",
        datetime(2027, 4, 2, 9, tzinfo=ZONE),
        datetime(2027, 4, 2, 10, tzinfo=ZONE),
        "completed",
        "180.00",
    )

    async def run(month):
        async with await psycopg.AsyncConnection.connect(pool.conninfo) as conn:
            return await invoicing.draft(conn, org_id, month, "tests")

    await asyncio.gather(run(MARCH), run(date(2027, 4, 1)))
    assert await ledger(pool, org_id) <= Decimal("100.00")
