"""Booking over the real HTTP app: allocation, conflicts with alternatives, prices, idempotency, cancelling."""

from decimal import Decimal

import pytest

from accounts.model import Role
from tests.accounts_rig import Clock, as_role
from tests.booking_rig import NOW, customer, slot
from tests.http import serve


@pytest.fixture
async def center(db_url, pool):
    clock = Clock(NOW)
    async with serve(db_url, clock=clock) as client:
        yield client, pool, clock


async def test_book_a_device_and_conflict_offers_alternatives(center):
    client, pool, _ = center
    a = await customer(pool, client)
    b = await customer(pool, client)
    r = await client.post("/api/v1/bookings", json=slot(1, 9, 11, device_id="cnc-01"), headers=a.headers)
    assert r.status_code == 201, r.text
    booking = r.json()
    assert booking["status"] == "confirmed"
    assert booking["gross"] == "360.00" and booking["net"] == "360.00"
    assert r.headers["Location"] == f"/api/v1/bookings/{booking['id']}"

    r = await client.post("/api/v1/bookings", json=slot(1, 10, 12, device_id="cnc-01"), headers=b.headers)
    assert r.status_code == 409, r.text
    alternatives = r.json()["alternatives"]
    assert alternatives, r.json()
    nearest = alternatives[0]
    # The other CNC is free at exactly the wanted time.
    assert nearest["device_id"] == "cnc-02" and nearest["start"] == slot(1, 10, 12)["start"]
    assert any(x["device_id"] == "cnc-01" and x["start"] == slot(1, 11, 13)["start"] for x in alternatives)


async def test_class_request_allocates_each_free_device_then_409(center):
    client, pool, _ = center
    got = []
    for _ in range(3):
        c = await customer(pool, client)
        r = await client.post("/api/v1/bookings", json=slot(2, 8, 10, class_id="printer"), headers=c.headers)
        assert r.status_code == 201, r.text
        got.append(r.json()["device_id"])
    assert sorted(got) == ["printer-01", "printer-02", "printer-03"]
    c = await customer(pool, client)
    r = await client.post("/api/v1/bookings", json=slot(2, 8, 10, class_id="printer"), headers=c.headers)
    assert r.status_code == 409
    assert all(a["start"] != slot(2, 8, 10)["start"] for a in r.json()["alternatives"])


async def test_subsidy_of_best_program_within_cap(center):
    client, pool, _ = center
    c = await customer(pool, client, programs=("jingjiang-sme", "jiangsu-smart-manufacturing"))
    r = await client.post("/api/v1/quotes", json=slot(1, 9, 11, device_id="cnc-01"), headers=c.headers)
    assert r.status_code == 200, r.text
    q = r.json()
    assert q["bookable"] is True
    assert q["quote"]["gross"] == "360.00"
    assert q["quote"]["subsidy_program"] == "jingjiang-sme"  # 50 % beats 30 %
    assert q["quote"]["subsidy"] == "180.00" and q["quote"]["net"] == "180.00"


async def test_idempotency_key_replays_the_first_answer(center):
    client, pool, _ = center
    c = await customer(pool, client)
    headers = {**c.headers, "Idempotency-Key": "order-42"}
    first = await client.post("/api/v1/bookings", json=slot(3, 9, 10, device_id="robot-01"), headers=headers)
    again = await client.post("/api/v1/bookings", json=slot(3, 9, 10, device_id="robot-01"), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = await client.post("/api/v1/bookings", json=slot(3, 10, 11, device_id="robot-01"), headers=headers)
    assert other.status_code == 422 and "different request" in other.json()["detail"]


async def test_late_cancellation_carries_the_fee(center):
    client, pool, _ = center
    c = await customer(pool, client)
    early = (await client.post("/api/v1/bookings", json=slot(3, 9, 11, device_id="cnc-01"), headers=c.headers)).json()
    late = (await client.post("/api/v1/bookings", json=slot(0, 9, 11, device_id="cnc-01"), headers=c.headers)).json()
    r = await client.post(f"/api/v1/bookings/{early['id']}/cancel", headers=c.headers)
    assert r.status_code == 200, r.text
    assert r.json()["late_cancellation"] is False and Decimal(r.json()["fee"]) == 0
    r = await client.post(f"/api/v1/bookings/{late['id']}/cancel", headers=c.headers)
    assert r.json()["status"] == "cancelled"
    assert r.json()["late_cancellation"] is True and r.json()["fee"] == "180.00"  # half of 360
    again = await client.post(f"/api/v1/bookings/{late['id']}/cancel", headers=c.headers)
    assert again.status_code == 409


async def test_maintenance_post_is_idempotent_too(center):
    client, pool, _ = center
    tech = {**(await as_role(pool, client, Role.technician)), "Idempotency-Key": "pm-cnc-01-march"}
    body = {**slot(4, 8, 12), "device_id": "cnc-01", "reason": "spindle bearing check"}
    first = await client.post("/api/v1/maintenance", json=body, headers=tech)
    again = await client.post("/api/v1/maintenance", json=body, headers=tech)
    assert first.status_code == again.status_code == 201, first.text
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    listed = await client.get(
        "/api/v1/maintenance", params={"device_id": "cnc-01", "from": slot(4, 0, 0)["start"]}, headers=tech
    )
    assert [w["id"] for w in listed.json()["items"]] == [first.json()["id"]]
