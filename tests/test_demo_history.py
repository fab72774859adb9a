"""The demo's month of history: every machine booked by several SMEs and measured, checked in, completed or
marked no-show by the lifecycle's rules, a late cancellation, maintenance, explained faults (one at night,
outside opening hours), parts and energy samples, two bookings under way now, and last month billable.
Written once, and quickly."""

import itertools
import time as clock
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from accounts.users import list_users
from fabhub.catalogue import oee_facts
from fabhub.demo_accounts import ORGANIZATION, ensure_demo_accounts
from fabhub.demo_history import admin_principal, ensure_history
from fabhub.demo_plan import DEMO_MONTH, SMES, plan_month
from fabhub.devices import load_devices
from oee import center_figures, downtime, energy
from oee.invoices import Invoicing
from oee.service import OeeService
from tests.http import REPO

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2027, 4, 14, 3, 10, tzinfo=UTC)  # 11:10 on a Wednesday in Jingjiang
DEVICES = ("cnc-01", "cnc-02", "robot-01", "robot-02", "printer-01", "printer-02", "printer-03")


@pytest.mark.parametrize("today", [date(2027, 4, 14), date(2026, 12, 5), date(2027, 3, 1), date(2028, 1, 31)])
def test_the_plan_is_the_same_every_time_and_never_double_books(today):
    since = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    first = plan_month(since, today, ZONE, DEVICES)
    again = plan_month(since, today, ZONE, DEVICES)
    assert first.sessions == again.sessions and first.maintenance == again.maintenance
    assert len(first.maintenance) >= 3 and [f.code for f in first.faults] == ["machine_fault"]
    assert sum(1 for s in first.sessions if not s.running_min and not s.cancelled_late) >= 2
    assert sum(1 for s in first.sessions if s.cancelled_late) == 1
    assert all(s.run_to <= s.end for s in first.sessions if s.running_min and s.sme != "demo")
    for device in DEVICES:
        spans = sorted(
            [(s.start, s.end) for s in first.sessions if s.device == device]
            + [(m.start, m.end) for m in first.maintenance if m.device == device]
        )
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), device
        assert any(s.device == device for s in first.sessions), device
    assert {s.sme for s in first.sessions} == {"demo", "hengda", "huarui", "chuangxiang", "xincheng"}
    # a busy week and a quiet week: booked hours per ISO week differ by more than twice
    hours: dict[int, float] = {}
    for s in first.sessions:
        week = s.start.isocalendar()[1]
        hours[week] = hours.get(week, 0) + (s.end - s.start).total_seconds() / 3600
    busy, quiet = (since + timedelta(days=7)).isocalendar()[1], (since + timedelta(days=21)).isocalendar()[1]
    assert hours[busy] > 2 * hours[quiet] and hours[busy] == max(hours.values())


async def demo_month(db_url: str, pool) -> tuple[tuple, float]:
    """The demo's accounts and month at NOW, as `fabhub demo` writes them; the arguments and seconds taken."""
    devices = load_devices(REPO / "devices.yaml")
    await ensure_demo_accounts(db_url, list(devices.classes), list(devices.subsidy_programs), NOW, ZONE)
    async with pool.connection() as conn:
        users = {u.role.value: u for u in await list_users(conn)}
    admin, customer = users["admin"], users["customer"]
    args = (pool, devices, ZONE, NOW, admin_principal(admin.id, admin.email), customer.id, customer.organization_id)
    began = clock.monotonic()
    assert await ensure_history(*args) is True
    return args, clock.monotonic() - began


async def draft_march(pool, devices) -> list[int]:
    """What the invoice-drafts job does once April has begun: the subsidy ledger then holds March's subsidy."""
    oee = OeeService(*oee_facts(devices), ZONE, lambda: NOW)
    async with pool.connection() as conn:
        return await Invoicing(oee, Decimal("0.06"), ZONE, lambda: NOW).draft_month(conn, date(2027, 3, 1), "tests")


