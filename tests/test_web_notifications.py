"""What people are told, driven from the pages in a real browser: a customer books, moves, waits for a taken
slot and takes the offer on a phone; another cancels; a technician's maintenance cancels a booking; a machine
goes down during a booking. Every message reaches a real SMTP server (or the technicians' WeCom robot, a local
webhook) exactly once, and the admin's delivery log shows each as sent."""

from __future__ import annotations

from collections import Counter

from playwright.async_api import expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from accounts.model import Role
from telemetry.model import Sample
from telemetry.writer import BatchWriter
from tests.accounts_rig import make_user
from tests.booking_rig import customer, local, slot
from tests.browser import assert_fits_phone, chromium, log_in, new_page, shot
from tests.http import serving
from tests.mail_rig import center, notify


async def test_every_message_of_a_day_at_the_center_arrives_once(db_url, pool):
    robot_said: list[dict] = []

    async def webhook(request: Request) -> JSONResponse:
        robot_said.append(await request.json())
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    robot = Starlette(routes=[Route("/cgi-bin/webhook/send", webhook, methods=["POST"])])
    async with serving(robot) as robot_url:
        settings = {
            "technicians_robot": f"wecom:{robot_url}/cgi-bin/webhook/send?key=k",
            "access_token_minutes": 600,
        }
        async with center(db_url, pool, **settings) as (app, client, mailbox, clock), chromium() as browser:
            a, b = await customer(pool, client), await customer(pool, client)
            await make_user(pool, Role.technician, email="tech@center.example")
            await make_user(pool, Role.admin, email="admin@center.example")
            phone = await new_page(browser, str(client.base_url), phone=True)
            await log_in(phone, a.email)

            # A books Tuesday 09:00 on the page, then moves it to Wednesday.
            await phone.goto("/book?cls=cnc&device=cnc-01&start=2027-03-02T09:00")
            await phone.click("[data-test=quote]")
            await phone.click("[data-test=confirm]")
            await expect(phone.locator(".notice")).to_have_text("预约成功。")
            [booking] = (
                await client.get(
                    "/api/v1/bookings",
                    params={"from": local(0, 0).isoformat(), "to": local(7, 0).isoformat()},
                    headers=a.headers,
                )
            ).json()["items"]
            await phone.click(f"[data-booking='{booking['id']}'] [data-test=change]")
            await phone.fill("input[name=start]", "2027-03-03T09:00")
            await phone.fill("input[name=end]", "2027-03-03T10:00")
            await phone.click("[data-test=quote]")
            await phone.click("[data-test=confirm]")
            await expect(phone.locator(".notice")).to_have_text("已改期。")

            # B holds Thursday 09:00; A waits for it, B cancels, the offer comes, A takes it.
            r = await client.post("/api/v1/bookings", json=slot(3, 9, 10, device_id="cnc-01"), headers=b.headers)
            assert r.status_code == 201, r.text
            held = r.json()
            await phone.goto("/book?cls=cnc&device=cnc-01&start=2027-03-04T09:00")
            await phone.click("[data-test=quote]")  # taken: no confirm offered, the waiting list is
            await phone.click("[data-test=wait]")
            await expect(phone.locator(".notice")).to_have_text("已加入候补。")
            assert (await client.post(f"/api/v1/bookings/{held['id']}/cancel", headers=b.headers)).status_code == 200
            assert (await app.state.jobs.run("waiting-list"))[0]
            await phone.reload()
            await phone.click("#waiting [data-test=accept]")
            await expect(phone.locator(".notice")).to_have_text("预约成功。")
            await assert_fits_phone(phone)

            # A technician's maintenance on Wednesday morning cancels A's moved booking.
            desk = await new_page(browser, str(client.base_url))
            await log_in(desk, "tech@center.example")
            await desk.goto("/machines/cnc-01")
            await desk.fill("#maintenance-form input[name=start]", "2027-03-03T08:00")
            await desk.fill("#maintenance-form input[name=end]", "2027-03-03T11:00")
            await desk.fill("#maintenance-form input[name=reason]", "更换主轴轴承")
            await desk.set_checked("#maintenance-form input[name=cancel_bookings]", True)
            await desk.click("#maintenance-form button")
            await expect(desk.locator("#windows")).to_contain_text("更换主轴轴承")

            # B's booking this morning is under way when cnc-02 goes down: the technicians' robot hears of it.
            r = await client.post("/api/v1/bookings", json=slot(0, 8, 12, device_id="cnc-02"), headers=b.headers)
            assert r.status_code == 201, r.text
            clock.now = local(0, 9)
            writer = BatchWriter(pool, clock=clock)
            await writer.write_batch([Sample(local(0, 8.5), "cnc-02", "state", "running")])
            await writer.write_batch([Sample(local(0, 8.9), "cnc-02", "state", "down")])
            assert (await app.state.jobs.run("machine-alerts"))[0]
            for _ in range(3):  # later runs find nothing new
                await notify(app)

            sent = Counter((m["To"], m["Subject"].split("：")[0]) for m in mailbox.messages)
            assert sent == {
                (a.email, "预约已确认"): 2,  # the first booking and the offered slot taken
                (a.email, "预约已变更"): 1,
                (a.email, "候补时段已空出"): 1,
                (a.email, "预约已取消"): 1,  # by the maintenance
                (b.email, "预约已确认"): 2,
                (b.email, "预约已取消"): 1,
            }
            assert len({(m["To"], m["Subject"]) for m in mailbox.messages}) == len(mailbox.messages)  # none twice
            [by_center] = [m for m in mailbox.to(a.email) if m["Subject"].startswith("预约已取消")]
            assert "中心设备维护：更换主轴轴承" in by_center.get_body(("plain",)).get_content()
            [alert] = robot_said
            assert "cnc-02" in alert["text"]["content"]

            # The admin's delivery log lists each message as sent.
            await log_in(desk, "admin@center.example")
            await desk.goto("/admin/notifications")
            rows = desk.locator("#notifications tbody tr")
            await expect(rows).to_have_count(len(mailbox.messages) + 1)
            await expect(desk.locator("#notifications [data-status=sent]")).to_have_count(len(mailbox.messages) + 1)
            await shot(desk, "delivery-log")
