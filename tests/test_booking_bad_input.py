"""Bad input at the booking routes' edge: far-off or offset-heavy times, absurd lengths, NUL in text.
Each gets a 4xx that says what is wrong; none reaches the database as a 500."""

import pytest

from accounts.model import Role
from tests.accounts_rig import Clock, as_role
from tests.booking_rig import NOW, customer, slot
from tests.http import serve


@pytest.fixture
async def center(db_url, pool):
    async with serve(db_url, clock=Clock(NOW)) as client:
        yield client, pool


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("9999-06-01T00:00:00Z", "9999-06-01T02:00:00Z"),
        ("9999-12-31T20:00:00Z", "9999-12-31T22:00:00Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T02:00:00Z"),
        ("0001-01-01T00:00:00+05:00", "0001-01-01T02:00:00+05:00"),
    ],
)
async def test_far_off_times_are_422(center, start, end):
    client, pool = center
    c = await customer(pool, client)
    body = {"start": start, "end": end, "device_id": "cnc-01"}
    for path in ("/api/v1/quotes", "/api/v1/bookings"):
        r = await client.post(path, json=body, headers=c.headers)
        assert r.status_code == 422 and "between the years 2000 and 2199" in r.text, r.text
    r = await client.get("/api/v1/availability", params={"class": "cnc", "from": start, "to": end}, headers=c.headers)
    assert r.status_code == 422, r.text
    tech = await as_role(pool, client, Role.technician)
    r = await client.get("/api/v1/maintenance", params={"from": start}, headers=tech)
    assert r.status_code == 422, r.text
    r = await client.post("/api/v1/maintenance", json={**body, "reason": "x"}, headers=tech)
    assert r.status_code == 422, r.text


async def test_absurd_length_is_refused_before_the_database(center):
    client, pool = center
    c = await customer(pool, client)
    body = {"start": "2027-03-02T09:00:00+08:00", "end": "2199-03-02T09:00:00+08:00", "device_id": "cnc-01"}
    r = await client.post("/api/v1/bookings", json=body, headers=c.headers)
    assert r.status_code == 422 and "at most 31 days" in r.json()["detail"]


async def test_nul_in_text_is_422_saying_so(center):
    client, pool = center
    c = await customer(pool, client)
    r = await client.post(
        "/api/v1/bookings", json=slot(1, 9, 10, device_id="cnc-01", purpose="a\x00b"), headers=c.headers
    )
    assert r.status_code == 422 and "NUL" in r.text, r.text
