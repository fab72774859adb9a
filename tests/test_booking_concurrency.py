"""200 requests at once for overlapping slots: the database's exclusion constraint lets exactly one win per
device, everyone else gets a 409, and class requests spread over the free devices of the class."""

import asyncio
from collections import Counter

import pytest

from tests.accounts_rig import Clock
from tests.booking_rig import NOW, customer, slot
from tests.http import serve

REQUESTS = 200
CUSTOMERS = 20


@pytest.fixture
async def crowd(db_url, pool):
    async with serve(db_url, clock=Clock(NOW), db_pool_size=20) as client:
        people = await asyncio.gather(*(customer(pool, client) for _ in range(CUSTOMERS)))
        yield client, pool, people


async def storm(client, people, bodies):
    async def one(i):
        r = await client.post("/api/v1/bookings", json=bodies[i], headers=people[i % len(people)].headers)
        return r.status_code, r.json()

    return await asyncio.gather(*(one(i) for i in range(REQUESTS)))


async def live_bookings(pool):
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT device_id, count(*) FROM booking WHERE status = 'confirmed' GROUP BY 1")
        return dict(await cur.fetchall())


async def test_one_device_one_winner(crowd):
    client, pool, people = crowd
    # Every request overlaps every other: all cover 10:00-11:00.
    bodies = [slot(1, 9 + (i % 2) * 0.5, 11 + (i % 3) * 0.5, device_id="cnc-01") for i in range(REQUESTS)]
    results = await storm(client, people, bodies)
    codes = Counter(code for code, _ in results)
    assert codes == {201: 1, 409: REQUESTS - 1}, codes
    assert await live_bookings(pool) == {"cnc-01": 1}
    assert all(body["alternatives"] for code, body in results if code == 409)


async def test_class_requests_spread_over_the_free_devices(crowd):
    client, pool, people = crowd
    bodies = [slot(2, 9, 11, class_id="printer") for _ in range(REQUESTS)]
    results = await storm(client, people, bodies)
    codes = Counter(code for code, _ in results)
    assert codes == {201: 3, 409: REQUESTS - 3}, codes
    assert sorted(body["device_id"] for code, body in results if code == 201) == [
        "printer-01",
        "printer-02",
        "printer-03",
    ]
    assert await live_bookings(pool) == {"printer-01": 1, "printer-02": 1, "printer-03": 1}
