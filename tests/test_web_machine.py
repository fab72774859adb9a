"""A machine's page in a real browser, over the down-time test's day: from its tile on the board, a
technician attaches a reason to the evening's fault and puts the machine into maintenance."""

from datetime import timedelta

from playwright.async_api import expect

from accounts.model import Role
from tests.accounts_rig import Clock, make_user
from tests.booking_rig import customer
from tests.browser import chromium, log_in, new_page, shot
from tests.http import serve
from tests.test_downtime import NOW, write_day


async def test_reason_and_maintenance_from_the_machine_page(db_url, pool):
    await write_day(pool)
    clock = Clock(NOW)
    async with serve(db_url, clock=clock, session_hours=48) as client:
        await make_user(pool, Role.technician, email="tech@center.example")
        async with chromium() as browser:
            page = await new_page(browser, str(client.base_url))
            await log_in(page, "tech@center.example")
            await expect(page.locator("#tile-cnc-01")).to_have_class("tile state-down")
            await shot(page, "board")
            await page.click("#tile-cnc-01")
            await expect(page.locator("h1")).to_contain_text("cnc-01")
            assert await page.locator("#timeline svg rect title", has_text="故障").count() >= 1
            evening = page.locator("#down tr", has_text="2027-03-01 19:30")
            await evening.locator("select[name=code]").select_option(index=1)
            chosen = await evening.locator("select[name=code] option").nth(1).get_attribute("value")
            await evening.locator("input[name=note]").fill("主轴过载")
            await evening.locator("button").click()
            await expect(page.locator(".notice")).to_have_text("已保存。")
            async with pool.connection() as conn:
                stored = await (await conn.execute("SELECT code, note FROM downtime_reason")).fetchall()
            assert stored == [(chosen, "主轴过载")]
            booker = await customer(pool, client)
            booked = {"device_id": "cnc-01", "start": "2027-03-02T09:00+08:00", "end": "2027-03-02T10:00+08:00"}
            assert (await client.post("/api/v1/bookings", json=booked, headers=booker.headers)).status_code == 201
            clock.now = NOW + timedelta(hours=9, minutes=15)  # the board shows who has the machine now
            await page.goto("/board")
            await expect(page.locator("#tile-cnc-01 [data-field=booking]")).to_have_text(
                "靖江精工机械有限公司 09:00–10:00"
            )
            clock.now = NOW
            await page.goto("/machines/cnc-01")

            form = page.locator("#maintenance-form")
            await form.locator("input[name=start]").fill("2027-03-02T08:00")
            await form.locator("input[name=end]").fill("2027-03-02T10:00")
            await form.locator("input[name=reason]").fill("换刀")  # two characters, as the API takes them
            await form.locator("button").click()
            # the booking in the way, said in Chinese with its customer; the form kept as it was filled in
            problems = page.locator(".problems li")
            await expect(problems.nth(0)).to_have_text(
                "cnc-01 有 1 个预约与该时段重叠：请调整时段，或勾选“取消冲突的预约”。"
            )
            await expect(problems.nth(1)).to_contain_text("靖江精工机械有限公司 2027-03-02 09:00–10:00")
            await expect(form.locator("input[name=start]")).to_have_value("2027-03-02T08:00")
            await expect(form.locator("input[name=end]")).to_have_value("2027-03-02T10:00")
            await expect(form.locator("input[name=reason]")).to_have_value("换刀")
            await form.locator("input[name=cancel_bookings]").check()
            await form.locator("button").click()
            await expect(page.locator("#windows")).to_contain_text("换刀")
            await page.fill("#maintenance-form input[name=start]", "2027-03-01T08:00")
            await page.fill("#maintenance-form input[name=end]", "2027-03-01T10:00")  # in the past
            await page.fill("#maintenance-form input[name=reason]", "too late")
            await page.click("#maintenance-form button")
            await expect(page.locator(".problems")).to_have_text("该时段已经结束。")
            await shot(page, "machine")
            phone = await new_page(browser, str(client.base_url), phone=True)
            await log_in(phone, "tech@center.example")
            await shot(phone, "board-phone")
