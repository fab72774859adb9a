"""Down time reasons and the loss Pareto against a day worked by hand: down intervals read from the state
table (repeated 'down' rows merged, offline breaking an interval, one still open), reasons attached over
HTTP and audited, and the Pareto inside planned time agreeing with the OEE report's down time."""

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from accounts import audit
from accounts.model import Principal, Role
from booking.catalogue import sync
from common.errors import NotFound
from fabhub.catalogue import catalogue_from, oee_facts
from fabhub.devices import load_devices
from oee import downtime
from oee.service import OeeService
from telemetry import BatchWriter, Sample
from tests.accounts_rig import as_role, make_user
from tests.http import serve

REPO = Path(__file__).resolve().parent.parent
ZONE = ZoneInfo("Asia/Shanghai")
DAY = datetime(2027, 3, 1, tzinfo=ZONE)  # a Monday: open 08:00-20:00
NOW = DAY + timedelta(days=1)  # midnight after the day


def t(hour: float) -> datetime:
    return DAY + timedelta(hours=hour)


# Local times. cnc-01's intervals: A 07:30-08:30 (half before opening; 07:45 repeats 'down'), B 10:00-10:45
# (10:10 repeats), C 12:00-12:20 (ends offline), D 12:30-13:00 (after the offline gap: a new interval),
# E from 19:30, still down at NOW. cnc-02: F 09:00-09:15.
STATES = {
    "cnc-01": [
        (6.0, "idle"),
        (7.5, "down"),
        (7.75, "down"),
        (8.5, "running"),
        (10.0, "down"),
        (10 + 10 / 60, "down"),
        (10.75, "running"),
        (12.0, "down"),
        (12 + 20 / 60, "offline"),
        (12.5, "down"),
        (13.0, "running"),
        (19.5, "down"),
        (21.0, "down"),
    ],
    "cnc-02": [(8.0, "idle"), (9.0, "down"), (9.25, "idle")],
}
A, B, C, D, E, F = t(7.5), t(10), t(12), t(12.5), t(19.5), t(9)


async def write_day(pool) -> None:
    devices = load_devices(REPO / "devices.yaml")
    async with pool.connection() as conn, conn.transaction():
        await sync(conn, catalogue_from(devices), NOW)
    samples = [Sample(t(h), device, "state", state) for device, rows in STATES.items() for h, state in rows]
    await BatchWriter(pool, clock=lambda: NOW).write_batch(samples)


@pytest.fixture
async def day(any_pool):
    await write_day(any_pool)
    user = await make_user(any_pool, Role.technician)
    return Principal(user, "tech@example.com", "Tech", Role.technician, None)


def rows_of(found: downtime.Pareto) -> list[tuple]:
    return [(r.code, r.seconds, r.intervals, round(r.share, 4), round(r.cumulative_share, 4)) for r in found.rows]


