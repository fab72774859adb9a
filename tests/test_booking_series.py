"""Recurring bookings over the real app: a preview prices every occurrence and names what is in its way, a
series is booked whole or (asked) without its conflicts, read back, and its rest cancelled."""

from __future__ import annotations

import pytest

from tests.booking_rig import NOW, customer, local, slot
from tests.http import serve

SERIES = "/api/v1/bookings/series"


def series(day: int, start: float, end: float, rule: str, **extra) -> dict:
    return {**slot(day, start, end, device_id="cnc-01"), "rule": rule, **extra}


async def test_preview_book_read_and_cancel_the_rest(db_url, pool):
    async with serve(db_url, clock=lambda: NOW) as client:
        mine = await customer(pool, client)
        other = await customer(pool, client)
        # Someone already holds the machine on the second Thursday's first hour.
        r = await client.post("/api/v1/bookings", json=slot(3, 9, 10, device_id="cnc-01"), headers=other.headers)
        assert r.status_code == 201
        body = series(1, 9, 11, "FREQ=WEEKLY;BYDAY=TU,TH;COUNT=6")  # Tue 2 March 2027, then Tue/Thu

        r = await client.post(f"{SERIES}/preview", json=body, headers=mine.headers)
        assert r.status_code == 200, r.text
        preview = r.json()
        starts = [o["start"][:16] for o in preview["occurrences"]]
        assert starts == [
            "2027-03-02T09:00",
            "2027-03-04T09:00",
            "2027-03-09T09:00",
            "2027-03-11T09:00",
            "2027-03-16T09:00",
            "2027-03-18T09:00",
        ]  # local wall time, in the center's zone
        assert [o["bookable"] for o in preview["occurrences"]] == [True, False, True, True, True, True]
        assert preview["occurrences"][1]["problems"][-1]["rule"] == "taken"
        assert preview["bookable"] == 5 and preview["net"] == "1800.00"  # 5 x 2 h x 180.00

        # All or nothing: the conflict refuses the series and books none of it.
        r = await client.post(SERIES, json=body, headers=mine.headers)
        assert r.status_code == 409, r.text
        [conflict] = r.json()["conflicts"]
        assert conflict["start"].startswith("2027-03-04T09:00") and "taken" in conflict["reason"]
        window = {"from": local(0, 0).isoformat(), "to": local(30, 0).isoformat()}
        assert (await client.get("/api/v1/bookings", params=window, headers=mine.headers)).json()["total"] == 0

        r = await client.post(SERIES, json={**body, "skip_conflicts": True}, headers=mine.headers)
        assert r.status_code == 201, r.text
        made = r.json()
        assert len(made["bookings"]) == 5 and [s["start"][:10] for s in made["skipped"]] == ["2027-03-04"]
        assert {b["series_id"] for b in made["bookings"]} == {made["id"]}
        read = (await client.get(f"{SERIES}/{made['id']}", headers=mine.headers)).json()
        assert [b["id"] for b in read["bookings"]] == [b["id"] for b in made["bookings"]]
        assert (await client.get(f"{SERIES}/{made['id']}", headers=other.headers)).status_code == 404

        third = made["bookings"][2]["id"]
        r = await client.post(f"{SERIES}/{made['id']}/cancel", json={"from_booking_id": third}, headers=mine.headers)
        assert r.status_code == 200, r.text
        assert [b["id"] for b in r.json()] == [b["id"] for b in made["bookings"][2:]]
        read = (await client.get(f"{SERIES}/{made['id']}", headers=mine.headers)).json()
        assert [b["status"] for b in read["bookings"]] == ["confirmed", "confirmed"] + ["cancelled"] * 3
        r = await client.post(f"{SERIES}/{made['id']}/cancel", json={"from_booking_id": third}, headers=mine.headers)
        assert r.status_code == 409


async def test_occurrences_past_the_horizon_are_named(db_url, pool):
    async with serve(db_url, clock=lambda: NOW) as client:
        c = await customer(pool, client)
        r = await client.post(f"{SERIES}/preview", json=series(1, 9, 10, "FREQ=WEEKLY;COUNT=6"), headers=c.headers)
        problems = [[p["rule"] for p in o["problems"]] for o in r.json()["occurrences"]]
        assert problems[:5] == [[]] * 5 and "horizon" in problems[5]


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("FREQ=MONTHLY;COUNT=3", "FREQ is DAILY or WEEKLY"),
        ("FREQ=WEEKLY;COUNT=3;UNTIL=20270401", "COUNT or UNTIL"),
        ("FREQ=WEEKLY", "COUNT or UNTIL"),
        ("FREQ=DAILY;BYDAY=MO;COUNT=2", "BYDAY goes with FREQ=WEEKLY"),
        ("FREQ=WEEKLY;BYDAY=WE,FR;COUNT=2", "the first slot must be an occurrence"),
        ("FREQ=DAILY;COUNT=53", "COUNT is a whole number from 1 to 52"),
        ("FREQ=DAILY;COUNT=0", "COUNT is a whole number"),
        ("FREQ=DAILY;INTERVAL=99;COUNT=2", "INTERVAL is a whole number"),
        ("FREQ=DAILY;UNTIL=20271399", "UNTIL is a date"),
        ("FREQ=DAILY;UNTIL=2027031", "UNTIL is a date"),
        ("FREQ=DAILY;COUNT=2;COUNT=3", "each once"),
        ("FREQ=DAILY;WKST=MO;COUNT=2", "is not FREQ"),
        ("FREQ=WEEKLY;BYDAY=XX;COUNT=2", "BYDAY lists days"),
        ("FREQ=DAILY;UNTIL=20290101", "at most 52 occurrences"),
        ("freq=daily;count=2", "should match pattern"),
    ],
)
async def test_bad_rules_get_422_with_the_reason(db_url, pool, rule, reason):
    async with serve(db_url, clock=lambda: NOW) as client:
        c = await customer(pool, client)
        for path in (f"{SERIES}/preview", SERIES):
            r = await client.post(path, json=series(1, 9, 10, rule), headers=c.headers)
            assert r.status_code == 422, r.text
            assert reason in r.text
