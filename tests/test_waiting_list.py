"""The waiting list over the real app and its job: a freed slot goes to the first waiter, offered for a while
or booked at once as they chose; a lapsed offer passes it on; the same slot is never offered twice."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx

from accounts.model import Role
from tests.accounts_rig import Clock, as_role, login
from tests.booking_rig import NOW, customer, local, slot
from tests.http import app_for, serving

WAIT = "/api/v1/waiting-list"


@contextlib.asynccontextmanager
async def center(db_url: str) -> AsyncIterator[tuple[Any, httpx.AsyncClient, Clock]]:
    clock = Clock(NOW)
    app = app_for(db_url, clock=clock, access_token_minutes=24 * 60)
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        yield app, client, clock


async def serve_waiters(app: Any) -> dict:
    ran, result = await app.state.jobs.run("waiting-list")
    assert ran
    return result


async def entry(client: httpx.AsyncClient, headers: dict, entry_id: int) -> dict:
    listed = (await client.get(WAIT, headers=headers)).json()["items"]
    return next(e for e in listed if e["id"] == entry_id)


async def test_a_freed_slot_is_offered_to_the_first_waiter_then_passes_on(db_url, pool):
    async with center(db_url) as (app, client, clock):
        holder, first, second = [await customer(pool, client) for _ in range(3)]
        wanted = slot(2, 9, 11, device_id="cnc-01")
        r = await client.post("/api/v1/bookings", json=wanted, headers=holder.headers)
        assert r.status_code == 201
        held = r.json()["id"]
        assert (await client.post("/api/v1/bookings", json=wanted, headers=first.headers)).status_code == 409

        r = await client.post(WAIT, json=wanted, headers=first.headers)
        assert r.status_code == 201, r.text
        first_entry = r.json()
        assert first_entry["status"] == "waiting" and first_entry["start"] == wanted["start"]
        second_entry = (await client.post(WAIT, json=wanted, headers=second.headers)).json()
        # Nothing to wait for when the slot is free, or when waiting cannot mend it.
        r = await client.post(WAIT, json=slot(2, 13, 15, device_id="cnc-01"), headers=first.headers)
        assert r.status_code == 409 and "free now" in r.json()["detail"]
        r = await client.post(WAIT, json=slot(2, 21, 22, device_id="cnc-01"), headers=first.headers)
        assert r.status_code == 422 and r.json()["problems"][0]["rule"] == "opening_hours"

        assert await serve_waiters(app) == {"booked": 0, "offered": 0}  # still taken
        assert (await client.post(f"/api/v1/bookings/{held}/cancel", headers=holder.headers)).status_code == 200
        assert await serve_waiters(app) == {"booked": 0, "offered": 1}
        assert await serve_waiters(app) == {"booked": 0, "offered": 0}  # offered once, to one waiter
        offer = await entry(client, first.headers, first_entry["id"])
        assert offer["status"] == "offered" and offer["offered_device"] == "cnc-01"
        assert offer["offer_expires_at"].startswith("2027-03-01T09:00")  # two hours from 07:00
        assert (await entry(client, second.headers, second_entry["id"]))["status"] == "waiting"
        # The other waiter cannot take it, nor see the first one's entry.
        r = await client.post(f"{WAIT}/{first_entry['id']}/accept", headers=second.headers)
        assert r.status_code == 404
        async with pool.connection() as conn:
            kinds = [k for (k,) in await (await conn.execute("SELECT kind FROM outbox_event")).fetchall()]
        assert kinds.count("waiting.offered") == 1

        # The offer lapses: the slot passes to the next waiter.
        clock.advance(hours=2, minutes=1)
        assert await serve_waiters(app) == {"booked": 0, "offered": 1}
        assert (await entry(client, first.headers, first_entry["id"]))["status"] == "lapsed"
        r = await client.post(f"{WAIT}/{first_entry['id']}/accept", headers=first.headers)
        assert r.status_code == 409
        r = await client.post(f"{WAIT}/{second_entry['id']}/accept", headers=second.headers)
        assert r.status_code == 201, r.text
        booking = r.json()
        assert (booking["device_id"], booking["start"], booking["status"]) == ("cnc-01", wanted["start"], "confirmed")
        done = await entry(client, second.headers, second_entry["id"])
        assert (done["status"], done["booking_id"]) == ("booked", booking["id"])
        assert (await client.delete(f"{WAIT}/{second_entry['id']}", headers=second.headers)).status_code == 409


async def test_auto_book_takes_the_slot_as_soon_as_it_frees_and_entries_expire(db_url, pool):
    async with center(db_url) as (app, client, clock):
        holder, waiter, late = [await customer(pool, client) for _ in range(3)]
        wanted = slot(3, 9, 10, device_id="cnc-02")
        held = (await client.post("/api/v1/bookings", json=wanted, headers=holder.headers)).json()["id"]
        auto = (await client.post(WAIT, json={**wanted, "auto_book": True}, headers=waiter.headers)).json()
        other = slot(4, 9, 10, device_id="cnc-02")
        await client.post("/api/v1/bookings", json=other, headers=holder.headers)
        never = (await client.post(WAIT, json=other, headers=late.headers)).json()
        withdrawn = (await client.post(WAIT, json={**other, "purpose": "x"}, headers=late.headers)).json()
        r = await client.delete(f"{WAIT}/{withdrawn['id']}", headers=late.headers)
        assert r.status_code == 200 and r.json()["status"] == "withdrawn"

        assert (await client.post(f"/api/v1/bookings/{held}/cancel", headers=holder.headers)).status_code == 200
        assert await serve_waiters(app) == {"booked": 1, "offered": 0}
        booked = await entry(client, waiter.headers, auto["id"])
        assert booked["status"] == "booked"
        mine = await client.get(f"/api/v1/bookings/{booked['booking_id']}", headers=waiter.headers)
        assert mine.json()["organization_id"] == waiter.org_id and mine.json()["device_id"] == "cnc-02"

        clock.now = local(4, 9) + timedelta(minutes=1)  # the span has begun: no longer served
        await serve_waiters(app)
        late.headers = await login(client, late.email)
        assert (await entry(client, late.headers, never["id"]))["status"] == "expired"


async def test_an_offer_whose_machine_went_under_maintenance_is_a_409_and_stays_open(db_url, pool):
    async with center(db_url) as (app, client, _clock):
        holder, waiter = await customer(pool, client), await customer(pool, client)
        technician = await as_role(pool, client, Role.technician)
        wanted = slot(2, 9, 11, device_id="cnc-01")
        held = (await client.post("/api/v1/bookings", json=wanted, headers=holder.headers)).json()["id"]
        waiting = (await client.post(WAIT, json=wanted, headers=waiter.headers)).json()
        assert (await client.post(f"/api/v1/bookings/{held}/cancel", headers=holder.headers)).status_code == 200
        assert await serve_waiters(app) == {"booked": 0, "offered": 1}
        window = {"device_id": "cnc-01", "start": wanted["start"], "end": wanted["end"], "reason": "换刀"}
        r = await client.post("/api/v1/maintenance", json=window, headers=technician)
        assert r.status_code == 201, r.text
        r = await client.post(f"{WAIT}/{waiting['id']}/accept", headers=waiter.headers)
        assert r.status_code == 409 and "under maintenance" in r.json()["detail"], r.text
        assert (await entry(client, waiter.headers, waiting["id"]))["status"] == "offered"
