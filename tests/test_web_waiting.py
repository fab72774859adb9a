"""A waiting list that turns into a booking, in a real browser on a phone-sized screen: the slot is taken,
the customer joins the waiting list from the booking form, the holder cancels, the job offers the slot, and
the customer books it from "my bookings" and sets how they want to be told."""

import httpx
from playwright.async_api import expect

from tests.accounts_rig import Clock
from tests.booking_rig import NOW, customer, slot
from tests.browser import chromium, log_in, new_page, shot
from tests.http import app_for, serving


async def test_join_the_waiting_list_then_book_the_offered_slot(db_url, pool):
    app = app_for(db_url, clock=Clock(NOW), access_token_minutes=600)
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        holder = await customer(pool, client)
        waiter = await customer(pool, client)
        wanted = slot(1, 9, 10, device_id="cnc-01")
        held = await client.post("/api/v1/bookings", json=wanted, headers=holder.headers)
        assert held.status_code == 201
        async with chromium() as browser:
            page = await new_page(browser, base, phone=True)
            await log_in(page, waiter.email)
            await page.goto("/book?cls=cnc&device=cnc-01&start=2027-03-02T09:00")
            await page.click("[data-test=quote]")  # taken: said at the price check, with the offer to wait
            await expect(page.locator(".problems")).to_contain_text("该时段已被预约。")
            await expect(page.locator("[data-test=confirm]")).to_have_count(0)
            await expect(page.locator("[data-test=wait]")).to_be_visible()
            await shot(page, "waiting-join-phone")
            await page.click("[data-test=wait]")
            await expect(page.locator(".notice")).to_have_text("已加入候补。")
            await expect(page.locator("#waiting")).to_contain_text("候补中")

            cancelled = await client.post(f"/api/v1/bookings/{held.json()['id']}/cancel", headers=holder.headers)
            assert cancelled.status_code == 200
            ran, served = await app.state.jobs.run("waiting-list")
            assert ran and served == {"booked": 0, "offered": 1}
            await page.reload()
            await expect(page.locator("#waiting")).to_contain_text("已为您保留")
            await shot(page, "waiting-offered-phone")
            await page.click("#waiting [data-test=accept]")
            await expect(page.locator(".notice")).to_have_text("预约成功。")
            await expect(page.locator("#upcoming")).to_contain_text("2027-03-02 09:00")
            await expect(page.locator("#waiting")).to_have_count(0)
            # No horizontal overflow on the phone.
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390

            await page.uncheck("#notifications input[value='1440']")
            await page.select_option("#notifications select[name=language]", "en")
            await page.click("#notifications button")
            await expect(page.locator(".notice")).to_have_text("已保存。")
            chosen = (await client.get("/api/v1/me/notifications", headers=waiter.headers)).json()
            assert chosen == {"email": True, "language": "en", "reminder_minutes": [60]}
