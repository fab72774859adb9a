"""Read queries, rollups and retention, on TimescaleDB and on the embedded plain PostgreSQL, checked
against values worked out by hand."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from telemetry import BatchWriter, Quality, Sample, sight
from telemetry.maintenance import apply_retention, roll_up
from telemetry.reader import TelemetryReader
from telemetry.sight import Sight
from tests.samples import T0, at, fixed_clock, series

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = T0 + timedelta(hours=1)


async def write(pool, samples, now=NOW):
    result = await BatchWriter(pool, clock=fixed_clock(now)).write_batch(samples)
    assert result.quarantined == 0
    return result


def reader(pool, now=NOW):
    return TelemetryReader(pool, SHANGHAI, fixed_clock(now))


async def job(pool, fn, *args, **kw):
    async with pool.connection() as conn, conn.transaction():
        return await fn(conn, *args, **kw)


# Ten minutes of spindle speed every 10 s, values 0..59, and one bad-quality outlier.
SPINDLE = series("cnc-01", "spindle_speed", [float(i) for i in range(60)], step=10)
OUTLIER = Sample(at(5), "cnc-01", "spindle_speed", 99999.0, Quality.BAD)


async def test_latest_values_states_and_text(any_pool):
    await write(
        any_pool,
        [
            *SPINDLE,
            Sample(at(0), "cnc-01", "program", "O1000"),
            Sample(at(300), "cnc-01", "program", "O2000"),
            Sample(at(0), "cnc-01", "state", "setup"),
            Sample(at(120), "cnc-01", "state", "running"),
            Sample(at(50), "robot-01", "state", "idle"),
            Sample(at(7), "robot-01", "joint_temperature.base", 31.5, Quality.UNCERTAIN),
        ],
    )
    latest = await reader(any_pool).latest()
    assert [(r["device_id"], r["signal"], r["time"], r["value"], r["quality"]) for r in latest["numeric"]] == [
        ("cnc-01", "spindle_speed", at(590), 59.0, 0),
        ("robot-01", "joint_temperature.base", at(7), 31.5, 1),
    ]
    assert [(r["signal"], r["value"]) for r in latest["text"]] == [("program", "O2000")]
    assert [(r["device_id"], r["state"], r["time"]) for r in latest["states"]] == [
        ("cnc-01", "running", at(120)),
        ("robot-01", "idle", at(50)),
    ]
    only_robot = await reader(any_pool).latest("robot-01")
    assert [r["device_id"] for r in only_robot["numeric"] + only_robot["states"]] == ["robot-01", "robot-01"]
    assert only_robot["text"] == []


async def test_raw_range_is_half_open_and_limited(any_pool):
    await write(any_pool, [*SPINDLE, OUTLIER])
    r = reader(any_pool)
    points = await r.raw_range("cnc-01", "spindle_speed", at(10), at(30), 100)
    assert [(p["time"], p["value"]) for p in points] == [(at(10), 1.0), (at(20), 2.0)]
    with_bad = await r.raw_range("cnc-01", "spindle_speed", at(0), at(10), 100)
    assert [(p["value"], p["quality"]) for p in with_bad] == [(0.0, 0), (99999.0, 2)]
    assert len(await r.raw_range("cnc-01", "spindle_speed", at(0), at(600), 7)) == 7
    assert await r.raw_range("cnc-01", "spindle_speed", at(600), at(700), 100) == []


def expected_buckets(samples, start, end, width, origin):
    """The same aggregation in plain Python, the reference for the SQL."""
    groups = {}
    for s in sorted(samples, key=lambda s: s.time):
        if s.quality == 0 and start <= s.time < end:
            b = origin + ((s.time - origin) // width) * width
            groups.setdefault(b, []).append(s.value)
    return [
        {"bucket": b, "count": len(v), "min": min(v), "max": max(v), "avg": sum(v) / len(v), "last": v[-1]}
        for b, v in sorted(groups.items())
    ]


def rounded(buckets):
    return [dict(b, avg=round(b["avg"], 9)) for b in buckets]


async def test_buckets_by_hand_then_from_rollups(any_pool):
    await write(any_pool, [*SPINDLE, OUTLIER])
    r = reader(any_pool)
    five = timedelta(minutes=5)
    raw = await r.bucketed_range("cnc-01", "spindle_speed", at(0), at(600), five)
    # worked by hand: minutes 0-4 hold values 0..29, minutes 5-9 hold 30..59; the outlier is bad quality
    assert raw == [
        {"bucket": at(0), "count": 30, "min": 0.0, "max": 29.0, "avg": 14.5, "last": 29.0},
        {"bucket": at(300), "count": 30, "min": 30.0, "max": 59.0, "avg": 44.5, "last": 59.0},
    ]
    result = await job(any_pool, roll_up, NOW)
    assert result.watermark == T0 + timedelta(minutes=59)
    assert await r.bucketed_range("cnc-01", "spindle_speed", at(0), at(600), five) == raw
    # a window cutting through minutes: whole minutes from rollups, the edges from raw samples
    for start, end, width in [
        (at(25), at(575), five),
        (at(25), at(575), timedelta(minutes=1)),
        (at(-3600), at(3600), timedelta(hours=1)),
        (at(25), at(575), timedelta(seconds=30)),
    ]:
        got = await r.bucketed_range("cnc-01", "spindle_speed", start, end, width)
        assert rounded(got) == rounded(expected_buckets([*SPINDLE, OUTLIER], start, end, width, r.origin))


async def test_day_buckets_start_at_local_midnight(any_pool):
    # 15:59 and 16:01 UTC are 23:59 and 00:01 in Jingjiang: two different days
    late_evening = Sample(T0.replace(hour=15, minute=59), "cnc-01", "energy_kwh", 1.0)
    after_midnight = Sample(T0.replace(hour=16, minute=1), "cnc-01", "energy_kwh", 2.0)
    await write(any_pool, [late_evening, after_midnight], now=T0 + timedelta(hours=9))
    days = await reader(any_pool).bucketed_range(
        "cnc-01", "energy_kwh", T0 - timedelta(days=1), T0 + timedelta(days=1), timedelta(days=1)
    )
    assert [(d["bucket"].astimezone(SHANGHAI).isoformat(), d["last"]) for d in days] == [
        ("2026-03-02T00:00:00+08:00", 1.0),
        ("2026-03-03T00:00:00+08:00", 2.0),
    ]


STATES = [
    Sample(at(0), "cnc-01", "state", "idle"),
    Sample(at(100), "cnc-01", "state", "running"),
    Sample(at(200), "cnc-01", "state", "running"),  # repeated report, same interval
    Sample(at(300), "cnc-01", "state", "down"),
    Sample(at(400), "cnc-01", "state", "idle"),
]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (150, 350, [("running", 150, 300), ("down", 300, 350)]),
        (-100, 50, [("idle", 0, 50)]),
        (-200, -100, []),
        (0, 400, [("idle", 0, 100), ("running", 100, 300), ("down", 300, 400)]),
        (450, 2000, [("idle", 450, 1000)]),  # clipped to now
        (1500, 1600, []),  # entirely in the future
        (310, 320, [("down", 310, 320)]),  # inside one interval
    ],
)
async def test_state_timeline_clips_and_merges(any_pool, start, end, expected):
    await write(any_pool, STATES)
    spans = await reader(any_pool, now=at(1000)).timeline("cnc-01", at(start), at(end))
    assert [(s["state"], s["start"], s["end"]) for s in spans] == [(st, at(a), at(b)) for st, a, b in expected]


async def test_timeline_of_a_device_without_states_is_empty(any_pool):
    await write(any_pool, STATES)
    assert await reader(any_pool).timeline("cnc-02", at(0), at(500)) == []


async def rollup_rows(pool):
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT bucket, n, sum, min, max, last FROM telemetry_rollup_1m ORDER BY device_id, signal, bucket"
        )
        return await cur.fetchall()


async def test_rollups_are_incremental_idempotent_and_take_late_data(any_pool):
    await write(any_pool, [*SPINDLE, OUTLIER])
    first = await job(any_pool, roll_up, NOW)
    assert first.start == T0  # first run starts at the oldest sample
    rows = await rollup_rows(any_pool)
    assert rows[0] == (at(0), 6, 15.0, 0.0, 5.0, 5.0)
    assert len(rows) == 10
    again = await job(any_pool, roll_up, NOW)
    assert await rollup_rows(any_pool) == rows
    assert again.late_ranges == 0
    # a late sample (replayed from a spool an hour later) lands in minute 0 and is rolled up next run
    await write(any_pool, [Sample(at(15), "cnc-01", "spindle_speed", 1000.0)], now=NOW + timedelta(minutes=30))
    late = await job(any_pool, roll_up, NOW + timedelta(minutes=31))
    assert late.late_ranges == 1
    assert (await rollup_rows(any_pool))[0] == (at(0), 7, 1015.0, 0.0, 1000.0, 5.0)


async def test_rollups_catch_up_a_backlog_in_steps(any_pool):
    await write(any_pool, series("robot-01", "power_kw", [1.0] * 48, step=1800), now=T0 + timedelta(days=1))
    now = T0 + timedelta(days=1)
    runs = 0
    while True:
        result = await job(any_pool, roll_up, now, max_span=timedelta(hours=6))
        runs += 1
        if result.end is None or result.watermark >= now - timedelta(minutes=1):
            break
    assert runs == 5
    assert len(await rollup_rows(any_pool)) == 48


async def test_retention_drops_old_raw_data_and_rollups_still_answer(any_pool, backend):
    now = T0 + timedelta(days=45)
    old = series("cnc-01", "power_kw", [2.0] * 24, start=0, step=3600)  # a day, 45 days ago
    recent = series("cnc-01", "power_kw", [4.0] * 24, start=44 * 86400, step=3600)  # yesterday
    await write(any_pool, old + recent, now=now)
    r = reader(any_pool, now=now)
    # nothing is rolled up yet: retention must not drop anything
    nothing = await job(any_pool, apply_retention, now, raw_age=timedelta(days=30))
    assert nothing.cutoff is None
    while (await job(any_pool, roll_up, now, max_span=timedelta(days=60))).watermark < now - timedelta(minutes=1):
        pass
    result = await job(any_pool, apply_retention, now, raw_age=timedelta(days=30))
    assert result.cutoff == now - timedelta(days=30)
    if backend.timescaledb:
        assert result.dropped_chunks == 24
    else:
        assert result.deleted_rows == 24
    left = await r.raw_range("cnc-01", "power_kw", T0 - timedelta(days=1), now, 1000)
    assert [p["value"] for p in left] == [4.0] * 24
    days = await r.bucketed_range("cnc-01", "power_kw", T0 - timedelta(days=1), now, timedelta(days=1))
    assert sum(d["count"] for d in days) == 48
    assert {d["avg"] for d in days} == {2.0, 4.0}


async def test_retention_waits_for_late_data_to_be_rolled_up(any_pool):
    now = T0 + timedelta(days=45)
    await write(any_pool, series("cnc-01", "power_kw", [1.0] * 3, step=3600), now=now)
    async with any_pool.connection() as conn:
        await conn.execute("INSERT INTO telemetry_rollup_state (watermark) VALUES (%s)", (now - timedelta(minutes=1),))
        await conn.commit()
    result = await job(any_pool, apply_retention, now, raw_age=timedelta(days=30))
    assert result.cutoff == T0  # the writer marked these samples late; they are not rolled up yet
    assert len(await reader(any_pool, now).raw_range("cnc-01", "power_kw", T0, now, 10)) == 3


async def test_a_customers_pieces_of_one_bucket_are_aggregated_together(any_pool):
    """telemetry.sight: two bookings inside one 5-minute bucket (values 3..8 and 21..26 of SPINDLE, in
    [30 s, 90 s) and [210 s, 270 s)) make one bucket of their samples only; raw samples and the timeline keep
    to the same pieces, and the raw limit counts across them."""
    await write(
        any_pool, [*SPINDLE, Sample(at(0), "cnc-01", "state", "idle"), Sample(at(60), "cnc-01", "state", "running")]
    )
    r = reader(any_pool)

    async def holdings(devices, start, end):
        return {"cnc-01": [(at(210), at(270)), (at(30), at(90))]} if "cnc-01" in devices else {}

    customer = Sight(holdings)
    five = timedelta(minutes=5)
    [bucket] = await sight.bucketed_range(r, customer, "cnc-01", "spindle_speed", at(0), at(600), five)
    values = [*range(3, 9), *range(21, 27)]
    assert bucket == {"bucket": at(0), "count": 12, "min": 3.0, "max": 26.0, "avg": sum(values) / 12, "last": 26.0}
    raw = await sight.raw_range(r, customer, "cnc-01", "spindle_speed", at(0), at(600), 8)
    assert [p["value"] for p in raw] == [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 21.0, 22.0]
    spans = await sight.timeline(r, customer, "cnc-01", at(0), at(600))
    assert [(s["state"], s["start"], s["end"]) for s in spans] == [
        ("idle", at(30), at(60)),
        ("running", at(60), at(90)),
        ("running", at(210), at(270)),
    ]
    assert await sight.raw_range(r, customer, "cnc-02", "spindle_speed", at(0), at(600), 8) == []
    assert sight.merged([(at(0), at(10)), (at(10), at(20)), (at(30), at(40))], at(5), at(35)) == [
        (at(5), at(20)),
        (at(30), at(35)),
    ]
