"""A customer ends a booking under way early: the rest of the slot is free for others at once (from the
class's next step), the booked end stays on the booking, the customer gets a receipt saying when the machine
was freed and what will be charged, and the billing basis decides the charge: `booked` the booked slot,
`metered` the running time but at least its minimum share of the booked slot (not of the part held)."""

from __future__ import annotations

from datetime import timedelta

from playwright.async_api import expect

from accounts.model import Role
from tests.accounts_rig import as_role, login
from tests.booking_rig import customer as make_customer
from tests.booking_rig import local, slot
from tests.browser import chromium, log_in, new_page, shot
from tests.mail_rig import center, notify


async def _book(client, c, body) -> dict:
    r = await client.post("/api/v1/bookings", json=body, headers=c.headers)
    assert r.status_code == 201, r.text
    return r.json()


async def test_ending_early_frees_the_rest_and_the_billing_basis_decides_the_charge(db_url, pool):
    async with center(db_url, pool, access_token_minutes=600) as (app, client, mailbox, clock):
        c, other = await make_customer(pool, client), await make_customer(pool, client)
        cnc = await _book(client, c, slot(2, 9, 12, device_id="cnc-01"))  # booked basis, 180/h
        robot = await _book(client, c, slot(2, 13, 17, device_id="robot-01"))  # metered, at least 50 %, 120/h

        def finish(booking: dict, headers: dict):
            return client.post(f"/api/v1/bookings/{booking['id']}/finish", headers=headers)

        r = await finish(cnc, c.headers)
        assert r.status_code == 409 and "only a booking in progress is ended" in r.json()["detail"]
        clock.now = local(2, 9.25)
        c.headers, other.headers = await login(client, c.email), await login(client, other.email)
        technician = await as_role(pool, client, Role.technician)
        r = await finish(cnc, c.headers)
        assert r.status_code == 409 and "has not been checked in yet" in r.json()["detail"]
        r = await client.post(f"/api/v1/bookings/{cnc['id']}/check-in", headers=technician)
        assert r.status_code == 200, r.text

        # 40 minutes in: the booking holds its begun half-hours, 09:00-10:00, and the rest is free.
        clock.now = local(2, 9) + timedelta(minutes=40)
        assert (await finish(cnc, other.headers)).status_code == 404
        r = await finish(cnc, c.headers)
        assert r.status_code == 200, r.text
        ended = r.json()
        assert ended["status"] == "completed" and ended["revision"] == 1
        assert (ended["start"], ended["end"]) == (local(2, 9).isoformat(), local(2, 10).isoformat())
        assert ended["booked_end"] == local(2, 12).isoformat()
        assert (await finish(cnc, c.headers)).status_code == 409
        await _book(client, other, slot(2, 10, 12, device_id="cnc-01"))

        # The robot ended right at its first step's end holds that step alone.
        clock.now = local(2, 13)
        assert (await client.post(f"/api/v1/bookings/{robot['id']}/check-in", headers=technician)).status_code == 200
        clock.now = local(2, 13.5)
        r = await finish(robot, c.headers)
        assert r.status_code == 200, r.text
        assert (r.json()["end"], r.json()["booked_end"]) == (local(2, 13.5).isoformat(), local(2, 17).isoformat())

        await notify(app)
        receipts = [m.get_body(("plain",)).get_content() for m in mailbox.to(c.email) if "提前结束" in m["Subject"]]
        assert len(receipts) == 2
        assert "设备自 10:00 起可供他人预约" in receipts[0] and "按预约时段计费（至 12:00）" in receipts[0]
        assert "设备自 13:30 起可供他人预约" in receipts[1] and "不少于预约时长的 50%" in receipts[1]

        # The month drafted: three booked hours of the CNC; half of the robot's four booked hours (it never ran),
        # not half of the half-hour it held.
        clock.now = local(31, 12)
        finance = await as_role(pool, client, Role.finance)
        r = await client.post("/api/v1/invoices/drafts", json={"month": "2027-03"}, headers=finance)
        assert r.status_code == 200, r.text
        lines = {}
        for invoice_id in r.json()["invoices"]:
            for line in (await client.get(f"/api/v1/invoices/{invoice_id}", headers=finance)).json()["lines"]:
                lines[line["booking_id"]] = line
        assert (lines[cnc["id"]]["quantity"], lines[cnc["id"]]["amount"]) == ("3.0000", "540.00")
        assert "09:00–12:00, ended 10:00" in lines[cnc["id"]]["description"]
        assert (lines[robot["id"]]["quantity"], lines[robot["id"]]["amount"]) == ("2.0000", "240.00")


async def test_a_customer_ends_a_booking_on_my_bookings(db_url, pool):
    async with center(db_url, pool, access_token_minutes=600) as (_app, client, _mailbox, clock):
        c = await make_customer(pool, client)
        booking = await _book(client, c, slot(2, 9, 12, device_id="printer-01"))
        clock.now = local(2, 9.1)
        technician = await as_role(pool, client, Role.technician)
        assert (await client.post(f"/api/v1/bookings/{booking['id']}/check-in", headers=technician)).status_code == 200
        clock.now = local(2, 10.2)
        async with chromium() as browser:
            page = await new_page(browser, str(client.base_url), phone=True)
            await log_in(page, c.email)
            await page.goto("/my-bookings")
            row = page.locator(f"#upcoming [data-booking='{booking['id']}']")
            await expect(row.locator("[data-test=finish]")).to_contain_text("剩余时段将释放给他人预约。按预约时段计费。")
            await shot(page, "end-early-phone")
            await row.locator("[data-test=finish] button").click()
            await expect(page.locator(".notice")).to_have_text(
                f"预约 {booking['id']} 已提前结束，设备自 10:30 起可供他人预约。"
            )
            past = page.locator(f"#past [data-booking='{booking['id']}']")
            await expect(past.locator("[data-test=status]")).to_have_text("已提前结束")
            await expect(past.locator("[data-test=booked-until]")).to_have_text("(预约至 12:00)")
            await expect(page.locator(f"#upcoming [data-booking='{booking['id']}']")).to_have_count(0)
