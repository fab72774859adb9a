"""The machine report and the comparison in a real browser: the customer opens a completed booking's report
from My bookings (Chinese, with the charts drawn on the server), ticks two bookings and compares them; a
customer of another organization finds neither. Screenshots: artifacts/screenshots/report-*.png and
compare-*.png."""

from playwright.async_api import expect

from tests.browser import chromium, log_in, new_page, shot
from tests.test_booking_report import center  # noqa: F401 (the fixture: two completed, frozen bookings)


async def test_report_and_comparison_pages(center):  # noqa: F811
    client, _, a, b, (first, second) = center
    async with chromium() as browser:
        page = await new_page(browser, str(client.base_url))
        await log_in(page, a.email)
        await page.goto("/my-bookings")
        row = page.locator(f'#past tr[data-booking="{first["id"]}"]')
        await row.locator("[data-test=report]").click()
        await expect(page.locator("h1")).to_contain_text("设备使用报告")
        await expect(page.locator("#oee")).to_contain_text("58.3%")
        await expect(page.locator("#parts")).to_contain_text("15")
        await expect(page.locator("#programs")).to_contain_text("O2002 FLANGE")
        await expect(page.locator("#alarms")).to_contain_text("E1 spindle overload")
        await expect(page.locator("#downtime")).to_contain_text("15 分")
        await expect(page.locator("#cycles")).to_contain_text("390 s")
        await expect(page.locator("#energy")).to_contain_text("7.13 kg")
        await expect(page.locator("[data-test=carbon]")).to_contain_text("按 0.5703 kg CO₂/kWh（生态环境部")
        assert await page.locator("#timeline svg rect").count() == 5
        assert await page.locator("#losses svg rect").count() == 5
        await shot(page, "report-desktop")
        phone = await new_page(browser, str(client.base_url), phone=True)
        await log_in(phone, a.email)
        await phone.goto(f"/bookings/{first['id']}/report")
        await shot(phone, "report-phone")

        await page.goto("/my-bookings")
        for booking in (first, second):
            await page.locator(f'#past tr[data-booking="{booking["id"]}"] input[type=checkbox]').check()
        await page.click("[data-test=compare]")
        await expect(page.locator("h1")).to_contain_text("预约对比")
        table = page.locator("#compare")
        await expect(table).to_contain_text("390 s")
        await expect(table).to_contain_text("600 s")
        await expect(table).to_contain_text("未计量")  # cnc-02 has no energy meter
        assert await page.locator("#heat svg rect").count() == 8
        await shot(page, "compare-desktop")

        stranger = await new_page(browser, str(client.base_url))
        await log_in(stranger, b.email)
        response = await stranger.goto(f"/bookings/{first['id']}/report")
        assert response is not None and response.status == 404
        response = await stranger.goto(f"/reports/compare?bookings={first['id']},{second['id']}")
        assert response is not None and response.status == 404
        await expect(stranger.locator(".problems")).to_have_text("未找到。")
        response = await page.goto(f"/reports/compare?bookings={first['id']}")
        assert response is not None and response.status == 422