async def test_history_is_written_once_and_bills(any_db_url, any_pool):
    """On TimescaleDB and on the embedded PostgreSQL the demo runs on."""
    pool = any_pool
    args, _ = await demo_month(any_db_url, pool)
    assert await ensure_history(*args) is False
    devices, customer_org = args[1], args[6]
    async with pool.connection() as conn:

        async def rows(sql: str, *params: object) -> list:
            return await (await conn.execute(sql, params)).fetchall()

        status = dict(await rows("SELECT status, count(*) FROM booking GROUP BY 1"))
        assert status["confirmed"] == 2  # under way now
        assert status["no_show"] >= 2 and status["cancelled"] == 1 and status["completed"] > 60
        [[late]] = await rows("SELECT count(*) FROM booking WHERE late_cancellation AND fee > 0")
        assert late == 1
        per_org = dict(await rows("SELECT organization_id, count(*) FROM booking GROUP BY 1"))
        assert len(per_org) == 5 and per_org[customer_org] == len(DEMO_MONTH) + 2
        booked = {d for [d] in await rows("SELECT DISTINCT device_id FROM booking")}
        stated = {d for [d] in await rows("SELECT DISTINCT device_id FROM state_change")}
        assert booked == stated == set(DEVICES)
        [[windows]] = await rows("SELECT count(*) FROM maintenance_window")
        assert windows >= 3
        # energy as the machines' power meters would have counted it, read the way the energy figures read it
        facts = oee_facts(devices)[2]
        used = await energy.per_day(conn, facts, list(DEVICES), NOW - timedelta(days=44), NOW, ZONE.key)
        kwh = {d: sum(r["kwh"] for r in used if r["machine_id"] == d) for d in DEVICES}
        assert min(kwh.values()) > 0 and kwh["cnc-01"] > 10 * kwh["printer-01"]
        assert 0 < sum(r["idle_kwh"] for r in used) < sum(kwh.values())
        [[powers]] = await rows("SELECT count(*) FROM measured_value WHERE signal = 'power_kw'")
        assert powers == sum(1 for _ in await rows("SELECT 1 FROM measured_value WHERE signal = 'energy_kwh.delta'"))
        [[parts]] = await rows("SELECT sum(value) FROM measured_value WHERE signal = 'parts_total.delta'")
        assert parts > 1000
        # faults with reasons, one at night (outside opening hours), and some left unexplained
        march = (datetime(2027, 3, 1, tzinfo=ZONE), datetime(2027, 4, 1, tzinfo=ZONE))
        found = await downtime.down_intervals(conn, list(DEVICES), *march, NOW)
        explained = [i for i in found if i.reason is not None]
        assert len(explained) >= 5 and len(found) > len(explained)
        night = [i for i in explained if i.start.astimezone(ZONE).hour >= 20]
        assert night and night[0].duration_s == 9 * 3600
        inside = await downtime.pareto(conn, list(DEVICES), *march, NOW, ZONE)
        whole = await downtime.pareto(conn, list(DEVICES), *march, NOW, ZONE, explained_outside=True)
        assert whole.down_s - inside.down_s >= 9 * 3600 - 1

    assert len(await draft_march(pool, devices)) == 5
    async with pool.connection() as conn:
        lines = dict(await (await conn.execute("SELECT kind, count(*) FROM invoice_line GROUP BY 1")).fetchall())
        assert lines["usage"] > 40 and lines["no_show"] >= 1 and lines["subsidy"] > 10
        # subsidy against caps: every eligible customer and program, with what its invoices took from the cap
        uses = await center_figures.subsidy_against_caps(conn, 2027)
        taken = await (
            await conn.execute(
                "SELECT i.organization_id, l.subsidy_program, -sum(l.amount) FROM invoice_line l "
                "JOIN invoice i ON i.id = l.invoice_id WHERE l.kind = 'subsidy' GROUP BY 1, 2"
            )
        ).fetchall()
    by_pair = {(u.organization_name, u.program_id): u for u in uses}
    eligible = {(sme.name, p) for sme in SMES for p in sme.programs}
    eligible |= {(ORGANIZATION[0], p) for p in devices.subsidy_programs}
    assert set(by_pair) == eligible  # 鑫诚 is eligible for nothing and took nothing
    assert {(u.organization_id, u.program_id): u.used for u in uses if u.used} == {(o, p): a for o, p, a in taken}
    caps = {"jingjiang-sme": Decimal("20000.00"), "jiangsu-smart-manufacturing": Decimal("50000.00")}
    assert all(u.cap == caps[u.program_id] and u.remaining == u.cap - u.used for u in uses)
    totals = center_figures.program_totals(uses)
    assert totals["jingjiang-sme"] == (sum(u.used for u in uses if u.program_id == "jingjiang-sme"), 3)
