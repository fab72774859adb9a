"""My bookings as a customer reads it (issue 16's small things): a no-show fee under its own name, a
cancelled booking never listed as usage (a late cancellation's fee stays visible with it), a booking whose
slot has begun is under way from its first minute, and a booking past midnight shows the day it ends."""

from datetime import timedelta

from playwright.async_api import expect

from tests.accounts_rig import Clock
from tests.booking_rig import NOW, customer, local
from tests.browser import chromium, log_in, new_page, shot
from tests.http import serve
from tests.test_invoices import book


async def test_my_bookings_name_fees_and_times_rightly(db_url, pool):
    now = NOW + timedelta(hours=2, minutes=10)  # Monday 09:10
    async with serve(db_url, clock=Clock(now)) as client:
        me = await customer(pool, client)
        under_way = await book(pool, me.org_id, me.user_id, "cnc-01", local(0, 9), local(0, 11), "confirmed", "360.00")
        overnight = await book(pool, me.org_id, me.user_id, "printer-01", local(2, 22), local(3, 2), "confirmed",
                               "120.00")  # fmt: skip
        no_show = await book(pool, me.org_id, me.user_id, "cnc-02", local(-3, 9), local(-3, 10), "no_show", "180.00",
                             fee="180.00")  # fmt: skip
        late = await book(pool, me.org_id, me.user_id, "robot-01", local(1, 9), local(1, 10), "cancelled", "120.00",
                          fee="60.00")  # fmt: skip
        async with pool.connection() as conn:
            await conn.execute("UPDATE booking SET cancelled_at = %s, late_cancellation = true WHERE id = %s",
                               (now - timedelta(hours=1), late))  # fmt: skip
        async with chromium() as browser:
            page = await new_page(browser, str(client.base_url))
            await log_in(page, me.email)
            await page.goto("/my-bookings")
            upcoming = page.locator("#upcoming")
            await expect(upcoming.locator(f"tr[data-booking='{under_way}'] [data-test=status]")).to_have_text("进行中")
            await expect(upcoming.locator(f"tr[data-booking='{overnight}']")).to_contain_text("2027-03-04 02:00")
            await expect(upcoming.locator(f"tr[data-booking='{late}']")).to_have_count(0)

            past = page.locator("#past")
            await expect(past.locator("thead")).to_contain_text("未到场费")
            await expect(past.locator("thead")).not_to_contain_text("逾期取消费")
            await expect(past.locator(f"tr[data-booking='{no_show}'] [data-test=no-show-fee]")).to_have_text("¥180.00")
            await expect(past.locator(f"tr[data-booking='{late}']")).to_have_count(0)  # cancelled: not usage

            cancelled = page.locator("#cancelled")
            await expect(cancelled.locator(f"tr[data-booking='{late}'] [data-test=late-fee]")).to_have_text("¥60.00")
            await shot(page, "my-bookings-fees")
