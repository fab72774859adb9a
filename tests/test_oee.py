"""OEE against worked examples computed by hand (to 0.1 percentage point): a shift with known states,
ideal cycle time and counts; a booking cut by the window; offline time inside a booking."""

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from accounts.model import Role
from booking.catalogue import sync
from fabhub.catalogue import catalogue_from, oee_facts
from fabhub.devices import load_devices
from gateway.config import SignalCommon
from gateway.normalize import DeviceNormalizer, Reading
from oee import metrics
from oee.service import OeeService, group
from telemetry import BatchWriter, Sample
from tests.accounts_rig import as_role as login_as
from tests.accounts_rig import make_org, make_user
from tests.http import serve

REPO = Path(__file__).resolve().parent.parent
ZONE = ZoneInfo("Asia/Shanghai")
DAY = datetime(2027, 3, 1, tzinfo=ZONE)  # a Monday: open 08:00-20:00
NOW = DAY + timedelta(days=1)


def t(hour: float) -> datetime:
    return DAY + timedelta(hours=hour)


# The shift on cnc-01 (ideal cycle 4 min), in local time:
SHIFT = [
    (8.0, "idle"),
    (8.5, "setup"),
    (9.0, "running"),
    (12.0, "down"),
    (12.75, "running"),
    (17.0, "idle"),  # one minute: a micro-stop
    (17.0 + 1 / 60, "running"),
    (19.0, "offline"),
    (19.5, "idle"),
]


@pytest.fixture
async def shift(any_pool):
    devices = load_devices(REPO / "devices.yaml")
    async with any_pool.connection() as conn, conn.transaction():
        await sync(conn, catalogue_from(devices), NOW)
    samples = [Sample(t(h), "cnc-01", "state", state) for h, state in SHIFT]
    samples += [Sample(t(9 + i * 0.1), "cnc-01", "parts_total.delta", 1.0) for i in range(100)]  # 9:00-18:54
    samples += [Sample(t(9 + i * 0.1 + 0.01), "cnc-01", "parts_good.delta", 1.0) for i in range(95)]
    samples += [Sample(t(19.6), "cnc-01", "parts_total.delta", 20.0)]  # 19:36: inside opening hours
    samples += [Sample(t(20.5), "cnc-01", "parts_total.delta", 7.0)]  # after closing: not planned time
    samples += [Sample(t(19.7), "cnc-01", "parts_good.delta", 19.0)]
    await BatchWriter(any_pool, clock=lambda: NOW).write_batch(samples)
    return OeeService(*oee_facts(devices), ZONE, lambda: NOW)


def close(value, expected):
    assert value == pytest.approx(expected, abs=0.001), (value, expected)


async def test_a_shift_worked_by_hand(shift, any_pool):
    async with any_pool.connection() as conn:
        daily = await shift.daily(conn, ["cnc-01"], t(0), t(24))
    [row] = daily.to_dict("records")
    # Planned: 08:00-20:00 = 43,200 s. Running 3 h + 4 h 15 min + 1 h 59 min = 33,240 s; offline 30 min.
    assert row["planned_s"] == 43_200 and row["running_s"] == 33_240 and row["offline_s"] == 1_800
    assert (row["setup_s"], row["down_s"], row["idle_s"], row["micro_stop_s"]) == (1_800, 2_700, 3_660, 60)
    # 120 parts inside the planned time (the 7 after closing do not count), 114 good.
    assert (row["parts_total"], row["parts_good"]) == (120, 114)
    close(row["availability"], 33_240 / 41_400)  # 80.29 %: offline is left out of the base
    close(row["performance"], 120 * 240 / 33_240)  # 86.64 %
    close(row["quality"], 114 / 120)  # 95.00 %
    close(row["oee"], 0.8029 * 0.8664 * 0.95)  # 66.09 %
    assert row["loss_reduced_speed_s"] == 33_240 - 28_800 and row["loss_scrap_s"] == 6 * 240
    assert row["actual_utilisation"] == pytest.approx(33_240 / 43_200)


