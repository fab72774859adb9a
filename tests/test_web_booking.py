"""Booking in a real browser: a customer picks a free slot on the week calendar, sees the subsidized price
before confirming, finds the booking under "my bookings" and on the calendar, and cancels it."""

import re

from playwright.async_api import expect

from accounts.model import Role
from tests.accounts_rig import Clock, make_user
from tests.booking_rig import NOW, customer, slot
from tests.browser import assert_cards, assert_fits_phone, chromium, log_in, new_page, shot
from tests.http import serve


async def test_book_a_slot_see_it_on_the_calendar_and_cancel_it(db_url, pool):
    async with serve(db_url, clock=Clock(NOW)) as client:
        booker = await customer(pool, client, programs=("jingjiang-sme",))
        async with chromium() as browser:
            page = await new_page(browser, str(client.base_url))
            await log_in(page, booker.email)
            assert page.url.endswith("/book")
            await shot(page, "book-calendar")
            # Tuesday 2 March, 09:00, on the CNC class's calendar (the first class)
            tuesday_nine = page.locator('#calendar a.free[data-start="2027-03-02T09:00:00+08:00"]')
            # A slot says what it is to a screen reader: its date, time and state.
            await expect(tuesday_nine).to_have_attribute("aria-label", "2027-03-02 09:00 可约")
            await tuesday_nine.click()
            await page.select_option("select[name=device_id]", "cnc-01")
            await page.click("[data-test=quote]")
            # 1 h x 180.00, half of it subsidized by the Jingjiang SME program
            await expect(page.locator("[data-test=net]")).to_have_text("¥90.00")
            await shot(page, "book-price")
            await page.click("[data-test=confirm]")
            await expect(page.locator(".notice")).to_have_text("预约成功。")
            await expect(page.locator("#upcoming")).to_contain_text("2027-03-02 09:00")
            await shot(page, "my-bookings")
            other = await customer(pool, client)
            taken = slot(1, 11, 12, device_id="cnc-01")
            assert (await client.post("/api/v1/bookings", json=taken, headers=other.headers)).status_code == 201
            await page.goto("/book?cls=cnc&device=cnc-01&week=2027-03-01")
            calendar = page.locator("#calendar")
            await expect(calendar.locator('.mine[data-start="2027-03-02T09:00:00+08:00"]')).to_have_count(1)
            await expect(calendar.locator('.taken[data-start="2027-03-02T11:00:00+08:00"]')).to_have_count(1)
            await expect(calendar.locator('.closed[data-start="2027-03-02T07:30:00+08:00"]')).to_have_count(1)
            await expect(calendar.locator('.free[data-start="2027-03-02T12:00:00+08:00"]')).to_have_count(1)
            await page.goto("/my-bookings")
            await page.click("#upcoming button:has-text('取消')")
            await expect(page.locator(".notice")).to_have_text("已取消。")
            await expect(page.locator("#upcoming")).not_to_contain_text("2027-03-02 09:00")
            # the English switch
            await page.click("[data-test=language]")
            await expect(page.locator("h1")).to_have_text("My bookings")


async def test_a_technician_books_for_a_customer(db_url, pool):
    async with serve(db_url, clock=Clock(NOW)) as client:
        booker = await customer(pool, client)
        await make_user(pool, Role.technician, email="floor@center.example")
        async with chromium() as browser:
            page = await new_page(browser, str(client.base_url))
            await log_in(page, "floor@center.example")
            await page.goto("/book?cls=robot")
            await page.locator('#calendar a.free[data-start="2027-03-03T14:00:00+08:00"]').first.click()
            await page.select_option("select[name=user_id]", str(booker.user_id))
            await page.click("[data-test=quote]")
            await expect(page.locator("[data-test=net]")).to_have_text("¥120.00")  # 1 h of a robot, no program
            await page.click("[data-test=confirm]")
            await expect(page.locator(".notice")).to_have_text("预约成功。")
        async with pool.connection() as conn:
            rows = await (await conn.execute("SELECT user_id, created_by FROM booking")).fetchall()
        assert len(rows) == 1 and rows[0][0] == booker.user_id and rows[0][1] != booker.user_id


async def test_the_booking_page_tells_a_customer_which_classes_they_may_book(db_url, pool):
    from datetime import date

    from accounts.qualifications import grant_qualification
    from tests.accounts_rig import ACTOR

    async with serve(db_url, clock=Clock(NOW)) as client:
        booker = await customer(pool, client, classes=("cnc",))
        async with pool.connection() as conn:
            await grant_qualification(
                conn, user_id=booker.user_id, device_class="robot", expires_on=date(2027, 2, 1), at=NOW, actor=ACTOR
            )
        client.cookies.set("fabhub_session", booker.headers["Authorization"].removeprefix("Bearer "))
        page = (await client.get("/book")).text
        listed = re.findall(r'<li class="(ok|refused)">([^<]+)</li>', page)
        assert listed == [
            ("ok", "数控加工中心: 操作资格有效至 2027-12-31"),
            ("refused", "工业机器人工作站: 操作资格已于 2027-02-01 到期，请联系技术人员续期"),
            ("refused", "3D打印机: 尚无操作资格：经技术人员培训后授予"),
        ]


