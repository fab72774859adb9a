"""Finance in a real browser: draft March, review and issue the invoice, download its PDF; its customer
finds it under "my bookings", and the customer of another organization cannot open it."""

from playwright.async_api import expect

from accounts.model import Role
from tests.accounts_rig import make_user
from tests.browser import chromium, log_in, new_page, shot
from tests.http import serve
from tests.test_invoices import NOW, center, customer, month_of, setup


async def test_issue_an_invoice_download_its_pdf_and_keep_it_from_strangers(db_url, pool):
    await setup(pool, center())
    org = await customer(pool)
    await month_of(pool, org)
    other = await customer(pool)
    async with serve(db_url, clock=lambda: NOW) as client:
        await make_user(pool, Role.finance, email="finance@center.example")
        await make_user(pool, Role.customer, org[0], "owner@example.com")
        await make_user(pool, Role.customer, other[0], "stranger@example.com")
        async with chromium() as browser:
            page = await new_page(browser, str(client.base_url))
            await log_in(page, "finance@center.example")
            assert page.url.endswith("/finance")  # on 1 April the month to bill is March
            await expect(page.locator("h1")).to_contain_text("2027-03")
            await page.click("[data-test=draft]")
            row = page.locator("#invoices tr[data-invoice]")
            await expect(row).to_have_count(1)
            await expect(row).to_contain_text("草稿")
            invoice_id = await row.get_attribute("data-invoice")
            await row.locator("a").first.click()
            await expect(page.locator("#lines")).to_contain_text("¥615.00")
            await shot(page, "finance-invoice-draft")
            await page.go_back()
            await page.click("[data-test=issue]")
            await expect(row).to_contain_text("FH2027-000001")
            await shot(page, "finance-month")
            async with page.expect_download() as download:
                await row.locator("[data-test=pdf]").click()
            pdf = await (await download.value).path()
            assert pdf.read_bytes()[:5] == b"%PDF-"
            # The tax platform's number recorded back on the issued invoice, then the month's e-invoice sheet.
            await row.locator("[data-test=tax-number-form] input[name=number]").fill("25327000000012345678")
            await row.locator("[data-test=tax-number-form] button").click()
            await expect(page.locator(".notice")).to_have_text("已保存。")
            await expect(row.locator("[data-test=tax-number]")).to_have_text("数电发票号码 25327000000012345678")
            await page.goto(f"/finance/invoices/{invoice_id}")
            await expect(page.locator("[data-test=tax-number]")).to_have_text("数电发票号码 25327000000012345678")
            await page.go_back()
            async with page.expect_download() as download:
                await page.click("[data-test=einvoice]")
            sheet = await (await download.value).path()
            assert sheet.read_bytes()[:2] == b"PK"

            owner = await new_page(browser, str(client.base_url))
            await log_in(owner, "owner@example.com")
            await owner.goto("/my-bookings")
            await expect(owner.locator("#my-invoices")).to_contain_text("FH2027-000001")
            await shot(owner, "customer-invoices")
            stranger = await new_page(browser, str(client.base_url))
            await log_in(stranger, "stranger@example.com")
            refused = await stranger.request.get(f"/api/v1/invoices/{invoice_id}.pdf")
            assert refused.status == 404
            await stranger.goto("/finance")
            await expect(stranger.locator(".problems")).to_have_text("您无权访问此页面。")
