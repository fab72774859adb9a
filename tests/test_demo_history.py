"""The demo's month of history: last month's bookings of the demo SME checked in, completed (one a no-show)
by the lifecycle's rules, two bookings under way now, and last month billable with usage from the states
written for it. Written once."""

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from accounts.users import list_users
from fabhub.catalogue import catalogue_from, oee_facts
from fabhub.demo_accounts import ensure_demo_accounts
from fabhub.demo_history import LAST_MONTH, admin_principal, ensure_history
from fabhub.devices import load_devices
from oee.invoices import Invoicing
from oee.service import OeeService
from tests.http import REPO

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2027, 4, 14, 3, 10, tzinfo=UTC)  # 11:10 on a Wednesday in Jingjiang


async def test_history_is_written_once_and_bills(db_url, pool):
    devices = load_devices(REPO / "devices.yaml")
    catalogue = catalogue_from(devices)
    await ensure_demo_accounts(db_url, list(devices.classes), list(devices.subsidy_programs), NOW, ZONE)
    async with pool.connection() as conn:
        users = {u.role.value: u for u in await list_users(conn)}
    admin, customer = users["admin"], users["customer"]
    args = (pool, catalogue, ZONE, NOW, admin_principal(admin.id, admin.email), customer.id, customer.organization_id)
    assert await ensure_history(*args) is True
    assert await ensure_history(*args) is False
    async with pool.connection() as conn:
        rows = await (await conn.execute("SELECT status, count(*) FROM booking GROUP BY 1 ORDER BY 1")).fetchall()
    assert dict(rows) == {"completed": len(LAST_MONTH) - 1, "no_show": 1, "confirmed": 2}

    oee = OeeService(*oee_facts(devices), ZONE, lambda: NOW)
    invoicing = Invoicing(oee, Decimal("0.06"), ZONE, lambda: NOW)
    async with pool.connection() as conn:
        [invoice_id] = await invoicing.draft_month(conn, datetime(2027, 3, 1).date(), "tests")
        lines = await (
            await conn.execute(
                "SELECT kind, count(*) FROM invoice_line WHERE invoice_id = %s GROUP BY 1", (invoice_id,)
            )
        ).fetchall()
        running = await (await conn.execute("SELECT sum(running_s) FROM usage_record")).fetchone()
    assert dict(lines)["usage"] == len(LAST_MONTH) - 1 and dict(lines)["no_show"] == 1
    # running starts 10 minutes into each booking; the printer's run past its end is overrun, not usage
    inside = sum(min(minutes, hours * 60 - 10) for *_, hours, minutes in LAST_MONTH)
    assert running[0] == 60 * inside
