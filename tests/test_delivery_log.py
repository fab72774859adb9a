"""The delivery log: every message FabHub made, over the API and on the admin's page, with a resend for one
that ran out of attempts while the SMTP server was away; and the demo's mailbox, which keeps what the
center sends as files when no SMTP server is set."""

from __future__ import annotations

import email
import email.policy
import re

import httpx

from accounts.model import Role
from fabhub.demo_mailbox import demo_mailbox
from notify.dispatch import MAX_ATTEMPTS
from tests.accounts_rig import as_role
from tests.booking_rig import NOW, customer, slot
from tests.http import app_for, serving
from tests.mail_rig import center, notify
from tests.test_web_admin import log_in


async def test_the_log_lists_messages_and_a_failed_one_is_sent_again_once(db_url, pool):
    async with center(db_url, pool) as (app, client, mailbox, clock):
        c = await customer(pool, client)
        r = await client.post("/api/v1/bookings", json=slot(2, 9, 11, device_id="cnc-01"), headers=c.headers)
        assert r.status_code == 201, r.text
        booking = r.json()
        await notify(app)
        admin = await as_role(pool, client, Role.admin)

        # Filtered by event, status and any part of the address, whatever its case.
        params = {"kind": "booking.confirmed", "status": "sent", "recipient": c.email[:14].upper()}
        r = await client.get("/api/v1/notifications", params=params, headers=admin)
        assert r.status_code == 200, r.text
        [sent] = r.json()["items"]
        assert sent["recipient"] == c.email and sent["subject"].startswith("预约已确认")
        assert sent["attempts"] == 1 and sent["sent_at"].endswith("+08:00")
        assert sent["attachment_name"] == f"booking-{booking['id']}.ics" and "body" not in sent
        r = await client.get(f"/api/v1/notifications/{sent['id']}", headers=admin)
        assert r.status_code == 200 and f"您的预约 {booking['id']}" in r.json()["body"]
        r = await client.post(f"/api/v1/notifications/{sent['id']}/resend", headers=admin)
        assert r.status_code == 409 and "only a failed one" in r.json()["detail"]
        assert (await client.get("/api/v1/notifications", headers=c.headers)).status_code == 403
        assert (await client.get("/api/v1/notifications/999999", headers=admin)).status_code == 404
        for bad in ({"status": "lost"}, {"kind": "DROP TABLE"}, {"limit": 0}, {"cursor": "abc"}):
            assert (await client.get("/api/v1/notifications", params=bad, headers=admin)).status_code == 422

        # The SMTP server is away for longer than the retries last: the cancellation's message fails.
        await mailbox.stop()
        assert (
            await client.post(f"/api/v1/bookings/{booking['id']}/cancel", json={}, headers=c.headers)
        ).status_code == 200
        for _ in range(MAX_ATTEMPTS):
            await notify(app)
            clock.advance(hours=2)
        await mailbox.start()
        await notify(app)
        assert [m["Subject"][:5] for m in mailbox.to(c.email)] == ["预约已确认"]
        admin = await as_role(pool, client, Role.admin)  # the first admin's session ended days ago
        [failed] = (await client.get("/api/v1/notifications", params={"status": "failed"}, headers=admin)).json()[
            "items"
        ]
        assert failed["subject"].startswith("预约已取消") and failed["attempts"] == MAX_ATTEMPTS
        assert failed["last_error"]

        # The admin sends it again from the page: it arrives once, and the log and the audit say so.
        csrf = await log_in(client, pool, Role.admin, "postmaster@center.example")
        page = await client.get("/admin/notifications", params={"status": "failed"})
        assert page.status_code == 200 and page.text.count("data-notification=") == 1
        assert "发送失败" in page.text and "预约取消" in page.text
        detail = await client.get(f"/admin/notifications/{failed['id']}")
        assert "您的预约" in detail.text and 'id="resend"' in detail.text
        r = await client.post(f"/admin/notifications/{failed['id']}/resend", data={"csrf": csrf})
        assert r.status_code == 303
        assert "已重新排队发送。" in (await client.get(r.headers["location"])).text
        again = await client.post(f"/admin/notifications/{failed['id']}/resend", data={"csrf": csrf})
        assert again.status_code == 409 and "只有发送失败的通知可以重发" in again.text
        await notify(app)
        await notify(app)
        assert [m["Subject"][:5] for m in mailbox.to(c.email)] == ["预约已确认", "预约已取消"]
        client.cookies.clear()
        r = await client.get(f"/api/v1/notifications/{failed['id']}", headers=admin)
        assert r.json()["status"] == "sent" and r.json()["attempts"] == 1
        r = await client.get("/api/v1/audit", params={"entity": "notification"}, headers=admin)
        [entry] = r.json()["items"]
        assert entry["action"] == "resend" and entry["before"]["status"] == "failed"


async def test_the_demo_mailbox_keeps_each_message_as_a_file(db_url, pool, tmp_path):
    async with demo_mailbox(tmp_path / "mail") as smtp_url:
        app = app_for(db_url, clock=lambda: NOW, smtp_url=smtp_url)
        async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
            c = await customer(pool, client)
            r = await client.post("/api/v1/bookings", json=slot(2, 9, 11, device_id="cnc-01"), headers=c.headers)
            assert r.status_code == 201, r.text
            await notify(app)
    [kept] = list((tmp_path / "mail" / "new").iterdir())
    message = email.message_from_bytes(kept.read_bytes(), policy=email.policy.default)
    assert message["To"] == c.email and message["Subject"].startswith("预约已确认")
    assert re.search(r"booking-\d+\.ics", str([a.get_filename() for a in message.iter_attachments()]))
