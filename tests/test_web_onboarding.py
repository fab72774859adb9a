"""An SME from its registration to its first booking, in a real browser and in Chinese: the company registers
on a phone with its business licence, confirms its email from the link it was sent, an admin approves it on
the registrations page (eligible for a subsidy program), grants its contact a qualification, and the contact
logs in on the phone and books a machine. A refusal says why, to the contact."""

from __future__ import annotations

import re

from playwright.async_api import expect

from accounts.model import Role
from tests.accounts_rig import make_user, valid_uscc
from tests.browser import assert_cards, assert_fits_phone, chromium, log_in, new_page, shot
from tests.mail_rig import center, notify
from tests.test_registration import PDF, link_in

PASSWORD = "correct horse battery"


async def register(page, name: str, email: str) -> None:
    await page.goto("/register")
    await page.fill("input[name=organization_name]", name)
    await page.fill("input[name=uscc]", valid_uscc())
    await page.fill("input[name=contact_name]", "王工")
    await page.fill("input[name=contact_phone]", "0523-8888 1234")
    await page.fill("input[name=contact_email]", email)
    await page.fill("input[name=password]", PASSWORD)
    await page.set_input_files(
        "input[name=licence]", {"name": "营业执照.pdf", "mimeType": "application/pdf", "buffer": PDF}
    )
    await page.click("form button[type=submit]")
    await expect(page.locator("main")).to_contain_text("我们已向您的邮箱发送确认链接")


async def test_an_sme_registers_is_approved_and_books_its_first_slot(db_url, pool):
    async with center(db_url, pool, access_token_minutes=600) as (app, client, mailbox, _), chromium() as browser:
        await make_user(pool, Role.admin, email="admin@center.example")
        phone = await new_page(browser, str(client.base_url), phone=True)
        await register(phone, "靖江新材料科技有限公司", "wang@xincailiao.example")
        await assert_fits_phone(phone)
        await shot(phone, "onboarding-registered-phone")
        await register(phone, "空壳贸易有限公司", "li@shell.example")

        await notify(app)
        [mail] = mailbox.to("wang@xincailiao.example")
        await phone.goto(link_in(mail))
        await expect(phone.locator("main")).to_contain_text("邮箱已确认")
        [other] = mailbox.to("li@shell.example")
        await phone.goto(link_in(other))

        # The admin sees both, opens the licence, approves one with a program and refuses the other.
        desk = await new_page(browser, str(client.base_url))
        await log_in(desk, "admin@center.example")
        await desk.click("nav >> text=注册审核")
        rows = desk.locator("#registrations tbody tr")
        await expect(rows).to_have_count(2)
        wang = rows.filter(has_text="靖江新材料科技有限公司")
        client.cookies.update({c["name"]: c["value"] for c in await desk.context.cookies()})  # the admin's session
        licence = await client.get(await wang.locator("[data-test=licence]").get_attribute("href"))
        client.cookies.clear()
        assert licence.status_code == 200 and licence.content == PDF
        shell = rows.filter(has_text="空壳贸易有限公司")
        await shell.locator("input[name=reason]").fill("营业执照已过期")
        await shell.locator("[data-test=refuse] button").click()
        await expect(desk.locator(".notice")).to_contain_text("已拒绝")
        await shot(desk, "onboarding-registrations")
        await wang.locator("input[value=jingjiang-sme]").check()
        await wang.locator("[data-test=approve] button").click()
        await expect(desk.locator(".notice")).to_contain_text("已批准")
        await expect(desk.locator("#registrations tbody tr")).to_have_count(1)  # "nothing found" now
        await notify(app)
        assert mailbox.to("wang@xincailiao.example")[-1]["Subject"].endswith("注册已通过")
        refused = mailbox.to("li@shell.example")[-1]
        assert "营业执照已过期" in refused.get_body(("plain",)).get_content()

        # Approved, it is an organization eligible for the program; its contact gets a qualification.
        await desk.goto("/admin/registrations?status=approved")
        await desk.locator("#registrations a:has-text('单位')").click()
        await expect(desk.locator("main")).to_contain_text("靖江市中小企业共享制造补贴")
        await desk.locator("main a:has-text('王工')").click()
        await desk.select_option("#grant select[name=device_class]", "cnc")
        await desk.click("#grant button")
        await expect(desk.locator("#qualifications")).to_contain_text("数控加工中心")

        # The contact logs in with the password chosen when registering, and books.
        await log_in(phone, "wang@xincailiao.example", PASSWORD)
        await expect(phone.locator("#qualifications li.ok")).to_contain_text("数控加工中心")
        await phone.goto("/book?cls=cnc&device=cnc-01&start=2027-03-02T09:00")
        await phone.click("[data-test=quote]")
        await expect(phone.locator("[data-test=net]")).to_have_text("¥90.00")  # half subsidized
        await phone.click("[data-test=confirm]")
        await expect(phone.locator(".notice")).to_have_text("预约成功。")
        await expect(phone.locator("#upcoming")).to_contain_text("2027-03-02 09:00")
        await assert_cards(phone, "#upcoming", phone=True)
        await assert_fits_phone(phone)
        await shot(phone, "onboarding-first-booking-phone")
        await notify(app)
        assert re.match("预约已确认", mailbox.to("wang@xincailiao.example")[-1]["Subject"])
