"""Management's charts in a real browser, over the down-time test's day worked by hand (cnc-01 ran, faulted
four times and made 100 parts, 95 good): the OEE trend has a point, the heat map a cell per device and
day, the Gantt the measured states, and the Pareto the unexplained down time; then over the demo's month, with
screenshots of the whole page, a day's Gantt and 92 days under artifacts/screenshots/management-*.png, and of
a demo SME's machine report and its two robots side by side (report-demo.png, compare-demo.png)."""

import csv
import io
import itertools
from datetime import datetime

from playwright.async_api import expect

from accounts.model import Role
from fabhub.demo_accounts import PASSWORD as DEMO_PASSWORD
from oee import downtime
from telemetry import BatchWriter, Sample
from tests.accounts_rig import make_user
from tests.browser import SHOTS, chromium, log_in, new_page, shot
from tests.http import serve
from tests.test_demo_history import DEVICES as DEVICE_IDS
from tests.test_demo_history import NOW as DEMO_NOW
from tests.test_demo_history import ZONE, demo_month, draft_march
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


async def test_management_over_the_demo_month(db_url, pool):
    """The demo's month as `fabhub demo` writes it, with March drafted: every chart has something to say, the
    heat map's labels do not overlap on screen at 44 and 92 days, a day's label zooms the Gantt to that day,
    and a chart's CSV gives the domain's figures."""
    args, _ = await demo_month(db_url, pool)
    await draft_march(pool, args[1])
    async with serve(db_url, clock=lambda: DEMO_NOW) as client, chromium() as browser:
        page = await new_page(browser, str(client.base_url))
        await log_in(page, "finance@demo.fabhub", DEMO_PASSWORD)
        await page.goto("/management?since=2027-03-01&until=2027-04-13")
        days, devices = 44, 7
        await expect(page.locator("#utilisation svg rect")).to_have_count(days * devices)
        await expect(page.locator("#oee-trend svg rect")).to_have_count(devices)  # a line (and legend) each
        assert await page.locator("#oee-trend svg polyline").count() >= devices
        assert await page.locator("#gantt svg rect").count() > 500  # bookings and states of six weeks
        assert await page.locator("#pareto svg rect").count() >= 4  # several reasons and the unexplained
        await expect(page.locator("#energy-table tr")).to_have_count(1 + 3 * 2)  # three classes, two months
        await expect(page.locator("#subsidy-table")).to_contain_text("靖江恒达精密机械有限公司")
        await assert_labels_apart(page, "#utilisation svg text[text-anchor=middle]")
        await shot(page, "management-month")

        await page.locator("#gantt svg a", has_text="03-10").click()
        await expect(page.locator("#gantt-title")).to_contain_text("3/10")
        await expect(page.locator("#zoom input[name=day]")).to_have_value("2027-03-10")
        assert await page.locator("#gantt svg rect title", has_text="靖江").count() >= 3  # that day's bookings
        await page.locator("#gantt").screenshot(path=str(SHOTS / "management-gantt-day.png"))
        await shot(page, "management-day")

        await page.goto("/management?since=2027-01-12&until=2027-04-13")  # 92 days
        await expect(page.locator("#utilisation svg rect")).to_have_count(92 * devices)
        await assert_labels_apart(page, "#utilisation svg text[text-anchor=middle]")
        await assert_labels_apart(page, "#gantt svg text[text-anchor=middle]")
        await shot(page, "management-92-days")

        # the robot tester's March on both robots, as its report and side by side (frozen by the draft)
        async with pool.connection() as conn:
            found = await conn.execute(
                "SELECT DISTINCT ON (b.device_id) b.id FROM booking b JOIN organization o ON o.id = b.organization_id"
                " JOIN usage_record u ON u.booking_id = b.id WHERE o.name = %s AND b.device_id LIKE 'robot-%%'"
                " AND b.status = 'completed' AND u.parts_total > 0 ORDER BY b.device_id, b.during",
                ("靖江华瑞自动化设备有限公司",),
            )
            robots = [row[0] for row in await found.fetchall()]
        assert len(robots) == 2
        await page.goto(f"/bookings/{robots[0]}/report")
        await expect(page.locator("#energy")).to_contain_text("kWh")  # measured by the machine's DTSU666
        await expect(page.locator("[data-test=carbon]")).to_contain_text("0.5703")
        assert await page.locator("#timeline svg rect").count() >= 2
        await shot(page, "report-demo")
        await page.goto(f"/reports/compare?bookings={robots[0]},{robots[1]}")
        await expect(page.locator("#compare")).to_contain_text("UR5e")
        await expect(page.locator("#compare")).not_to_contain_text("未计量")
        await shot(page, "compare-demo")

        response = await page.request.get("/management/downtime.csv?since=2027-03-01&until=2027-04-13")
        assert response.ok
        table = list(csv.reader(io.StringIO((await response.text()).removeprefix("\ufeff"))))
    start, end = datetime(2027, 3, 1, tzinfo=ZONE), datetime(2027, 4, 14, tzinfo=ZONE)
    async with pool.connection() as conn:
        losses = await downtime.pareto(conn, list(DEVICE_IDS), start, end, DEMO_NOW, ZONE, explained_outside=True)
    assert [(r[0], int(r[3])) for r in table[1:]] == [(r.code, round(r.seconds)) for r in losses.rows]
    assert "machine_fault" in {r.code for r in losses.rows} and "unassigned" in {r.code for r in losses.rows}


async def assert_labels_apart(page, selector: str) -> None:
    """The labels' boxes as the browser laid them out, in order along the axis: none touches the next."""
    boxes = [await label.bounding_box() for label in await page.locator(selector).all()]
    assert len(boxes) >= 5
    for a, b in itertools.pairwise(boxes):
        assert a["x"] + a["width"] < b["x"], (selector, a, b)