async def test_intervals_reasons_and_the_pareto_worked_by_hand(day, any_pool):
    async with any_pool.connection() as conn:
        found = await downtime.down_intervals(conn, ["cnc-01", "cnc-02"], t(0), t(24), NOW)
        assert [(i.device_id, i.start, i.end) for i in found] == [
            ("cnc-01", E, None),
            ("cnc-01", D, t(13)),
            ("cnc-01", C, t(12 + 20 / 60)),
            ("cnc-01", B, t(10.75)),
            ("cnc-02", F, t(9.25)),
            ("cnc-01", A, t(8.5)),
        ]
        assert [i.duration_s for i in found] == [16_200, 1_800, 1_200, 2_700, 900, 3_600]
        # An interval under way at 'from' keeps its true start, past the repeated row at 07:45.
        [under_way] = await downtime.down_intervals(conn, ["cnc-01"], t(7.8), t(7.9), NOW)
        assert (under_way.start, under_way.end) == (A, t(8.5))
        # A window opening on the repeated row itself: still A, not a new interval at 07:45.
        assert [i.start for i in await downtime.down_intervals(conn, ["cnc-01"], t(7.75), t(8), NOW)] == [A]
        assert await downtime.down_intervals(conn, ["cnc-01"], t(8.5), t(10), NOW) == []  # A ended at 08:30
        assert await downtime.down_intervals(conn, ["printer-01"], t(0), t(24), NOW) == []  # no states at all
        # A reason is attached only at a real start: not at a repeated row, not at a made-up time.
        for start in (t(7.75), t(10.1)):
            with pytest.raises(NotFound):
                await downtime.set_reason(conn, day, "cnc-01", start, "other", "", NOW)
        for start, code in ((B, "machine_fault"), (D, "machine_fault"), (C, "tool_breakage"), (E, "material_shortage")):
            await downtime.set_reason(conn, day, "cnc-01", start, code, "", NOW)

        # Planned time is 08:00-20:00: A counts 08:00-08:30 (1,800 s), E 19:30-20:00 (1,800 s).
        # machine_fault B + D = 2,700 + 1,800 = 4,500; unassigned A + F = 1,800 + 900 = 2,700;
        # material_shortage 1,800; tool_breakage 1,200; total 10,200.
        planned = await downtime.pareto(conn, ["cnc-01", "cnc-02"], t(0), t(24), NOW, ZONE)
        assert planned.down_s == 10_200
        assert rows_of(planned) == [
            ("machine_fault", 4_500, 2, 0.4412, 0.4412),
            ("unassigned", 2_700, 2, 0.2647, 0.7059),
            ("material_shortage", 1_800, 1, 0.1765, 0.8824),
            ("tool_breakage", 1_200, 1, 0.1176, 1.0),
        ]
        assert planned.rows[-1].cumulative_share == 1.0
        # The same total as the OEE report's down time (both inside planned time).
        service = OeeService(*oee_facts(load_devices(REPO / "devices.yaml")), ZONE, lambda: NOW)
        live = await service.live(conn, ["cnc-01", "cnc-02"], t(0), t(24))
        assert live["down_s"].sum() == planned.down_s

        # Every down second of the window: A 3,600, E 19:30 to NOW = 16,200. Ties go by code.
        everything = await downtime.pareto(conn, ["cnc-01", "cnc-02"], t(0), t(24), NOW, ZONE, planned_only=False)
        assert everything.down_s == 26_400
        assert [(r.code, r.seconds) for r in everything.rows] == [
            ("material_shortage", 16_200),
            ("machine_fault", 4_500),
            ("unassigned", 4_500),
            ("tool_breakage", 1_200),
        ]
        # Explained down time outside opening hours counts whole: E (material_shortage) 19:30 to NOW = 16,200;
        # the unexplained A still only 08:00-08:30 (1,800) and F 900: 10,200 - 1,800 + 16,200 = 24,600.
        explained = await downtime.pareto(conn, ["cnc-01", "cnc-02"], t(0), t(24), NOW, ZONE, explained_outside=True)
        assert (explained.planned_only, explained.explained_outside, explained.down_s) == (True, True, 24_600)
        assert [(r.code, r.seconds, r.intervals) for r in explained.rows] == [
            ("material_shortage", 16_200, 1),
            ("machine_fault", 4_500, 2),
            ("unassigned", 2_700, 2),
            ("tool_breakage", 1_200, 1),
        ]
        # A window from 10:30 to 12:10 cuts B to 15 min and C to 10 min.
        cut = await downtime.pareto(conn, ["cnc-01"], t(10.5), t(12 + 10 / 60), NOW, ZONE)
        assert [(r.code, r.seconds) for r in cut.rows] == [("machine_fault", 900), ("tool_breakage", 600)]
        # Intervals are never cut at now's end: the still-open E counts only up to now.
        early = await downtime.pareto(conn, ["cnc-01"], t(19), t(24), t(19.75), ZONE)
        assert [(r.code, r.seconds) for r in early.rows] == [("material_shortage", 900)]


@pytest.fixture
async def center(db_url, pool):
    await write_day(pool)
    async with serve(db_url, clock=lambda: NOW) as client:
        yield client, pool


def at(moment: datetime) -> str:
    return moment.isoformat()


def when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