async def test_my_bookings_on_a_desktop_and_a_phone(db_url, pool):
    """Upcoming bookings (one late to cancel, with its fee), a waiting-list entry, a cancelled booking (listed
    with its fee, never as usage) and a calendar link: on a desktop three tables, at 390 px a card per row with each cell labelled by its column,
    nothing wider than the screen and every button in reach."""
    async with serve(db_url, clock=Clock(NOW), access_token_minutes=24 * 60) as client:
        booker = await customer(pool, client, programs=("jingjiang-sme",))
        other = await customer(pool, client)
        made = []
        for device, day, hour in (("cnc-01", 1, 9), ("robot-01", 0, 10), ("cnc-02", 0, 12)):
            body = slot(day, hour, hour + 1, device_id=device)
            r = await client.post("/api/v1/bookings", json=body, headers=booker.headers)
            assert r.status_code == 201, r.text
            made.append(r.json()["id"])
        r = await client.post(f"/api/v1/bookings/{made[2]}/cancel", json={}, headers=booker.headers)
        assert r.status_code == 200, r.text  # inside 24 h: a fee
        taken = slot(2, 9, 10, device_id="cnc-01")
        assert (await client.post("/api/v1/bookings", json=taken, headers=other.headers)).status_code == 201
        r = await client.post("/api/v1/waiting-list", json=taken, headers=booker.headers)
        assert r.status_code == 201, r.text
        async with chromium() as browser:
            for phone in (False, True):
                page = await new_page(browser, str(client.base_url), phone=phone)
                await log_in(page, booker.email)
                await page.goto("/my-bookings")
                await page.click("form[action='/my-bookings/calendar-link'] button")
                await expect(page.locator("#feed-url")).to_be_visible()
                await expect(page.locator("#upcoming")).to_contain_text("逾期取消费")
                await expect(page.locator("#cancelled")).to_contain_text(
                    "¥45.00"
                )  # half of the subsidized 90.00: the late fee
                for table in ("#upcoming", "#waiting", "#cancelled"):
                    await assert_cards(page, table, phone=phone)
                await shot(page, "my-bookings-phone" if phone else "my-bookings-desktop")
                if not phone:
                    assert await page.evaluate("document.documentElement.scrollWidth") <= 1366
                    continue
                await assert_fits_phone(page)
                await page.locator(f"#upcoming tr[data-booking='{made[0]}'] button").click()
                await expect(page.locator(".notice")).to_have_text("已取消。")
                await page.click("[data-test=language]")
                await expect(page.locator("#upcoming thead")).to_contain_text("You pay")
                for table in ("#upcoming", "#waiting", "#cancelled"):
                    await assert_cards(page, table, phone=True)
                await assert_fits_phone(page)
                await shot(page, "my-bookings-phone-en")


async def test_the_price_check_says_at_once_why_a_slot_cannot_be_booked(db_url, pool):
    """A taken slot, and a machine under maintenance, are said when the price is checked, with the nearest
    free slots: the form never offers 确认预约 for what booking would refuse."""
    from tests.accounts_rig import as_role

    async with serve(db_url, clock=Clock(NOW)) as client:
        holder = await customer(pool, client)
        booker = await customer(pool, client)
        assert (await client.post("/api/v1/bookings", json=slot(1, 9, 10, device_id="cnc-01"),
                                  headers=holder.headers)).status_code == 201  # fmt: skip
        tech = await as_role(pool, client, Role.technician)
        window = {**slot(2, 8, 12), "device_id": "cnc-02", "reason": "换刀"}
        assert (await client.post("/api/v1/maintenance", json=window, headers=tech)).status_code == 201

        quoted = await client.post("/api/v1/quotes", json=slot(1, 9, 10, device_id="cnc-01"), headers=booker.headers)
        assert quoted.status_code == 200, quoted.text
        body = quoted.json()
        assert body["bookable"] is False and body["unavailable"] == "the slot is taken"
        assert body["alternatives"] and all(a["start"].endswith("+08:00") for a in body["alternatives"])

        async with chromium() as browser:
            page = await new_page(browser, str(client.base_url))
            await log_in(page, booker.email)
            await page.goto("/book?cls=cnc&device=cnc-01&start=2027-03-02T09:00")
            await page.click("[data-test=quote]")
            await expect(page.locator(".problems")).to_contain_text("该时段已被预约。")
            await expect(page.locator("[data-test=confirm]")).to_have_count(0)
            await expect(page.locator("#alternatives li").first).to_be_visible()
            await shot(page, "book-taken")

            await page.goto("/book?cls=cnc&device=cnc-02&start=2027-03-03T09:00")
            await page.click("[data-test=quote]")
            await expect(page.locator(".problems")).to_contain_text("cnc-02 在此时段维护中。")
            await expect(page.locator("[data-test=confirm]")).to_have_count(0)
            await page.locator("#alternatives a").first.click()  # the nearest free slot, one click away
            await page.click("[data-test=quote]")
            await page.click("[data-test=confirm]")
            await expect(page.locator(".notice")).to_have_text("预约成功。")
