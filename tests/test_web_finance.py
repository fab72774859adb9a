"""Finance in a real browser: March's usage and what it bills before anything is drafted, draft it, review
and issue the invoice (a confirmation first; a plain post issues nothing), download its PDF, every notice
naming what happened; its customer finds it under "my bookings", and the customer of another organization
cannot open it."""

from datetime import timedelta

from playwright.async_api import expect

from accounts.model import Role
from tests.accounts_rig import make_user
from tests.browser import chromium, log_in, new_page, shot
from tests.http import serve
from tests.test_invoices import NOW, book, center, customer, month_of, setup, t


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

            # A credit note is confirmed first too, and the notice names it and what it cancels.
            await page.goto("/finance?month=2027-03")
            await row.locator("input[name=reason]").fill("客户名称有误")
            await row.locator("button", has_text="红字冲销").click()
            await expect(page.locator("[data-test=summary]")).to_have_text("原因：客户名称有误")
            await expect(page.locator("#confirm")).to_contain_text("FH2027-000001")
            await page.click("[data-test=confirm]")
            await expect(page.locator(".notice")).to_have_text("已开具红字冲销 FH2027-000002（冲销 FH2027-000001）。")
            await expect(page.locator("#invoices tr[data-invoice]")).to_have_count(2)
            await page.goto("/finance?month=2027-04")  # under way: nothing to bill yet, and the page says why
            await expect(page.locator("[data-test=not-over]")).to_contain_text("本月尚未结束")


STATEMENT = (
    "交易日期,金额,附言,付款人\r\n"
    "2027-04-05,615.00,货款 {a},靖江精工\r\n"  # pays a in full
    "2027/04/06,100.00,{b} 部分,泰州机械\r\n"  # pays part of b
    "2027-04-07,615.00,三月设备费,不明客户\r\n"  # names no invoice: for review, then assigned to c
)


async def test_issue_the_month_then_import_a_bank_statement_and_review_it(db_url, pool):
    """Three customers drafted and issued at once (one confirmation for all), a bank statement uploaded
    through the page: a row paying an invoice in full, one in part and one naming no invoice, which the review
    step assigns. Bad files are shown as problems on the page, never a 500, and import nothing."""
    await setup(pool, center())
    orgs = [await customer(pool) for _ in range(3)]
    for day, org in enumerate(orgs, 10):  # a no-show fee of 615.00 each
        await book(pool, *org, "cnc-02", t(day, 9), t(day, 11), "no_show", "360.00", subsidy=False, fee="615.00")
    async with serve(db_url, clock=lambda: NOW + timedelta(days=10)) as client:  # after the statement's days
        await make_user(pool, Role.finance, email="finance@center.example")
        async with chromium() as browser:
            page = await new_page(browser, str(client.base_url))
            await log_in(page, "finance@center.example")
            await expect(page.locator("#usage tr[data-organization]")).to_have_count(3)
            await page.click("[data-test=draft]")
            await expect(page.locator(".notice")).to_have_text("已生成 3 张草稿。")
            await page.click("[data-test=issue-all]")
            await expect(page.locator("[data-test=summary]")).to_have_text("共 3 张发票，3 个客户，合计 ¥1,845.00。")
            await expect(page.locator("#confirm tr[data-invoice]")).to_have_count(3)
            await page.click("[data-test=confirm]")
            await expect(page.locator(".notice")).to_have_text("已开具 FH2027-000001、FH2027-000002、FH2027-000003。")
            numbers = {}
            for org in orgs:
                usage = page.locator(f"#usage tr[data-organization='{org[0]}'] td").last
                numbers[org[0]] = await usage.text_content()
            a, b, c = (numbers[org[0]] for org in orgs)

            await page.click("[data-test=bank-statements]")
            await expect(page.locator("h1")).to_have_text("银行流水")
            upload = page.locator("#upload")
            bad_files = [
                ("empty.csv", b"", "文件为空。"),
                ("gbk.csv", "日期,金额\n".encode("gbk") + b"\x80\xff\n", "文件不是 UTF-8 或 GBK 编码的文本"),
                ("invoice.pdf", b"%PDF-1.7\n", "第 1 行（列名）缺少日期列"),
                ("bad-lines.csv", b"date,amount,reference,payer\n2027-02-30,10.00,x,y\n2027-03-01,-5,x,y\n", "第 2 行"),
            ]
            for name, data, problem in bad_files:
                await upload.locator("input[type=file]").set_input_files(
                    {"name": name, "mimeType": "text/csv", "buffer": data}
                )
                await upload.locator("button").click()
                await expect(upload.locator(".problems")).to_contain_text(problem)
            await expect(upload.locator(".problems li")).to_have_count(2)  # a problem per bad line
            await shot(page, "bank-statement-bad-file")
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT count(*) FROM bank_row")
                assert (await cur.fetchone())[0] == 0

            text = STATEMENT.format(a=a, b=b).encode("gbk")  # as Chinese banks export
            await upload.locator("input[type=file]").set_input_files(
                {"name": "april.csv", "mimeType": "text/csv", "buffer": text}
            )
            await upload.locator("button").click()
            await expect(page.locator(".notice")).to_have_text(
                "已导入 april.csv：2 行记为收款（其中 1 行为部分付款），1 行待核对，0 行此前已导入。"
            )
            rows = page.locator("#rows tr[data-line]")
            await expect(rows).to_have_count(3)
            await expect(page.locator("#rows tr[data-line='2']")).to_have_attribute("data-result", "matched")
            await expect(page.locator("#rows tr[data-line='3']")).to_have_attribute("data-result", "partly_matched")
            await expect(page.locator("#rows tr[data-line='3']")).to_contain_text(
                f"{b} · 靖江精工机械有限公司 · 未收 ¥515.00"
            )
            await expect(page.locator("#rows tr[data-line='4']")).to_have_attribute("data-result", "unmatched")
            review = page.locator("#review tr[data-line='4']")
            await expect(review).to_have_count(1)
            await shot(page, "bank-statement-review")

            # c is the only invoice still open by exactly 615.00: suggested, and assigned after review.
            chosen = review.locator("select[name=invoice_id] option:checked")
            await expect(chosen).to_contain_text(c)
            await review.locator("[data-test=assign] button").click()
            await expect(page.locator(".notice")).to_have_text(f"已记录付款 ¥615.00 到 {c}（第 4 行）。")
            await expect(page.locator("#review")).to_have_count(0)
            await expect(page.locator("#rows tr[data-line='4']")).to_have_attribute("data-result", "assigned")
            await expect(page.locator("[data-test=counts]")).to_contain_text(
                "已匹配 1 · 部分匹配 1 · 待核对 0 · 已指定 1"
            )
            await shot(page, "bank-statement-reviewed")

            # The same file again records nothing; the list shows both imports.
            await page.goto("/finance/bank-statements")
            await upload.locator("input[type=file]").set_input_files(
                {"name": "april.csv", "mimeType": "text/csv", "buffer": text}
            )
            await upload.locator("button").click()
            await expect(page.locator(".notice")).to_contain_text("3 行此前已导入")
            await page.goto("/finance/bank-statements")
            await expect(page.locator("#statements tr[data-statement]")).to_have_count(2)
            await page.goto("/finance/receivables")
            await expect(page.locator("#receivables")).to_contain_text("¥515.00")