async def test_reasons_over_http_then_the_pareto(center):
    client, pool = center
    tech = await as_role(pool, client, Role.technician)
    finance = await as_role(pool, client, Role.finance)
    customer = await as_role(pool, client, Role.customer)
    window = {"from": at(t(9)), "to": at(t(13)), "device": "cnc-01"}

    r = await client.get("/api/v1/downtime", params=window, headers=tech)
    assert r.status_code == 200, r.text
    listed = [
        (i["device_id"], when(i["start"]), when(i["end"]), i["duration_s"], i["reason"]) for i in r.json()["items"]
    ]
    assert listed == [
        ("cnc-01", D, t(13), 1_800, None),
        ("cnc-01", C, t(12 + 20 / 60), 1_200, None),
        ("cnc-01", B, t(10.75), 2_700, None),
    ]

    r = await client.put(f"/api/v1/downtime/cnc-01/{at(B)}", json={"code": "tool_breakage"}, headers=tech)
    assert r.status_code == 200, r.text
    r = await client.put(
        f"/api/v1/downtime/cnc-01/{at(B)}", json={"code": "machine_fault", "note": " 主轴报警 "}, headers=tech
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (when(body["start"]), when(body["end"]), body["duration_s"]) == (B, t(10.75), 2_700)
    assert {k: body["reason"][k] for k in ("code", "name", "name_zh", "note")} == {
        "code": "machine_fault",
        "name": "Machine fault",
        "name_zh": "设备故障",
        "note": "主轴报警",
    }
    # The listing shows it, to finance as well; the same instant written in UTC names the same interval.
    r = await client.get("/api/v1/downtime", params=window, headers=finance)
    assert r.json()["items"][2]["reason"]["code"] == "machine_fault"
    r = await client.put("/api/v1/downtime/cnc-01/2027-03-01T04:00:00Z", json={"code": "other"}, headers=tech)
    assert r.status_code == 200 and when(r.json()["start"]) == C and r.json()["reason"]["code"] == "other"
    assert (await client.delete(f"/api/v1/downtime/cnc-01/{at(C)}", headers=tech)).status_code == 204
    assert (await client.delete("/api/v1/downtime/cnc-01/2027-03-01T04:00:00Z", headers=tech)).status_code == 404

    # Audited with before and after, under one spelling of the instant.
    async with pool.connection() as conn:
        logged = await audit.entries(conn, entity="downtime_reason")
    assert [(e.action, e.entity_id) for e in logged] == [
        ("delete", "cnc-01@2027-03-01T04:00:00+00:00"),
        ("set", "cnc-01@2027-03-01T04:00:00+00:00"),
        ("set", "cnc-01@2027-03-01T02:00:00+00:00"),
        ("set", "cnc-01@2027-03-01T02:00:00+00:00"),
    ]
    changed = logged[2]
    assert (changed.before["code"], changed.after["code"], changed.after["note"]) == (
        "tool_breakage",
        "machine_fault",
        "主轴报警",
    )
    assert logged[3].before is None and logged[0].after is None and logged[0].before["code"] == "other"

    # The day's Pareto inside planned time: machine_fault 2,700 s (B); unassigned A 1,800 + C 1,200 +
    # D 1,800 + E 1,800 + F 900 = 7,500 s; total 10,200 s.
    day = {"from": at(t(0)), "to": at(t(24))}
    r = await client.get("/api/v1/losses/pareto", params=day, headers=finance)
    assert r.status_code == 200, r.text
    pareto = r.json()
    assert (when(pareto["from"]), when(pareto["to"]), pareto["planned_only"], pareto["down_s"]) == (
        t(0),
        t(24),
        True,
        10_200,
    )
    assert [(p["code"], p["seconds"], p["intervals"], round(p["cumulative_share"], 4)) for p in pareto["reasons"]] == [
        ("unassigned", 7_500, 5, 0.7353),
        ("machine_fault", 2_700, 1, 1.0),
    ]
    assert pareto["reasons"][0]["name_zh"] == "未指定"
    r = await client.get("/api/v1/losses/pareto", params={**day, "class": "cnc", "scope": "all"}, headers=tech)
    assert r.json()["down_s"] == 26_400 and r.json()["planned_only"] is False
    # E (19:30 to midnight) explained: counted whole, 10,200 - 1,800 + 16,200 = 24,600
    await client.put(f"/api/v1/downtime/cnc-01/{at(E)}", json={"code": "material_shortage"}, headers=tech)
    r = await client.get("/api/v1/losses/pareto", params={**day, "scope": "explained"}, headers=tech)
    assert (r.json()["down_s"], r.json()["planned_only"], r.json()["explained_outside"]) == (24_600, True, True)
    await client.delete(f"/api/v1/downtime/cnc-01/{at(E)}", headers=tech)
    r = await client.get("/api/v1/losses/pareto", params={**day, "device": "cnc-02"}, headers=tech)
    assert [(p["code"], p["seconds"]) for p in r.json()["reasons"]] == [("unassigned", 900)]

    # A customer may read the codes, nothing else here; finance reads but does not explain.
    codes = (await client.get("/api/v1/downtime/codes", headers=customer)).json()
    assert len(codes) == 7 and codes[-1] == {"code": "other", "name": "Other", "name_zh": "其他"}
    assert (await client.get("/api/v1/downtime", params=window, headers=customer)).status_code == 403
    assert (await client.get("/api/v1/losses/pareto", params=day, headers=customer)).status_code == 403
    for who in (customer, finance):
        r = await client.put(f"/api/v1/downtime/cnc-01/{at(D)}", json={"code": "other"}, headers=who)
        assert r.status_code == 403
        assert (await client.delete(f"/api/v1/downtime/cnc-01/{at(B)}", headers=who)).status_code == 403


async def test_the_listing_defaults_and_pages(center):
    client, pool = center
    tech = await as_role(pool, client, Role.technician)
    # Default window: the 7 days before now. E is still down: no end, counted to now.
    r = await client.get("/api/v1/downtime", headers=tech)
    assert r.status_code == 200 and len(r.json()["items"]) == r.json()["total"] == 6
    newest = r.json()["items"][0]
    assert (when(newest["start"]), newest["end"], newest["duration_s"]) == (E, None, 16_200)
    # Newest first, two at a time, each interval once.
    starts, cursor = [], None
    while True:
        params = {"limit": 2, "class": "cnc", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/downtime", params=params, headers=tech)).json()
        starts += [when(i["start"]) for i in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert starts[:2] == [E, D] and len(starts) == page["total"] and starts == sorted(starts, reverse=True)


DAY_UTC = {"from": "2027-03-01T00:00:00Z", "to": "2027-03-02T00:00:00Z"}
B_PATH = "/api/v1/downtime/cnc-01/2027-03-01T02:00:00Z"
# fmt: off
BAD = [
    ("GET", "/api/v1/downtime", {"device": "CNC 01"}, None, 422, "pattern"),
    ("GET", "/api/v1/downtime", {"device": "nope-01"}, None, 404, "no device 'nope-01'"),
    ("GET", "/api/v1/downtime", {"class": "lathe"}, None, 404, "no device class 'lathe'"),
    ("GET", "/api/v1/downtime", {"device": "cnc-01", "class": "printer"}, None, 404, "in class printer"),
    ("GET", "/api/v1/downtime", {"from": "2027-03-01T00:00:00"}, None, 422, "timezone"),
    ("GET", "/api/v1/downtime", {"from": "1900-01-01T00:00:00Z"}, None, 422, "between the years"),
    ("GET", "/api/v1/downtime", {"from": "2027-03-02T00:00:00Z", "to": "2027-03-01T00:00:00Z"}, None, 422, "after"),
    ("GET", "/api/v1/downtime", {"limit": 0}, None, 422, "greater than or equal"),
    ("GET", "/api/v1/downtime", {"limit": 501}, None, 422, "less than or equal"),
    ("GET", "/api/v1/losses/pareto", {"from": "2025-01-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"}, None, 422,
     "at most 400 days"),
    ("GET", "/api/v1/losses/pareto", {"to": "2027-01-01T00:00:00Z"}, None, 422, "query.from: Field required"),
    ("GET", "/api/v1/losses/pareto", {**DAY_UTC, "scope": "some"}, None, 422, "'planned', 'explained' or 'all'"),
    ("GET", "/api/v1/losses/pareto", {**DAY_UTC, "device": "robot-99"}, None, 404, "no device 'robot-99'"),
    ("PUT", B_PATH, {}, {"code": "coffee"}, 422, "unknown reason code 'coffee'"),
    ("PUT", B_PATH, {}, {"code": "Other!"}, 422, "pattern"),
    ("PUT", B_PATH, {}, {}, 422, "body.code: Field required"),
    ("PUT", B_PATH, {}, {"code": "other", "note": "a\x00b"}, 422, "NUL"),
    ("PUT", B_PATH, {}, {"code": "other", "note": "x" * 501}, 422, "at most 500"),
    ("PUT", B_PATH, {}, {"code": "other", "extra": 1}, 422, "not permitted"),
    ("PUT", "/api/v1/downtime/cnc-01/2027-03-01T02:05:00Z", {}, {"code": "other"}, 404,
     "no down interval of cnc-01 starts at 2027-03-01T02:05:00+00:00"),
    ("PUT", "/api/v1/downtime/cnc-01/2027-03-01T02:10:00Z", {}, {"code": "other"}, 404, "no down interval"),  # repeat
    ("PUT", "/api/v1/downtime/nope-01/2027-03-01T02:00:00Z", {}, {"code": "other"}, 404, "no device"),
    ("PUT", "/api/v1/downtime/cnc-01/yesterday", {}, {"code": "other"}, 422, "datetime"),
    ("PUT", "/api/v1/downtime/cnc-01/2027-03-01T02:00:00", {}, {"code": "other"}, 422, "timezone"),
    ("PUT", "/api/v1/downtime/cnc-01/9999-12-31T23:59:59Z", {}, {"code": "other"}, 422, "between the years"),
    ("DELETE", B_PATH, {}, None, 404, "no reason is set"),
    ("DELETE", "/api/v1/downtime/cnc-01/0001-01-01T00:00:00Z", {}, None, 422, "between the years"),
]
# fmt: on


async def test_bad_input_gets_a_readable_4xx(center):
    client, pool = center
    tech = await as_role(pool, client, Role.technician)
    wrong = []
    for method, path, params, body, status, reason in BAD:
        r = await client.request(method, path, params=params, json=body, headers=tech)
        if r.status_code != status or reason not in r.text:
            wrong.append(f"{method} {path} {params} {body}: {r.status_code} {r.text[:200]}")
    assert not wrong, "\n".join(wrong)
