"""Every class rule at its boundary, time zone edges, the subsidy cap running out inside a booking, and
staff overrides. devices.yaml's cnc class: 1 h to 8 h on a 30 min grid, 30 days ahead, 40 future hours per
organization, late cancellation inside 24 h; the center opens 08:00-20:00 on weekdays."""

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from accounts.model import Role
from fabhub.devices import load_devices
from tests.accounts_rig import Clock, as_role
from tests.booking_rig import NOW, customer, local, slot
from tests.http import serve

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
async def center(db_url, pool):
    clock = Clock(NOW)
    async with serve(db_url, clock=clock, access_token_minutes=24 * 60) as client:
        yield client, pool, clock


async def book(client, who, body):
    return await client.post("/api/v1/bookings", json=body, headers=who.headers)


def rules_broken(r) -> set[str]:
    assert r.status_code == 422, r.text
    return {p["rule"] for p in r.json()["problems"]}


async def test_length_rules_at_their_boundaries(center):
    client, pool, _ = center
    c = await customer(pool, client)
    assert (await book(client, c, slot(1, 9, 10, device_id="cnc-01"))).status_code == 201  # exactly 1 h
    assert rules_broken(await book(client, c, slot(1, 10, 10.5, device_id="cnc-01"))) == {"min_booking"}
    assert (await book(client, c, slot(2, 8, 16, device_id="cnc-01"))).status_code == 201  # exactly 8 h
    assert rules_broken(await book(client, c, slot(3, 8, 16.5, device_id="cnc-01"))) == {"max_booking"}


async def test_grid_and_past(center):
    client, pool, _ = center
    c = await customer(pool, client)
    assert rules_broken(await book(client, c, slot(1, 9.25, 10.25, device_id="cnc-01"))) == {"granularity"}
    r = await book(client, c, slot(1, 9, 10 + 1 / 60, device_id="cnc-01"))
    assert rules_broken(r) == {"granularity"}
    assert "past" in rules_broken(await book(client, c, slot(-1, 9, 10, device_id="cnc-01")))


async def test_horizon_boundary(center):
    client, pool, clock = center
    c = await customer(pool, client)
    # NOW is 07:00; 30 days ahead is 07:00 on day 30; the center opens at 08:00, so move the clock to 09:00.
    clock.now = local(0, 9)
    assert (await book(client, c, slot(30, 9, 10, device_id="cnc-02"))).status_code == 201
    assert rules_broken(await book(client, c, slot(30, 9.5, 10.5, device_id="cnc-01"))) == {"horizon"}


async def test_future_hours_per_organization(center):
    client, pool, _ = center
    c = await customer(pool, client)
    colleague = await customer(pool, client, org_id=c.org_id)
    for day in (1, 2, 3, 4, 7):  # 5 weekdays x 8 h = 40 h, the limit exactly
        assert (await book(client, c, slot(day, 8, 16, device_id="cnc-01"))).status_code == 201
    r = await book(client, colleague, slot(1, 16, 17, device_id="cnc-02"))
    assert rules_broken(r) == {"max_future_hours_per_org"}
    assert "40 h" in r.json()["problems"][0]["message"]
    # Other classes and other organizations are not affected.
    assert (await book(client, colleague, slot(1, 16, 17, device_id="robot-01"))).status_code == 201
    other = await customer(pool, client)
    assert (await book(client, other, slot(1, 16, 17, device_id="cnc-02"))).status_code == 201


async def test_opening_hours_closed_days_and_overnight(center):
    client, pool, _ = center
    c = await customer(pool, client)
    assert rules_broken(await book(client, c, slot(1, 19, 21, device_id="printer-01"))) == {"opening_hours"}
    assert rules_broken(await book(client, c, slot(6, 10, 12, device_id="printer-01"))) == {"opening_hours"}  # Sunday
    async with pool.connection() as conn:
        # Open through the night from Tuesday to Wednesday; Thursday closed for a holiday.
        await conn.execute("INSERT INTO opening_hours VALUES (2, '20:00', '24:00'), (3, '00:00', '08:00')")
        await conn.execute("INSERT INTO closed_day VALUES ('2027-03-04', 'public holiday')")
    r = await book(client, c, slot(1, 18, 26, device_id="printer-01"))  # Tue 18:00 to Wed 02:00
    assert r.status_code == 201, r.text
    assert r.json()["start"] == "2027-03-02T18:00:00+08:00" and r.json()["end"] == "2027-03-03T02:00:00+08:00"
    # Wednesday 16:00 to Thursday 00:00 ends just as the closed day begins; into it does not.
    assert (await book(client, c, slot(2, 16, 20, device_id="printer-02"))).status_code == 201
    assert rules_broken(await book(client, c, slot(3, 8, 10, device_id="printer-02"))) == {"opening_hours"}
    # Availability agrees: nothing on the closed day, the night of Tuesday open.
    r = await client.get(
        "/api/v1/availability",
        params={"class": "printer", "from": local(1, 0).isoformat(), "to": local(4, 0).isoformat()},
        headers=c.headers,
    )
    assert r.status_code == 200, r.text
    free = {d["device_id"]: d["free"] for d in r.json()["devices"]}
    assert free["printer-03"] == [
        {"start": "2027-03-02T08:00:00+08:00", "end": "2027-03-03T20:00:00+08:00"},
    ]
    assert {"start": "2027-03-02T08:00:00+08:00", "end": "2027-03-02T18:00:00+08:00"} in free["printer-01"]


