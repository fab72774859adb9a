"""`fabhub invoices draft --month`: drafts a month that is over on the configured database, repeatably, and
refuses a malformed month or one still under way. The command runs its own event loop, so it is invoked
from a worker thread."""

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from typer.testing import CliRunner

from fabhub.cli import app
from tests.http import REPO
from tests.test_invoices import book, center, customer, setup

runner = CliRunner()
ZONE = ZoneInfo("Asia/Shanghai")


async def draft(db_url: str, *args: str):
    env = {"FABHUB_DATABASE_URL": db_url, "FABHUB_DEVICES": str(REPO / "devices.yaml")}
    return await asyncio.to_thread(runner.invoke, app, ["invoices", "draft", *args], env=env)


async def test_draft_a_past_month_twice_and_refuse_bad_months(db_url, pool):
    await setup(pool, center())
    org, user = await customer(pool)
    october = datetime(2026, 10, 5, 9, tzinfo=ZONE)
    await book(pool, org, user, "cnc-01", october, october.replace(hour=11), "completed", "360.00")

    first = await draft(db_url, "--month", "2026-10")
    assert first.exit_code == 0, first.output
    [invoice_id] = [int(line) for line in first.stdout.split()]
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT status, total FROM invoice WHERE id = %s", (invoice_id,))).fetchone()
    assert (row[0], str(row[1])) == ("draft", "180.00")  # 2 h x 180.00, half of it subsidized

    again = await draft(db_url, "--month", "2026-10")  # rebuilt, not doubled
    assert again.exit_code == 0, again.output
    async with pool.connection() as conn:
        live = await (await conn.execute("SELECT count(*) FROM invoice WHERE organization_id = %s", (org,))).fetchone()
    assert live == (1,)

    for month, reason in (("2026-13", "YYYY-MM"), ("10/2026", "YYYY-MM"), ("2099-01", "not over yet")):
        refused = await draft(db_url, "--month", month)
        assert refused.exit_code == 2 and reason in refused.output, (month, refused.output)
