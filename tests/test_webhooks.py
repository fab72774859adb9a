"""Webhooks end to end (issue 16): a real HTTP receiver started here, registered for every event kind, gets
each event the real app publishes (a booking made, moved and cancelled, a machine down in a booking, the
booking completed with its usage, the invoice issued, a payment recorded) exactly once with a valid
signature, also after it was down for a while. The signature is checked with the README's own receiver
snippet, taken from the README and run as it stands, so the documented code cannot drift from what FabHub
sends. Registration refuses bad input with a reason, and only admins reach it."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, get_args

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from accounts.model import Role
from fabhub.devservices import listening_socket
from notify.webhooks import EventKind
from telemetry.model import Sample
from telemetry.writer import BatchWriter
from tests.accounts_rig import Clock, as_role, login
from tests.booking_rig import NOW, ZONE, customer, local, slot
from tests.http import REPO, app_for, serving
from tests.mail_rig import bound, notify
from tests.test_web_admin import log_in

EVENTS = list(get_args(EventKind))


def readme_verifier() -> Any:
    """The `verify` function of the README's Webhooks section, run from the README's text."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Webhooks\n", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    return namespace["verify"]


async def book_move_cancel(client: httpx.AsyncClient, headers: dict[str, str], day: int) -> None:
    """Three events: a booking made on cnc-02 that day, moved later the same day, and cancelled."""
    r = await client.post("/api/v1/bookings", json=slot(day, 9, 11, device_id="cnc-02"), headers=headers)
    assert r.status_code == 201, r.text
    booking_id = r.json()["id"]
    r = await client.post(f"/api/v1/bookings/{booking_id}/change", json=slot(day, 13, 15), headers=headers)
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/v1/bookings/{booking_id}/cancel", json={}, headers=headers)
    assert r.status_code == 200, r.text


