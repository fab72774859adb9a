"""A customer's recurring series with one conflict, in a real browser: the form previews every occurrence with
its price and the one that is taken, and books the others."""

from playwright.async_api import expect

from tests.accounts_rig import Clock
from tests.booking_rig import NOW, customer, slot
from tests.browser import chromium, log_in, new_page, shot
from tests.http import serve


async def test_a_daily_series_with_one_taken_day(db_url, pool):
    async with serve(db_url, clock=Clock(NOW)) as client:
        booker = await customer(pool, client)
        other = await customer(pool, client)
        thursday = slot(3, 9, 10, device_id="cnc-01")
        assert (await client.post("/api/v1/bookings", json=thursday, headers=other.headers)).status_code == 201
        async with chromium() as browser:
            for phone in (False, True):
                page = await new_page(browser, str(client.base_url), phone=phone)
                await log_in(page, booker.email)
                await page.goto("/book?cls=cnc&device=cnc-01&start=2027-03-02T09:00")
                await page.select_option("[data-test=repeat]", "DAILY")
                await page.fill("[data-test=times]", "4")
                await page.click("[data-test=quote]")
                rows = page.locator("[data-test=occurrence]")
                await expect(rows).to_have_count(4)
                await expect(rows.nth(2)).to_have_class("taken")
                await expect(rows.nth(2)).to_contain_text("该时段已被预约或设备维护中")
                await shot(page, "series-preview-phone" if phone else "series-preview")
                if phone:
                    break
                await page.click("[data-test=confirm]")
                await expect(page.locator(".notice")).to_have_text("预约成功。")
                upcoming = page.locator("#upcoming")
                for day in ("2027-03-02 09:00", "2027-03-03 09:00", "2027-03-05 09:00"):
                    await expect(upcoming).to_contain_text(day)
                await expect(upcoming).not_to_contain_text("2027-03-04 09:00")
