"""Management's charts in a real browser, over the down-time test's day worked by hand (cnc-01 ran, faulted
four times and made 100 parts, 95 good): the OEE trend has a point, the heat map a cell per device and
day, the Gantt the measured states, and the Pareto the unexplained down time."""

from playwright.async_api import expect

from accounts.model import Role
from telemetry import BatchWriter, Sample
from tests.accounts_rig import make_user
from tests.browser import chromium, log_in, new_page, shot
from tests.http import serve
from tests.test_downtime import NOW, t, write_day


async def test_management_charts_show_the_day(db_url, pool):
    await write_day(pool)
    # the gateway stores counter deltas
    await BatchWriter(pool, clock=lambda: NOW).write_batch(
        [Sample(t(19), "cnc-01", "parts_total.delta", 100.0), Sample(t(19), "cnc-01", "parts_good.delta", 95.0)]
    )
    async with serve(db_url, clock=lambda: NOW) as client:
        await make_user(pool, Role.finance, email="manager@center.example")
        async with chromium() as browser:
            page = await new_page(browser, str(client.base_url))
            await log_in(page, "manager@center.example")
            await page.goto("/management?since=2027-03-01&until=2027-03-01")
            devices = 7  # devices.yaml
            await expect(page.locator("#utilisation svg rect")).to_have_count(devices)
            await expect(page.locator("#oee-trend svg circle")).to_have_count(1)  # one day: a point, cnc-01 only
            assert await page.locator("#gantt svg rect title", has_text="运行").count() >= 3
            await expect(page.locator("#pareto svg rect")).to_have_count(1)  # no reasons given: one bar
            await shot(page, "management")