async def test_qualification_missing_expired_and_expiring_on_the_day(center):
    client, pool, _ = center
    unqualified = await customer(pool, client, classes=())
    r = await book(client, unqualified, slot(1, 9, 10, device_id="cnc-01"))
    assert rules_broken(r) == {"qualification"} and "not qualified" in r.json()["problems"][0]["message"]
    expiring = await customer(pool, client, qualified_until=date(2027, 3, 2))
    assert (await book(client, expiring, slot(1, 9, 10, device_id="cnc-01"))).status_code == 201
    r = await book(client, expiring, slot(2, 9, 10, device_id="cnc-01"))
    assert rules_broken(r) == {"qualification"} and "2027-03-02" in r.json()["problems"][0]["message"]


async def test_late_cancellation_threshold(center):
    client, pool, clock = center
    c = await customer(pool, client)
    a = (await book(client, c, slot(1, 9, 11, device_id="cnc-01"))).json()
    b = (await book(client, c, slot(1, 11, 13, device_id="cnc-01"))).json()
    clock.now = local(0, 9)  # exactly 24 h before a: not late
    r = await client.post(f"/api/v1/bookings/{a['id']}/cancel", headers=c.headers)
    assert r.json()["late_cancellation"] is False and r.json()["fee"] == "0.00"
    clock.now = local(0, 11) + timedelta(seconds=1)  # one second inside 24 h before b: late
    r = await client.post(f"/api/v1/bookings/{b['id']}/cancel", headers=c.headers)
    assert r.json()["late_cancellation"] is True and r.json()["fee"] == "180.00"


async def test_staff_override_is_logged_and_customers_cannot_override(center):
    client, pool, _ = center
    c = await customer(pool, client, classes=())
    body = slot(1, 9, 9.5, device_id="cnc-01", override_reason="training run agreed by phone")
    assert (await book(client, c, body)).status_code == 403
    tech = await as_role(pool, client, Role.technician)
    r = await client.post("/api/v1/bookings", json={**body, "user_id": c.user_id}, headers=tech)
    assert r.status_code == 201, r.text
    assert r.json()["override_reason"] == "training run agreed by phone"
    admin = await as_role(pool, client, Role.admin)
    log = (await client.get("/api/v1/audit", params={"entity": "booking"}, headers=admin)).json()["items"]
    override = next(e for e in log if e["action"] == "override")
    assert set(override["after"]) == {"min_booking", "qualification"}
    assert override["reason"] == "training run agreed by phone"
    # Without a reason staff get the same 422 as anyone.
    r = await client.post(
        "/api/v1/bookings", json={**slot(2, 9, 9.5, device_id="cnc-01"), "user_id": c.user_id}, headers=tech
    )
    assert r.status_code == 422


async def test_subsidy_cap_runs_out_inside_a_booking(db_url, pool):
    devices = load_devices(REPO / "devices.yaml")
    programs = dict(devices.subsidy_programs)
    programs["jingjiang-sme"] = programs["jingjiang-sme"].model_copy(update={"annual_cap": Decimal("500.00")})
    devices = devices.model_copy(update={"subsidy_programs": programs})
    async with serve(db_url, devices=devices, clock=Clock(NOW)) as client:
        c = await customer(pool, client, programs=("jingjiang-sme",))
        first = (await book(client, c, slot(1, 9, 11, device_id="cnc-01"))).json()
        assert (first["gross"], first["subsidy"], first["net"]) == ("360.00", "180.00", "180.00")
        # 4 h = 720.00, half would be 360.00, but only 320.00 of the 500.00 cap is left.
        second = (await book(client, c, slot(2, 9, 13, device_id="cnc-01"))).json()
        assert (second["gross"], second["subsidy"], second["net"]) == ("720.00", "320.00", "400.00")
        third = (await book(client, c, slot(3, 9, 10, device_id="cnc-01"))).json()
        assert third["subsidy"] == "0.00" and third["subsidy_program"] is None
        # Cancelling gives the reserved subsidy back to the cap.
        await client.post(f"/api/v1/bookings/{second['id']}/cancel", headers=c.headers)
        q = (await client.post("/api/v1/quotes", json=slot(4, 9, 13, device_id="cnc-01"), headers=c.headers)).json()
        assert q["quote"]["subsidy"] == "320.00" and q["quote"]["capped_from"] == "360.00"
        # A booking in the next calendar year starts from a fresh cap.
        assert NOW.year == 2027


async def test_availability_stops_at_the_horizon(center):
    client, pool, _ = center
    c = await customer(pool, client)
    params = {"class": "cnc", "from": local(29, 0).isoformat(), "to": local(40, 0).isoformat()}
    r = await client.get("/api/v1/availability", params=params, headers=c.headers)
    assert r.status_code == 200, r.text
    for device in r.json()["devices"]:
        assert device["free"] and max(f["end"] for f in device["free"]) <= (NOW + timedelta(days=30)).isoformat()
    beyond = {"class": "cnc", "from": local(40, 0).isoformat(), "to": local(45, 0).isoformat()}
    r = await client.get("/api/v1/availability", params=beyond, headers=c.headers)
    assert [d["free"] for d in r.json()["devices"]] == [[], []]


def test_a_grid_that_does_not_divide_a_day_is_refused():
    from pydantic import ValidationError

    from fabhub.devices.schema import BookingRules

    assert BookingRules(granularity="2h", min_booking="2h", max_booking="8h")
    with pytest.raises(ValidationError, match="granularity must divide a day"):
        BookingRules(granularity="50m", min_booking="50m", max_booking="500m")
