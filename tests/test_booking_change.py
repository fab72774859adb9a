"""Changing a booking: a move is checked and priced like a new booking, with the booking's own slot, hours and
subsidy out of its way; the id and calendar UID stay, the revision counts up; a customer cannot move a booking
inside its late-cancellation window; a purpose or reference change leaves slot and price alone. The customer
is told of a move by mail with the updated calendar event, and reminded again at the new time."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from accounts.model import Role
from tests.accounts_rig import as_role, login
from tests.booking_rig import NOW, customer, local, slot
from tests.http import serve
from tests.mail_rig import center, notify


async def _book(client, c, body) -> dict:
    r = await client.post("/api/v1/bookings", json=body, headers=c.headers)
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_customer_moves_a_booking_and_the_old_slot_is_free_again(db_url, pool):
    async with serve(db_url, clock=lambda: NOW) as client:
        c, other = await customer(pool, client), await customer(pool, client)
        booking = await _book(client, c, slot(3, 9, 11, device_id="cnc-01", purpose="fixture trial"))

        # The quote of the move: three hours now, the booking's own slot not in the way of 10-13.
        r = await client.post(f"/api/v1/bookings/{booking['id']}/change/quote", json=slot(3, 10, 13), headers=c.headers)
        assert r.status_code == 200, r.text
        assert r.json()["bookable"] is True and r.json()["problems"] == []
        assert Decimal(r.json()["quote"]["gross"]) == Decimal(booking["gross"]) * 3 / 2

        r = await client.post(f"/api/v1/bookings/{booking['id']}/change", json=slot(3, 10, 13), headers=c.headers)
        assert r.status_code == 200, r.text
        moved = r.json()
        assert moved["id"] == booking["id"] and moved["device_id"] == "cnc-01"
        assert (moved["start"], moved["end"]) == (local(3, 10).isoformat(), local(3, 13).isoformat())
        assert moved["revision"] == 1 and moved["changed_at"] is not None
        assert Decimal(moved["gross"]) == Decimal(booking["gross"]) * 3 / 2
        assert moved["purpose"] == "fixture trial"  # kept when not given

        # 09-10 is free again for anyone; 10-13 is not.
        assert (
            await client.post("/api/v1/bookings", json=slot(3, 9, 10, device_id="cnc-01"), headers=other.headers)
        ).status_code == 201
        r = await client.post("/api/v1/bookings", json=slot(3, 12, 14, device_id="cnc-01"), headers=other.headers)
        assert r.status_code == 409

        admin = await as_role(pool, client, Role.admin)
        r = await client.get(
            "/api/v1/audit", params={"object_type": "booking", "object_id": booking["id"]}, headers=admin
        )
        assert r.status_code == 200, r.text
        changes = [e for e in r.json()["items"] if e["action"] == "change"]
        assert len(changes) == 1
        assert changes[0]["before"]["start"].startswith("2027-03-04T09:00")


async def test_a_move_onto_a_taken_slot_is_refused_with_alternatives_and_changes_nothing(db_url, pool):
    async with serve(db_url, clock=lambda: NOW) as client:
        c, other = await customer(pool, client), await customer(pool, client)
        booking = await _book(client, c, slot(3, 9, 11, device_id="cnc-01"))
        await _book(client, other, slot(3, 14, 16, device_id="cnc-01"))
        r = await client.post(f"/api/v1/bookings/{booking['id']}/change/quote", json=slot(3, 14, 16), headers=c.headers)
        assert r.status_code == 200 and r.json()["bookable"] is False
        r = await client.post(f"/api/v1/bookings/{booking['id']}/change", json=slot(3, 14, 16), headers=c.headers)
        assert r.status_code == 409, r.text
        assert r.json()["alternatives"]
        # Another cnc is free then: the move goes there when asked.
        r = await client.post(
            f"/api/v1/bookings/{booking['id']}/change", json=slot(3, 14, 16, device_id="cnc-02"), headers=c.headers
        )
        assert r.status_code == 200, r.text
        assert r.json()["device_id"] == "cnc-02"
        r = await client.post(
            f"/api/v1/bookings/{booking['id']}/change", json=slot(3, 14, 16, device_id="printer-01"), headers=c.headers
        )
        assert r.status_code == 422 and "keeps the machine class" in r.json()["detail"]
        unchanged = (await client.get(f"/api/v1/bookings/{booking['id']}", headers=c.headers)).json()
        assert unchanged["device_id"] == "cnc-02" and unchanged["revision"] == 1


async def test_a_booking_does_not_count_against_its_own_move(db_url, pool):
    """cnc allows 40 future hours per organization: with all 40 held, moving one of them is still allowed,
    and its subsidy is not counted twice against the program's cap."""
    async with serve(db_url, clock=lambda: NOW) as client:
        c = await customer(pool, client, programs=("jingjiang-sme",))
        held = [await _book(client, c, slot(day, 8, 16, device_id="cnc-01")) for day in (2, 3, 4, 7, 8)]
        r = await client.post("/api/v1/bookings", json=slot(9, 8, 9, device_id="cnc-01"), headers=c.headers)
        assert r.status_code == 422 and r.json()["problems"][0]["rule"] == "max_future_hours_per_org"
        r = await client.post(
            f"/api/v1/bookings/{held[0]['id']}/change", json=slot(9, 8, 16, device_id="cnc-02"), headers=c.headers
        )
        assert r.status_code == 200, r.text
        assert r.json()["subsidy_program"] == "jingjiang-sme" and r.json()["subsidy"] == held[0]["subsidy"]


