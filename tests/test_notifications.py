"""Notifications end to end: the real app writes events with the bookings, its jobs turn them into messages
and send them to a real SMTP server (aiosmtpd, on a port held from the start) and to a group robot's webhook
(a local HTTP endpoint answering as WeCom does). Each message arrives once, with the right content and
attachment, also after the SMTP server was away for a while."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from accounts.model import Role
from telemetry.model import Sample
from telemetry.writer import BatchWriter
from tests.accounts_rig import login, make_user
from tests.booking_rig import customer, local, slot
from tests.http import serving
from tests.mail_rig import center, notify


async def test_confirmed_and_cancelled_bookings_are_mailed_once_with_the_calendar_file(db_url, pool):
    async with center(db_url, pool) as (app, client, mailbox, _):
        c = await customer(pool, client)
        r = await client.post("/api/v1/bookings", json=slot(2, 9, 11, device_id="cnc-01"), headers=c.headers)
        assert r.status_code == 201, r.text
        booking = r.json()
        await notify(app)
        await notify(app)  # a second run finds nothing new
        [confirmed] = mailbox.to(c.email)
        assert (
            confirmed["Subject"].startswith("预约已确认")
            and "2027年03月03日（周三）09:00–11:00" in confirmed["Subject"]
        )
        body = confirmed.get_body(("plain",)).get_content()
        assert f"您的预约 {booking['id']}" in body and f"¥{booking['net']}" in body
        [ics] = list(confirmed.iter_attachments())
        assert ics.get_content_type() == "text/calendar" and ics.get_filename() == f"booking-{booking['id']}.ics"
        calendar = ics.get_content()
        calendar = calendar if isinstance(calendar, str) else calendar.decode()
        assert f"UID:booking-{booking['id']}@fabhub" in calendar and "DTSTART:20270303T010000Z" in calendar

        # In English, when the customer chose it.
        r = await client.put(
            "/api/v1/me/notifications",
            json={"email": True, "language": "en", "reminder_minutes": [60]},
            headers=c.headers,
        )
        assert r.status_code == 200, r.text
        r = await client.post(f"/api/v1/bookings/{booking['id']}/cancel", json={}, headers=c.headers)
        assert r.status_code == 200, r.text
        await notify(app)
        confirmed_again, cancelled = mailbox.to(c.email)
        assert confirmed_again is confirmed
        assert cancelled["Subject"].startswith("Booking cancelled:")
        assert "No fee is charged." in cancelled.get_body(("plain",)).get_content()


async def test_an_smtp_outage_delays_messages_and_loses_or_repeats_none(db_url, pool):
    async with center(db_url, pool) as (app, client, mailbox, clock):
        c = await customer(pool, client)
        await mailbox.stop()
        r = await client.post("/api/v1/bookings", json=slot(2, 9, 11, device_id="cnc-01"), headers=c.headers)
        assert r.status_code == 201
        await notify(app)
        async with pool.connection() as conn:
            [(status, attempts, error)] = await (
                await conn.execute("SELECT status, attempts, last_error FROM notification")
            ).fetchall()
        assert (status, attempts) == ("pending", 1) and "SMTP 127.0.0.1" in error
        await notify(app)  # not due yet: no second attempt
        async with pool.connection() as conn:
            assert (await (await conn.execute("SELECT attempts FROM notification")).fetchone())[0] == 1
        metrics = (await client.get("/metrics")).text
        assert 'fabhub_notifications{status="pending"} 1.0' in metrics

        await mailbox.start()
        clock.advance(minutes=1)
        await notify(app)
        await notify(app)
        assert len(mailbox.to(c.email)) == 1
        metrics = (await client.get("/metrics")).text
        assert 'fabhub_notifications{status="sent"} 1.0' in metrics and "fabhub_outbox_waiting_events 0.0" in metrics


async def test_a_machine_going_down_in_a_booking_reaches_the_technicians_robot(db_url, pool):
    received: list[dict] = []
    answers = [{"errcode": 45009, "errmsg": "api freq out of limit"}, {"errcode": 0, "errmsg": "ok"}]

    async def webhook(request: Request) -> JSONResponse:
        assert request.query_params["key"] == "robot-key"
        received.append(await request.json())
        return JSONResponse(answers[min(len(received), len(answers)) - 1])

    robot = Starlette(routes=[Route("/cgi-bin/webhook/send", webhook, methods=["POST"])])
    async with serving(robot) as robot_url:
        settings = {"technicians_robot": f"wecom:{robot_url}/cgi-bin/webhook/send?key=robot-key"}
        async with center(db_url, pool, **settings) as (app, client, _, clock):
            c = await customer(pool, client)
            r = await client.post("/api/v1/bookings", json=slot(0, 8, 12, device_id="cnc-01"), headers=c.headers)
            assert r.status_code == 201, r.text
            clock.now = local(0, 9)
            writer = BatchWriter(pool, clock=clock)
            await writer.write_batch([Sample(local(0, 8.5), "cnc-01", "state", "running")])
            await writer.write_batch([Sample(local(0, 8.9), "cnc-01", "state", "down")])
            await writer.write_batch([Sample(local(0, 8.95), "cnc-01", "state", "down")])  # the same interval
            for _ in range(2):
                assert (await app.state.jobs.run("machine-alerts"))[0]
            await notify(app)  # the robot is busy: tried again later
            clock.advance(minutes=1)
            await notify(app)
            await notify(app)
    alerts = [m for m in received if "cnc-01" in m["text"]["content"]]
    assert len(alerts) == 2 and alerts[0] == alerts[1]  # refused once, then delivered: one alert
    assert alerts[0]["msgtype"] == "text" and "2027年03月01日（周一）08:54" in alerts[0]["text"]["content"]


async def test_reminders_come_once_at_each_lead_the_customer_chose(db_url, pool):
    async with center(db_url, pool) as (app, client, mailbox, clock):
        c = await customer(pool, client)
        r = await client.post("/api/v1/bookings", json=slot(3, 9, 10, device_id="printer-01"), headers=c.headers)
        assert r.status_code == 201
        start = local(3, 9)
        for at, wanted in (
            (start - timedelta(hours=25), 0),
            (start - timedelta(hours=23), 1),
            (start - timedelta(minutes=59), 2),
        ):
            clock.now = at
            for _ in range(2):
                assert (await app.state.jobs.run("reminders"))[0]
            await notify(app)
            reminders = [m for m in mailbox.to(c.email) if m["Subject"].startswith("预约提醒")]
            assert len(reminders) == wanted, at
        assert [m["Subject"].split("：")[1][:5] for m in reminders] == ["24 小时", "1 小时后"]


async def test_preferences_are_checked(db_url, pool):
    async with center(db_url, pool) as (_, client, _, _):
        staff = await make_user(pool, Role.technician, email="tech@example.com")
        assert staff
        headers = await login(client, "tech@example.com")
        for body in (
            {"language": "fr"},
            {"reminder_minutes": [0]},
            {"reminder_minutes": [60] * 6},
            {"reminder_minutes": [20000]},
            {"email": True, "surprise": 1},
        ):
            r = await client.put("/api/v1/me/notifications", json=body, headers=headers)
            assert r.status_code == 422, (body, r.text)
        got = (await client.get("/api/v1/me/notifications", headers=headers)).json()
        assert got == {"email": True, "language": "zh-CN", "reminder_minutes": [1440, 60]}


async def test_signed_robots_keep_their_token_and_sign_as_dingtalk_and_feishu_check():
    import base64
    import hashlib
    import hmac

    from notify.channels import Robot, SendFailed, Smtp

    seen: list[tuple[dict, dict]] = []

    async def hook(request: Request) -> JSONResponse:
        seen.append((dict(request.query_params), await request.json()))
        return JSONResponse(
            {"errcode": 0, "code": 0} if len(seen) < 3 else {"errcode": 310000, "errmsg": "sign not match"}
        )

    app = Starlette(routes=[Route("/robot/send", hook, methods=["POST"])])
    note = {"id": 1, "subject": "设备故障", "body": "cnc-01"}
    async with serving(app) as base, httpx.AsyncClient() as client:
        ding = Robot.from_setting(f"dingtalk:{base}/robot/send?access_token=T0KEN", "SECret")
        await ding.send(client, note)
        query, body = seen[-1]
        assert query["access_token"] == "T0KEN" and body["text"]["content"] == "设备故障\n\ncnc-01"
        expected = hmac.new(b"SECret", f"{query['timestamp']}\nSECret".encode(), hashlib.sha256).digest()
        assert base64.b64decode(query["sign"]) == expected  # decoded once by the server: encoded once
        feishu = Robot.from_setting(f"feishu:{base}/robot/send", "s3")
        await feishu.send(client, note)
        _, body = seen[-1]
        key = f"{body['timestamp']}\ns3".encode()
        assert base64.b64decode(body["sign"]) == hmac.new(key, b"", hashlib.sha256).digest()
        assert body["msg_type"] == "text" and body["content"]["text"].startswith("设备故障")
        with pytest.raises(SendFailed, match="310000"):
            await ding.send(client, note)  # HTTP 200 with an error code is a refusal
    for wrong in ("slack:https://x", "wecom:ftp://x", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"):
        with pytest.raises(ValueError, match=r"wecom \| dingtalk \| feishu"):
            Robot.from_setting(wrong, None)
    assert Smtp.from_url("smtps://u%40x:p%3Aw@mail.example", "f").port == 465
    plain = Smtp.from_url("smtp://relay.local?starttls=off", "f")
    assert (plain.port, plain.start_tls, plain.username) == (25, False, None)
    assert Smtp.from_url("smtp://u:p@mail.example", "f").start_tls is True


async def test_a_series_is_confirmed_in_one_message_with_every_occurrence(db_url, pool):
    async with center(db_url, pool) as (app, client, mailbox, _):
        c = await customer(pool, client)
        body = {**slot(1, 9, 10, device_id="cnc-01"), "rule": "FREQ=DAILY;COUNT=3"}
        r = await client.post("/api/v1/bookings/series", json=body, headers=c.headers)
        assert r.status_code == 201, r.text
        await notify(app)
        [message] = mailbox.to(c.email)
        assert message["Subject"].endswith("共 3 次")
        [ics] = list(message.iter_attachments())
        calendar = ics.get_content()
        calendar = calendar if isinstance(calendar, str) else calendar.decode()
        assert calendar.count("BEGIN:VEVENT") == 3 and ics.get_filename() == f"booking-series-{r.json()['id']}.ics"


async def test_a_waiting_list_offer_is_mailed_with_its_deadline(db_url, pool):
    async with center(db_url, pool) as (app, client, mailbox, _):
        holder, waiter = [await customer(pool, client) for _ in range(2)]
        wanted = slot(2, 9, 11, device_id="cnc-01")
        held = (await client.post("/api/v1/bookings", json=wanted, headers=holder.headers)).json()["id"]
        assert (await client.post("/api/v1/waiting-list", json=wanted, headers=waiter.headers)).status_code == 201
        assert (await client.post(f"/api/v1/bookings/{held}/cancel", headers=holder.headers)).status_code == 200
        assert (await app.state.jobs.run("waiting-list"))[0]
        await notify(app)
        [offer] = mailbox.to(waiter.email)
        assert offer["Subject"].startswith("候补时段已空出")
        assert "为您保留至 2027年03月01日（周一）09:00" in offer.get_body(("plain",)).get_content()


async def test_no_shows_expiring_qualifications_and_issued_invoices_are_told(db_url, pool):
    from datetime import date

    from accounts.model import Principal
    from tests.test_invoices import MARCH, book, setup
    from tests.test_invoices import center as invoice_center

    async with center(db_url, pool) as (app, client, mailbox, clock):
        c = await customer(pool, client, qualified_until=date(2027, 3, 20))
        r = await client.post("/api/v1/bookings", json=slot(0, 8, 10, device_id="printer-01"), headers=c.headers)
        assert r.status_code == 201, r.text
        clock.now = local(0, 8.6)  # 36 minutes in, the printer seen idle and never running: a no-show
        writer = BatchWriter(pool, clock=clock)
        await writer.write_batch([Sample(local(0, 7.9), "printer-01", "state", "idle")])
        await writer.write_batch([Sample(local(0, 8.3), "printer-01", "state", "idle")])
        for job in ("booking-lifecycle", "qualification-notices", "qualification-notices"):
            assert (await app.state.jobs.run(job))[0]
        await notify(app)
        subjects = sorted(m["Subject"] for m in mailbox.to(c.email))
        assert len(subjects) == 2 + 3  # the confirmation, the no-show, and each class's notice once
        assert any(s.startswith("预约未使用：") for s in subjects)
        notices = [s for s in subjects if "使用资格将于 2027年03月20日 到期" in s]
        assert {s.split("使用资格")[0] for s in notices} == {"数控加工中心", "工业机器人工作站", "3D打印机"}

        # An issued invoice goes to the organization's contact email.
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE organization SET contact_email = 'billing@sme.example' WHERE id = %s", (c.org_id,)
            )
        invoicing = await setup(pool, invoice_center())
        await book(pool, c.org_id, c.user_id, "cnc-01", local(3, 9), local(3, 10), "no_show", "180.00", fee="180.00")
        clerk = await make_user(pool, Role.finance, email="clerk@center.example")
        async with pool.connection() as conn:
            draft = await invoicing.draft(conn, c.org_id, MARCH, "tests")
            number = await invoicing.issue(
                conn, draft, Principal(clerk, "clerk@center.example", "C", Role.finance, None)
            )
        await notify(app)
        [issued] = mailbox.to("billing@sme.example")
        assert issued["Subject"] == f"发票 {number}（2027-03）已开具"