async def test_a_booking_cut_by_the_window_and_offline_inside_a_booking(shift, any_pool):
    org = await make_org(any_pool)
    user = await make_user(any_pool, Role.customer, org)
    async with any_pool.connection() as conn:
        for start, end in ((10, 14), (18, 20)):
            await conn.execute(
                "INSERT INTO booking (device_id, organization_id, user_id, created_by, during, hourly_rate, gross,"
                " net, created_at, status) VALUES ('cnc-01', %s, %s, %s, tstzrange(%s, %s), 180, 0, 0, %s, 'completed')",
                (org, user, user, t(start), t(end), NOW),
            )
        # The window starts at noon: the morning booking counts from 12:00 to 14:00 only.
        daily = await shift.daily(conn, ["cnc-01"], t(12), t(24), organization_id=org)
    [row] = daily.to_dict("records")
    # Planned = 12:00-14:00 and 18:00-20:00 = 14,400 s. Running 12:45-14:00 and 18:00-19:00 = 8,100 s.
    # Offline 19:00-19:30 is left out of the base: 14,400 - 1,800 = 12,600 s.
    assert row["planned_s"] == 14_400 and row["booked_s"] == 14_400
    assert row["running_s"] == 8_100 and row["down_s"] == 2_700 and row["offline_s"] == 1_800
    close(row["availability"], 8_100 / 12_600)  # 64.29 %
    # Parts inside the bookings: 12:00-14:00 has 20 (12:00 ... 13:54), 18:00-19:00 has 10, 19:36 has 20.
    assert row["parts_total"] == 50


async def test_weeks_are_recomputed_from_sums_not_averaged(shift, any_pool):
    async with any_pool.connection() as conn:
        daily = await shift.daily(conn, ["cnc-01", "cnc-02"], t(0), t(48))
    weekly = group(daily, "week")
    cnc1 = weekly[weekly["device_id"] == "cnc-01"].iloc[0]
    # Tuesday is planned too (12 h) but nothing was reported: no state row after 19:30 idle, so idle all day.
    assert cnc1["planned_s"] == 86_400
    close(cnc1["availability"], 33_240 / (86_400 - 1_800))
    cnc2 = weekly[weekly["device_id"] == "cnc-02"].iloc[0]
    assert cnc2["running_s"] == 0 and cnc2["planned_s"] == 86_400


async def test_oee_over_http_as_staff_and_as_customer(shift, any_db_url, any_pool):
    org = await make_org(any_pool)
    other_org = await make_org(any_pool)
    async with serve(any_db_url, clock=lambda: NOW) as client:
        customer = await login_as(any_pool, client, Role.customer, org)
        tech = await login_as(any_pool, client, Role.technician)
        window = {"from": t(0).isoformat(), "to": t(24).isoformat(), "device": "cnc-01"}
        r = await client.get("/api/v1/oee", params={**window, "group": "total"}, headers=tech)
        assert r.status_code == 200, r.text
        [row] = r.json()
        assert row["period"] is None and row["running_s"] == 33_240
        assert round(row["oee"] * 100, 1) == 66.1 and row["performance_suspect"] is False
        # The customer has no booking that day: its own view is empty, and another's is not its to see.
        assert (await client.get("/api/v1/oee", params=window, headers=customer)).json() == []
        r = await client.get("/api/v1/oee", params={**window, "organization_id": other_org}, headers=customer)
        assert r.status_code == 404
        r = await client.get("/api/v1/utilisation", params={**window, "group": "day"}, headers=tech)
        [day] = r.json()
        assert day["period"] == "2027-03-01" and day["utilisation"] == 0 and day["booked_s"] == 0
        assert (await client.get("/api/v1/oee", params={**window, "group": "year"}, headers=tech)).status_code == 422
        r = await client.get("/api/v1/oee", params={**window, "device": "nope-01"}, headers=tech)
        assert r.status_code == 404


