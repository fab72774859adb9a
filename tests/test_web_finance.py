"""Finance in a real browser: March's usage and what it bills before anything is drafted, draft it, review
and issue the invoice (a confirmation first; a plain post issues nothing), download its PDF, every notice
naming what happened; its customer finds it under "my bookings", and the customer of another organization
cannot open it."""

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
            # Before any draft: 360 + 120 usage, 360 + 15 fees, 180 + 60 subsidy (tests/test_invoices.py).
            usage = page.locator(f"#usage tr[data-organization='{org[0]}']")
            await expect(usage.locator("td")).to_have_text(
                ["靖江精工机械有限公司", "4", "3.00", "¥855.00", "¥240.00", "¥615.00", "尚未生成草稿"]
            )
            await expect(page.locator("#invoices")).to_contain_text("暂无数据")
            await shot(page, "finance-usage-before-drafting")
            await page.click("[data-test=draft]")
            await expect(page.locator(".notice")).to_have_text("已生成 1 张草稿。")
            row = page.locator("#invoices tr[data-invoice]")
            await expect(row).to_have_count(1)
            await expect(row).to_contain_text("草稿")
            await expect(usage.locator("td").last).to_have_text("草稿")
            invoice_id = await row.get_attribute("data-invoice")
            await row.locator("a").first.click()
            await expect(page.locator("#lines")).to_contain_text("¥615.00")
            await shot(page, "finance-invoice-draft")
            await page.go_back()
            # A post without the confirmation shows what would be issued and issues nothing.
            csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
            plain = await page.request.post(
                f"/finance/invoices/{invoice_id}/issue", form={"csrf": csrf, "month": "2027-03"}
            )
            assert plain.status == 200 and "确认开具" in await plain.text()
            await page.click("[data-test=issue]")
            await expect(page.locator("h1")).to_have_text("开具发票 · 2027-03")
            await expect(page.locator("[data-test=summary]")).to_have_text("共 1 张发票，1 个客户，合计 ¥615.00。")
            await shot(page, "finance-issue-confirm")
            await page.click("[data-test=cancel]")
            await expect(row).to_contain_text("草稿")
            await page.click("[data-test=issue]")
            await page.click("[data-test=confirm]")
            await expect(page.locator(".notice")).to_have_text("已开具 FH2027-000001。")
            await expect(row).to_contain_text("FH2027-000001")
            await expect(usage.locator("td").last).to_have_text("FH2027-000001")
            await shot(page, "finance-month")
            async with page.expect_download() as download:
                await row.locator("[data-test=pdf]").click()
            pdf = await (await download.value).path()
            assert pdf.read_bytes()[:5] == b"%PDF-"
            # The tax platform's number recorded back on the issued invoice, then the month's e-invoice sheet.
            await row.locator("[data-test=tax-number-form] input[name=number]").fill("25327000000012345678")
            await row.locator("[data-test=tax-number-form] button").click()
            await expect(page.locator(".notice")).to_have_text(
                "已登记 FH2027-000001 的数电发票号码 25327000000012345678。"
            )
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
