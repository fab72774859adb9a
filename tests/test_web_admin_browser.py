"""The admin pages in a real browser, on a desktop and at 390 px: a CSV import with a bad row (the preview
names the row's problem and offers no import; fixed in place, it imports), and every admin page without
horizontal overflow on the phone. Screenshots go to artifacts/screenshots/."""

import csv
import io

from playwright.async_api import expect

from accounts.model import Role
from tests.accounts_rig import Clock, make_org, make_user, valid_uscc
from tests.booking_rig import NOW
from tests.browser import chromium, log_in, new_page, shot
from tests.http import serve


async def test_csv_import_with_a_bad_row_on_desktop_and_phone(db_url, pool, tmp_path):
    code = valid_uscc()
    org_id = await make_org(pool, "无锡精密机械有限公司", code)
    rows = [
        ["邮箱", "姓名", "角色", "单位"],
        ["wu@example.com", "吴工", "客户", code],
        ["bad-email", "郑工", "客户", code],
    ]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    upload = tmp_path / "users.csv"
    upload.write_bytes(out.getvalue().encode("utf-8-sig"))
    async with serve(db_url, clock=Clock(NOW)) as client:
        await make_user(pool, Role.admin, email="admin@center.example")
        async with chromium() as browser:
            for phone in (False, True):
                page = await new_page(browser, str(client.base_url), phone=phone)
                await log_in(page, "admin@center.example")
                await page.goto("/admin/import-users")
                await page.set_input_files("input[name=file]", str(upload))
                await page.click("[data-test=check]")
                bad = page.locator('#preview tr[data-line="3"]')
                await expect(bad).to_contain_text("“bad-email”不是有效的邮箱地址。")
                await expect(page.locator("[data-test=import]")).to_have_count(0)
                await shot(page, f"admin-import-bad-row{'-phone' if phone else ''}")
                if phone:
                    await page.fill("textarea[name=text]", out.getvalue().replace("bad-email", "zheng@example.com"))
                    await page.click("[data-test=check]")
                    await page.click("[data-test=import]")
                    await expect(page.locator("#imported tr")).to_have_count(3)  # the header and two users
                    await shot(page, "admin-import-done-phone")
            for path in (
                "/admin/organizations",
                f"/admin/organizations/{org_id}",
                "/admin/users",
                "/admin/hours",
                "/admin/audit",
            ):
                await page.goto(path)
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= 390, (path, width)
                await shot(page, "admin" + path.replace("/admin", "").replace("/", "-") + "-phone")