async def test_the_nightly_summary_matches_the_live_computation_and_answers_for_past_days(shift, any_pool):
    devices = ["cnc-01", "cnc-02", "printer-01"]
    async with any_pool.connection() as conn, conn.transaction():
        days = await shift.summarize(conn, devices, NOW + timedelta(hours=1))
    assert DAY.date() in days
    async with any_pool.connection() as conn:
        live = metrics.figures(await shift.live(conn, devices, t(0), t(24)))
        cur = await conn.execute("SELECT count(*) FROM oee_daily WHERE day = %s", (DAY.date(),))
        assert (await cur.fetchone())[0] == 3  # every device has its row, zeros included
        answered = await shift.daily(conn, devices, t(0), t(24))
    columns = ["planned_s", "running_s", "offline_s", "micro_stop_s", "parts_total", "availability", "oee"]
    mine = answered[answered["device_id"] == "cnc-01"][columns].reset_index(drop=True)
    theirs = live[live["device_id"] == "cnc-01"][columns].reset_index(drop=True)
    assert mine.equals(theirs), (mine, theirs)
    assert answered[answered["device_id"] == "printer-01"]["parts_good"].isna().all()  # printers count no good parts
    # Past whole days are read from the summary (a changed summary row shows), partial days live.
    async with any_pool.connection() as conn:
        await conn.execute("UPDATE oee_daily SET running_s = 1 WHERE device_id = 'cnc-01' AND day = %s", (DAY.date(),))
        assert (await shift.daily(conn, ["cnc-01"], t(0), t(24)))["running_s"].tolist() == [1]
        assert (await shift.daily(conn, ["cnc-01"], t(6), t(24)))["running_s"].tolist() == [33_240]
    # A device-day the summary lacks is computed live, the others still come from the summary.
    async with any_pool.connection() as conn:
        await conn.execute("DELETE FROM oee_daily WHERE device_id = 'cnc-02' AND day = %s", (DAY.date(),))
        mixed = await shift.daily(conn, ["cnc-01", "cnc-02"], t(0), t(24))
    assert mixed.set_index("device_id")["running_s"].to_dict() == {"cnc-01": 1, "cnc-02": 0}
    assert mixed.set_index("device_id")["planned_s"].to_dict() == {"cnc-01": 43_200, "cnc-02": 43_200}
    # A second run recomputes the last days (late data may have arrived) and changes nothing else.
    async with any_pool.connection() as conn, conn.transaction():
        again = await shift.summarize(conn, devices, NOW + timedelta(hours=1))
    assert DAY.date() in again
    async with any_pool.connection() as conn:
        assert (await shift.daily(conn, ["cnc-01"], t(0), t(24)))["running_s"].tolist() == [33_240]


async def test_a_counter_reset_in_the_middle_of_a_job(any_pool):
    """The robot's controller is restarted mid-job and its part counter starts again from 0: the writer
    counts the parts made since, and OEE counts every part once."""
    devices = load_devices(REPO / "devices.yaml")
    async with any_pool.connection() as conn, conn.transaction():
        await sync(conn, catalogue_from(devices), NOW)
    robot = devices.device("robot-01")
    normalizer = DeviceNormalizer("robot-01", {"parts_total": SignalCommon(counter=True)}, [], timedelta(minutes=1))
    samples = [Sample(t(9), "robot-01", "state", "running"), Sample(t(10), "robot-01", "state", "idle")]
    for minutes, raw in [(5, 100), (15, 110), (25, 120), (35, 3), (45, 13), (55, 23)]:  # reset after 120
        samples += normalizer.process([Reading("parts_total", raw, t(9 + minutes / 60))]).items
    await BatchWriter(any_pool, clock=lambda: NOW).write_batch(samples)
    service = OeeService(*oee_facts(devices), ZONE, lambda: NOW)
    async with any_pool.connection() as conn:
        [row] = (await service.daily(conn, ["robot-01"], t(9), t(10))).to_dict("records")
    # 100 is the baseline; 10 + 10, then 3 made since the reset, then 10 + 10: 43 parts, none negative.
    assert row["parts_total"] == 43 and row["running_s"] == 3600
    close(row["performance"], robot.ideal_cycle_time.total_seconds() * 43 / 3600)


async def test_oee_of_one_booking(shift, any_db_url, any_pool):
    org = await make_org(any_pool)
    user = await make_user(any_pool, Role.customer, org)
    async with any_pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO booking (device_id, organization_id, user_id, created_by, during, hourly_rate, gross, net,"
            " created_at, status) VALUES ('cnc-01', %s, %s, %s, tstzrange(%s, %s), 180, 0, 0, %s, 'completed')"
            " RETURNING id",
            (org, user, user, t(18), t(20), NOW),
        )
        booking_id = (await cur.fetchone())[0]
    async with serve(any_db_url, clock=lambda: NOW) as client:
        owner = await login_as(any_pool, client, Role.customer, org)
        stranger = await login_as(any_pool, client, Role.customer)
        r = await client.get(f"/api/v1/oee/bookings/{booking_id}", headers=owner)
        assert r.status_code == 200, r.text
        [row] = r.json()
        # 18:00-20:00: running until 19:00, offline 19:00-19:30 (left out of the base), idle after.
        assert row["booking_id"] == booking_id and row["running_s"] == 3600 and row["offline_s"] == 1800
        close(row["availability"], 3600 / 5400)
        assert (await client.get(f"/api/v1/oee/bookings/{booking_id}", headers=stranger)).status_code == 404
        assert (await client.get("/api/v1/oee/bookings/999999", headers=owner)).status_code == 404