async def test_who_may_change_what_and_when(db_url, pool):
    clock = {"now": NOW}
    async with serve(db_url, clock=lambda: clock["now"]) as client:
        c, other = await customer(pool, client), await customer(pool, client)
        booking = await _book(client, c, slot(3, 9, 11, device_id="cnc-01"))
        path = f"/api/v1/bookings/{booking['id']}/change"

        # Another organization's booking does not exist for this customer.
        assert (await client.post(path, json=slot(3, 12, 14), headers=other.headers)).status_code == 404
        # Rules apply as to a new booking.
        r = await client.post(path, json=slot(3, 9, 19), headers=c.headers)
        assert r.status_code == 422 and [p["rule"] for p in r.json()["problems"]] == ["max_booking"]
        for bad in ({"start": "tomorrow", "end": "x"}, {**slot(3, 9, 10), "colour": "red"}, slot(3, 11, 9)):
            assert (await client.post(path, json=bad, headers=c.headers)).status_code == 422

        # 23 hours before the start the cnc's 24-hour late-cancellation window is open: no move by the customer.
        clock["now"] = local(3, 9) - timedelta(hours=23)
        c.headers = await login(client, c.email)  # sessions last minutes, the clock jumped days
        technician = await as_role(pool, client, Role.technician)
        r = await client.post(path, json=slot(3, 12, 14), headers=c.headers)
        assert r.status_code == 409 and "24 h" in r.json()["detail"]
        # The purpose and reference still change, and a technician may still move it.
        r = await client.post(path, json={**slot(3, 9, 11), "purpose": "new jig"}, headers=c.headers)
        assert r.status_code == 200 and r.json()["purpose"] == "new jig"
        r = await client.post(path, json=slot(3, 12, 14), headers=technician)
        assert r.status_code == 200, r.text

        # Started or cancelled bookings are not moved.
        clock["now"] = local(3, 12) + timedelta(minutes=5)
        technician = await as_role(pool, client, Role.technician)
        r = await client.post(path, json=slot(3, 13, 15), headers=technician)
        assert r.status_code == 409
        clock["now"] = NOW
        c.headers = await login(client, c.email)
        second = await _book(client, c, slot(5, 9, 10, device_id="cnc-01"))
        assert (
            await client.post(f"/api/v1/bookings/{second['id']}/cancel", json={}, headers=c.headers)
        ).status_code == 200
        r = await client.post(f"/api/v1/bookings/{second['id']}/change", json=slot(5, 10, 11), headers=c.headers)
        assert r.status_code == 409


async def test_a_reference_change_keeps_slot_and_price(db_url, pool):
    async with serve(db_url, clock=lambda: NOW) as client:
        c = await customer(pool, client)
        admin = await as_role(pool, client, Role.admin)
        booking = await _book(client, c, slot(3, 9, 11, device_id="cnc-01", reference="PO-1"))
        path = f"/api/v1/bookings/{booking['id']}/change"
        r = await client.post(path, json={**slot(3, 9, 11), "reference": "PO-2"}, headers=c.headers)
        assert r.status_code == 200, r.text
        changed = r.json()
        assert changed["reference"] == "PO-2" and changed["revision"] == 1
        assert (changed["start"], changed["net"], changed["device_id"]) == (
            booking["start"],
            booking["net"],
            booking["device_id"],
        )
        r = await client.patch(f"/api/v1/organizations/{c.org_id}", json={"reference_required": True}, headers=admin)
        assert r.status_code == 200
        r = await client.post(path, json={**slot(3, 9, 11), "reference": ""}, headers=c.headers)
        assert r.status_code == 422 and "reference" in r.json()["detail"]


async def test_the_customer_is_told_of_a_move_and_reminded_at_the_new_time(db_url, pool):
    async with center(db_url, pool) as (app, client, mailbox, clock):
        c = await customer(pool, client)
        booking = await _book(client, c, slot(2, 9, 11, device_id="printer-01"))
        # The 24-hour reminder of the first slot goes out.
        clock.now = local(2, 9) - timedelta(hours=23)
        assert (await app.state.jobs.run("reminders"))[0]
        await notify(app)
        c.headers = await login(client, c.email)
        r = await client.post(f"/api/v1/bookings/{booking['id']}/change", json=slot(4, 13, 15), headers=c.headers)
        assert r.status_code == 200, r.text
        await notify(app)
        changed = [m for m in mailbox.to(c.email) if m["Subject"].startswith("预约已变更")]
        assert len(changed) == 1
        body = changed[0].get_body(("plain",)).get_content()
        assert "03月03日（周三）09:00–11:00" in body and "03月05日（周五）13:00–15:00" in body
        [ics] = list(changed[0].iter_attachments())
        calendar = ics.get_content()
        calendar = calendar if isinstance(calendar, str) else calendar.decode()
        assert f"UID:booking-{booking['id']}@fabhub" in calendar
        assert "SEQUENCE:1" in calendar and "DTSTART:20270305T050000Z" in calendar

        # At the new slot's 24-hour mark the customer is reminded again, once.
        clock.now = local(4, 13) - timedelta(hours=23)
        for _ in range(2):
            assert (await app.state.jobs.run("reminders"))[0]
        await notify(app)
        reminders = [m for m in mailbox.to(c.email) if m["Subject"].startswith("预约提醒")]
        assert len(reminders) == 2
        assert "03月05日（周五）13:00–15:00" in reminders[1].get_body(("plain",)).get_content()
