"""Moving a booking on the pages, on a phone: from My bookings to the change form, the new price before
confirming, a taken slot answered with the nearest free ones (one click to take one), and no move offered
once the late-cancellation window has begun."""

from __future__ import annotations

from datetime import datetime, timedelta

from playwright.async_api import expect

from tests.accounts_rig import Clock
from tests.booking_rig import NOW, customer, local, slot
from tests.browser import assert_fits_phone, chromium, log_in, new_page, shot
from tests.http import serve


async def test_a_customer_moves_a_booking_on_a_phone(db_url, pool):
    clock = Clock(NOW)
    async with serve(db_url, clock=clock) as client:
        booker, other = await customer(pool, client, programs=("jingjiang-sme",)), await customer(pool, client)
        r = await client.post("/api/v1/bookings", json=slot(3, 9, 10, device_id="cnc-01"), headers=booker.headers)
        assert r.status_code == 201, r.text
        booking = r.json()
        r = await client.post("/api/v1/bookings", json=slot(3, 14, 16, device_id="cnc-01"), headers=other.headers)
        assert r.status_code == 201
        r = await client.post("/api/v1/bookings", json=slot(3, 14, 16, device_id="cnc-02"), headers=other.headers)
        assert r.status_code == 201

        async with chromium() as browser:
            page = await new_page(browser, str(client.base_url), phone=True)
            await log_in(page, booker.email)
            await page.goto("/my-bookings")
            await page.click(f"[data-booking='{booking['id']}'] [data-test=change]")
            await expect(page.locator("h1")).to_contain_text("预约改期")
            await expect(page.locator("#current")).to_contain_text("2027-03-04 09:00")
            await assert_fits_phone(page)

            # Two hours the next morning: the new price, then the move.
            await page.fill("input[name=start]", "2027-03-05T09:00")
            await page.fill("input[name=end]", "2027-03-05T11:00")
            await page.click("[data-test=quote]")
            await expect(page.locator("[data-test=net]")).to_have_text("¥180.00")
            await shot(page, "change-booking-phone")
            await page.click("[data-test=confirm]")
            await expect(page.locator(".notice")).to_have_text("已改期。")
            await expect(page.locator(f"[data-booking='{booking['id']}']")).to_contain_text("2027-03-05 09:00")

            # Onto a slot both machines hold: said at once, with the nearest free slots to take instead.
            await page.click(f"[data-booking='{booking['id']}'] [data-test=change]")
            await page.fill("input[name=start]", "2027-03-04T14:00")
            await page.fill("input[name=end]", "2027-03-04T16:00")
            await page.click("[data-test=quote]")
            await expect(page.locator(".problems")).to_contain_text("该时段已被预约。")
            await expect(page.locator("[data-test=confirm]")).to_have_count(0)
            await assert_fits_phone(page)
            await shot(page, "change-booking-taken-phone")
            await page.locator("#alternatives button").first.click()
            await page.click("[data-test=confirm]")
            await expect(page.locator(".notice")).to_have_text("已改期。")
            moved = (await client.get(f"/api/v1/bookings/{booking['id']}", headers=booker.headers)).json()
            assert moved["revision"] == 2
            assert moved["end"] <= local(3, 14).isoformat() or moved["start"] >= local(3, 16).isoformat()

            # Inside the class's 24-hour window the page offers no move, and a form sent anyway says why.
            clock.now = datetime.fromisoformat(moved["start"]) - timedelta(hours=2)
            await log_in(page, booker.email)
            await page.goto("/my-bookings")
            await expect(page.locator(f"[data-booking='{booking['id']}'] [data-test=change]")).to_have_count(0)
            await page.goto(f"/my-bookings/{booking['id']}/change")
            await page.fill("input[name=start]", "2027-03-08T09:00")
            await page.fill("input[name=end]", "2027-03-08T10:00")
            await page.click("[data-test=quote]")  # the quote shows the price; the move itself is refused
            await page.evaluate(
                "document.querySelector('#change').requestSubmit(document.querySelector('[data-test=confirm]'))"
            )
            await expect(page.locator(".problems")).to_contain_text("小时内开始，已不能改期")

            # Another organization's booking has no change page.
            theirs = await page.goto("/my-bookings/999999/change")
            assert theirs is not None and theirs.status == 404
