"""Each role in a real browser: logging in lands on the role's own page, the navigation offers only the
role's pages, another role's page answers with a refusal, logging out ends the session, and a wrong
password is refused in the reader's language. The login page and the phone-sized board and bookings are
saved as screenshots."""

from playwright.async_api import expect

from accounts.model import Role
from tests.accounts_rig import Clock, make_user
from tests.booking_rig import NOW, customer
from tests.browser import chromium, log_in, new_page, shot
from tests.http import serve

ADMIN_PAGES = {
    "/admin/organizations",
    "/admin/registrations",
    "/admin/users",
    "/admin/hours",
    "/admin/audit",
    "/admin/notifications",
    "/admin/api-keys",
    "/admin/webhooks",
}
HOMES = {
    Role.admin: ("/board", {"/board", "/book", "/finance", "/management", *ADMIN_PAGES}),
    Role.technician: ("/board", {"/board", "/book", "/admin/users"}),
    Role.finance: ("/finance", {"/finance", "/management", "/admin/audit"}),
    Role.customer: ("/book", {"/book", "/my-bookings"}),
}


async def test_each_role_lands_on_its_pages_and_only_those(db_url, pool):
    async with serve(db_url, clock=Clock(NOW)) as client:
        booker = await customer(pool, client)
        emails = {Role.customer: booker.email}
        for role in (Role.admin, Role.technician, Role.finance):
            emails[role] = f"{role}@center.example"
            await make_user(pool, role, email=emails[role])
        async with chromium() as browser:
            page = await new_page(browser, str(client.base_url))
            await page.goto("/finance")  # not logged in: the login form, and back here afterwards
            await expect(page.locator("input[name=email]")).to_be_visible()
            await shot(page, "login")
            await page.fill("input[name=email]", emails[Role.finance])
            await page.fill("input[name=password]", "not the password")
            await page.click("form.card button[type=submit]")
            await expect(page.locator(".problems")).to_have_text("邮箱或密码错误。")
            for role, (home, allowed) in HOMES.items():
                page = await new_page(browser, str(client.base_url), phone=role == Role.customer)
                await log_in(page, emails[role])
                assert page.url.endswith(home), (role, page.url)
                links = set(
                    await page.locator("header nav a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
                )
                assert links == allowed, role
                forbidden = {"/board", "/finance"} - allowed
                for path in forbidden:
                    await page.goto(path)
                    await expect(page.locator(".problems")).to_have_text("您无权访问此页面。")
                if role == Role.customer:
                    await page.goto("/my-bookings")
                    await shot(page, "my-bookings-phone")
                await page.goto(home)
                cookies = await page.context.cookies()
                await page.click("header form[action='/logout'] button")
                await page.goto(home)
                await expect(page.locator("input[name=email]")).to_be_visible()
                # a copy of the session cookie taken before the logout is no good either
                copy = await new_page(browser, str(client.base_url))
                await copy.context.add_cookies(cookies)
                await copy.goto(home)
                await expect(copy.locator("input[name=email]")).to_be_visible()