class Receiver:
    """An HTTP endpoint that stores what it is sent, and can go away and come back on the same port."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.sock = listening_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/fabhub"
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task | None = None

    async def hook(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.body()))
        return Response(status_code=204)

    async def start(self) -> None:
        sock = self.sock if self.server is None else bound(self.port)
        app = Starlette(routes=[Route("/fabhub", self.hook, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.task = asyncio.create_task(self.server.serve(sockets=[sock]))
        while not self.server.started:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        assert self.server is not None and self.task is not None
        self.server.should_exit = True
        await self.task


async def test_each_event_reaches_the_receiver_once_signed_also_after_it_was_down(db_url, pool):
    verify = readme_verifier()
    receiver = Receiver()
    await receiver.start()
    clock = Clock(NOW)
    app = app_for(db_url, clock=clock)
    try:
        async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
            admin = await as_role(pool, client, Role.admin)
            r = await client.post(
                "/api/v1/webhooks", json={"url": receiver.url, "events": EVENTS, "description": "ERP"}, headers=admin
            )
            assert r.status_code == 201, r.text
            secret = r.json()["secret"]
            assert secret.startswith("whsec_")
            [listed] = (await client.get("/api/v1/webhooks", headers=admin)).json()["items"]
            assert listed["url"] == receiver.url and "secret" not in listed and secret not in json.dumps(listed)

            # A booking made, moved and cancelled.
            c = await customer(pool, client)
            await book_move_cancel(client, c.headers, 2)

            # A booking that runs, sees its machine go down, and completes.
            r = await client.post("/api/v1/bookings", json=slot(0, 8, 10, device_id="cnc-01"), headers=c.headers)
            assert r.status_code == 201, r.text
            used = r.json()
            clock.now = local(0, 9)
            writer = BatchWriter(pool, clock=clock)
            await writer.write_batch([Sample(local(0, 8.5), "cnc-01", "state", "running")])
            await writer.write_batch([Sample(local(0, 8.9), "cnc-01", "state", "down")])
            assert (await app.state.jobs.run("machine-alerts"))[0]
            moves = []
            for at in (local(0, 9), local(0, 10) + timedelta(minutes=10), local(0, 10) + timedelta(minutes=45)):
                clock.now = at
                moves.append((await app.state.jobs.run("booking-lifecycle"))[1])
            assert [(m["in_progress"], m["completed"], m["results_frozen"]) for m in moves] == [
                (1, 0, 0),
                (0, 1, 0),
                (0, 0, 1),
            ]

            # March is over: its invoice issued, and a payment recorded against it.
            clock.now = datetime(2027, 4, 1, 10, tzinfo=ZONE)
            finance = await as_role(pool, client, Role.finance)
            r = await client.post(
                "/api/v1/invoices/drafts", json={"month": "2027-03", "organization_id": c.org_id}, headers=finance
            )
            [invoice_id] = r.json()["invoices"]
            assert (await client.post(f"/api/v1/invoices/{invoice_id}/issue", headers=finance)).status_code == 200
            payment = {"amount": "100.00", "paid_on": "2027-04-01", "method": "bank_transfer", "reference": "U8"}
            r = await client.post(f"/api/v1/invoices/{invoice_id}/payments", json=payment, headers=finance)
            assert r.status_code == 201, r.text

            await notify(app)
            await notify(app)  # a second run finds nothing new
            kinds = []
            for headers, body in receiver.received:
                assert verify(secret, headers, body), headers
                assert headers["content-type"] == "application/json"
                sent = json.loads(body)
                assert sent["id"] == headers["webhook-id"]
                kinds.append(sent["type"])
            assert Counter(kinds) == Counter(
                {
                    "booking.confirmed": 2,
                    "booking.changed": 1,
                    "booking.cancelled": 1,
                    "device.down": 1,
                    "booking.completed": 1,
                    "invoice.issued": 1,
                    "payment.recorded": 1,
                }
            )
            by_type = {json.loads(b)["type"]: json.loads(b)["data"] for _, b in receiver.received}
            completed = by_type["booking.completed"]
            assert completed["booking"]["id"] == used["id"] and completed["booking"]["net"] == used["net"]
            assert completed["usage"]["running_s"] == 1440 and completed["usage"]["booked_s"] == 7200
            assert by_type["payment.recorded"]["payment"]["amount"] == "100.00"
            assert by_type["payment.recorded"]["invoice"]["id"] == invoice_id
            assert by_type["device.down"]["down"]["booking_id"] == used["id"]
            # The README's check can fail: another body, another secret, or a delivery signed too long ago.
            headers, body = receiver.received[0]
            assert not verify(secret, headers, body + b" ")
            assert not verify("whsec_" + "A" * 43 + "=", headers, body)
            assert not verify(secret, headers, body, now=int(headers["webhook-timestamp"]) + 301)

            # The receiver is down: a booking made, moved and cancelled meanwhile waits, tried again later.
            await receiver.stop()
            c.headers = await login(client, c.email)
            await book_move_cancel(client, c.headers, 36)
            await notify(app)
            await notify(app)  # not due yet: no second attempt
            clock.advance(minutes=1)
            await notify(app)
            admin = await as_role(pool, client, Role.admin)
            params = {"recipient": receiver.url, "status": "pending"}
            waiting = (await client.get("/api/v1/notifications", params=params, headers=admin)).json()["items"]
            assert sorted(w["event_kind"] for w in waiting) == [
                "booking.cancelled",
                "booking.changed",
                "booking.confirmed",
            ]
            assert all(w["attempts"] == 2 and w["channel"] == "webhook" and w["last_error"] for w in waiting)

            await receiver.start()
            clock.advance(minutes=5)
            await notify(app)
            await notify(app)
            ids = Counter(headers["webhook-id"] for headers, _ in receiver.received)
            assert len(ids) == 11 and set(ids.values()) == {1}
            assert all(verify(secret, headers, body) for headers, body in receiver.received)
            params = {"recipient": receiver.url, "status": "sent", "limit": 100}
            sent = (await client.get("/api/v1/notifications", params=params, headers=admin)).json()["items"]
            assert len(sent) == 11 and {s["webhook_id"] for s in sent} == {listed["id"]}
    finally:
        await receiver.stop()


async def test_registration_refuses_bad_input_with_a_reason_and_only_admins_reach_it(db_url, pool):
    app = app_for(db_url, clock=Clock(NOW))
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        admin = await as_role(pool, client, Role.admin)
        c = await customer(pool, client)
        good = {"url": "https://erp.example.com/fabhub", "events": ["booking.completed", "payment.recorded"]}
        assert (await client.post("/api/v1/webhooks", json=good, headers=c.headers)).status_code == 403
        assert (await client.get("/api/v1/webhooks", headers=c.headers)).status_code == 403
        assert (await client.delete("/api/v1/webhooks/1", headers=c.headers)).status_code == 403

        for url, reason in (
            ("http://erp.example.com/fabhub", "https://"),
            ("ftp://erp.example.com/fabhub", "starts with https://"),
            ("https://u8:secret@erp.example.com/fabhub", "no user or password"),
            ("http://169.254.169.254/latest/meta-data", "not an address"),
            ("https://erp.example.com:99999/", "port"),
            ("https://erp.example.com/#top", "fragment"),
        ):
            r = await client.post("/api/v1/webhooks", json={**good, "url": url}, headers=admin)
            assert r.status_code == 422 and reason in r.json()["detail"], (url, r.text)
        for bad in (
            {**good, "events": []},
            {**good, "events": ["user.invited"]},  # a login link is for its person, not for a system
            {**good, "url": "https://erp.example.com/" + "x" * 300},
            {**good, "secret": "whsec_mine"},
        ):
            r = await client.post("/api/v1/webhooks", json=bad, headers=admin)
            assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text

        made = await client.post("/api/v1/webhooks", json=good, headers=admin)
        assert made.status_code == 201, made.text
        hook = made.json()
        assert hook["events"] == ["booking.completed", "payment.recorded"] and hook["disabled_at"] is None
        again = await client.post("/api/v1/webhooks", json=good, headers=admin)
        assert again.status_code == 409 and "registered already" in again.json()["detail"]
        lan = {**good, "url": "http://192.168.1.20:8080/fabhub"}  # an ERP in the center's network
        assert (await client.post("/api/v1/webhooks", json=lan, headers=admin)).status_code == 201

        r = await client.delete(f"/api/v1/webhooks/{hook['id']}", headers=admin)
        assert r.status_code == 200 and r.json()["disabled_at"] is not None
        assert (await client.delete(f"/api/v1/webhooks/{hook['id']}", headers=admin)).json() == r.json()
        assert (await client.delete("/api/v1/webhooks/999999", headers=admin)).status_code == 404
        assert (await client.post("/api/v1/webhooks", json=good, headers=admin)).status_code == 201  # free again
        audit = (await client.get("/api/v1/audit", params={"entity": "webhook"}, headers=admin)).json()["items"]
        assert sorted(e["action"] for e in audit) == ["create", "create", "create", "disable"]
        assert "whsec_" not in json.dumps(audit)

        # The admin's page: the secret shown on the form's answer only, a refusal in Chinese, disabling.
        csrf = await log_in(client, pool, Role.admin, "integrations@center.example")
        form = {"csrf": csrf, "url": "https://mes.example.com/in", "description": "MES", "events": EVENTS[:2]}
        page = await client.post("/admin/webhooks", data=form)
        assert page.status_code == 201 and "https://mes.example.com/in" in page.text
        [secret] = re.findall(r'data-test="secret">(whsec_[^<]+)<', page.text)
        listing = await client.get("/admin/webhooks")
        assert listing.status_code == 200 and secret not in listing.text and listing.text.count("data-webhook=") == 4
        assert "/admin/notifications?recipient=https%3A%2F%2Fmes.example.com%2Fin" in listing.text
        refused = await client.post("/admin/webhooks", data={**form, "url": "http://mes.example.com/in"})
        assert refused.status_code == 422 and "Webhook URL 须用 https://" in refused.text
        assert 'value="http://mes.example.com/in"' in refused.text
        [mes] = [w for w in (await client.get("/api/v1/webhooks", headers=admin)).json()["items"] if "mes." in w["url"]]
        r = await client.post(f"/admin/webhooks/{mes['id']}/disable", data={"csrf": csrf})
        assert r.status_code == 303
        assert "Webhook 已停用。" in (await client.get(r.headers["location"])).text
