"""OEE benchmark: `OeeService.daily` per device per local day against one hand-written SQL aggregate over the
same rows, same run, ratio printed.

Starts its own TimescaleDB cluster (run `make system` once; autovacuum off, the bench vacuums itself),
migrates, opens the center 24/7 (so the whole window is planned time and the bare query need not cut by
opening hours), syncs a catalogue of devices.yaml's classes with D generated devices (default 50, cloned in
turn from devices.yaml's seven) and generates the data server-side with `INSERT ... SELECT ... generate_series`:

- States on a 1 Hz grid (every change falls on a whole second) over 30 local days (plus the hour before, so
  the first day starts in a known state). Each device walks through random state spans (running 30 s-20 min,
  idle 2 s-5 min so many are micro-stops, setup, down, offline, maintenance; about 8.5 min on average) and
  the table gets what the gateway stores: a row at each change and a heartbeat 60 s after the last row while
  the state holds. 129.6 M rows, one a second for 50 devices x 30 days, would take too long to load here.
- Parts: a `parts_total.delta` of 1 at every ideal cycle (60-360 s per device) while running, and a
  `parts_good.delta` for about 97 % of them on the devices that count good parts (CNC and robots).

Timed on one connection with `SET jit = off` (`--jit` keeps the server's default, on: the bare statement
then spends most of its time compiling, one function set per hourly chunk), a median of R runs (default 3)
after one warm-up, the paths alternating:

- ours: `daily(conn, ids, start, end)` with no summary rows: the live path (three queries and pandas);
  then its queries one by one, with the parameters the service passes them, to show where the time goes.
- bare: one statement: per device and local day the seconds per state (repeats dropped with lag(), each
  span ended by lead(), spans cut at local midnight) and the sums of the part deltas, fetched into Python.
- history: `daily` again once `summarize` has stored the days (the path a past month takes).
- reports: one organization's month of B completed bookings (default 200, spread over the devices and days,
  up to 2 h each) frozen as the booking-lifecycle job freezes them (usage, per-day results and the report's
  snapshot of timeline, cycles, programs, alarms and down time), then the machine report of every one built
  from the frozen rows (`oee.report.reports`, the customer's view, in one call) against the bare SQL reading
  the same frozen rows into Python; and the 200 reports one request at a time (`booking_report` per booking).

The service's and the bare numbers must agree (every state's seconds per device-day within 1 s, parts
exactly), and the history must equal the live answer, micro-stops aside: the summary cuts an idle span at
midnight before judging it short, so those differ; the bench counts by how much. A second, smaller data set
stores a true row every second (no change detection) for H devices over N days, timed the same way.

    .venv/bin/python bench/oee_daily.py [--devices 50] [--days 30] [--runs 3] [--hz-devices 10] [--hz-days 3] [--jit]
        [--report-bookings 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent

import pandas as pd
import psycopg
from psycopg import AsyncConnection

from accounts.model import Principal, Role
from booking.catalogue import sync
from fabhub.catalogue import catalogue_from, oee_facts
from fabhub.devices import DeviceFile, load_devices
from fabhub.devservices import PostgresCluster
from fabhub.migrations import migrate
from oee import metrics, report, results
from oee.service import OeeService
from oee.sqlfiles import QUERIES

ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2027, 3, 1, tzinfo=ZONE)  # a Monday, local midnight
GOAL_SECONDS = 1.0
GOAL_RATIO = 2.0

# -- the data ---------------------------------------------------------------------------------------------

# State spans: a weighted pick of the state, then a whole number of seconds between its bounds. A pick may
# repeat the state before it: the gateway would then have written only heartbeats, as it does here.
SPANS = """
CREATE TEMP TABLE bench_span AS
SELECT device_id, ord, state, spans.start,
       least(spans.start + dur * interval '1 second', CAST(%(stop)s AS timestamptz)) AS stop
FROM (
    SELECT device_id, ord, state,
           CAST(%(begin)s AS timestamptz) + (sum(dur) OVER w - dur) * interval '1 second' AS start, dur
    FROM (
        SELECT device_id, ord, n, state,
               lo + floor(r2 * (hi - lo + 1))::int AS dur
        FROM (
            SELECT device_id, ord, n, random() AS r1, random() AS r2
            FROM unnest(CAST(%(device_ids)s AS text[])) WITH ORDINALITY AS d (device_id, ord)
            CROSS JOIN generate_series(1, %(max_spans)s) AS n
        ) AS draws
        CROSS JOIN LATERAL (
            SELECT * FROM (VALUES
                (0.00, 0.45, 'running', 30, 1200), (0.45, 0.75, 'idle', 2, 300), (0.75, 0.85, 'setup', 60, 900),
                (0.85, 0.93, 'down', 30, 1800), (0.93, 0.97, 'offline', 5, 600), (0.97, 1.01, 'maintenance', 600, 3600)
            ) AS k (r_from, r_to, state, lo, hi)
            WHERE draws.r1 >= k.r_from AND draws.r1 < k.r_to
        ) AS kind
    ) AS drawn
    WINDOW w AS (PARTITION BY device_id ORDER BY n)
) AS spans
WHERE spans.start < %(stop)s
"""

# What the gateway stores: the change, then a heartbeat every 60 s while the state holds (every: 60), or a
# row every second (every: 1).
STATES = """
INSERT INTO telemetry_state (time, device_id, state)
SELECT start + k * interval '1 second', device_id, state
FROM bench_span
CROSS JOIN LATERAL generate_series(0, CAST(extract(epoch FROM stop - start) AS int) - 1, %(every)s) AS k
"""

# A part at every ideal cycle while running; a good one for about 97 % of them where the device counts them.
PARTS = """
INSERT INTO telemetry_sample (time, device_id, signal, value)
SELECT s.start + k * interval '1 second', s.device_id, signal, 1
FROM bench_span s
CROSS JOIN LATERAL generate_series(60 + (s.ord * 37) %% 300, CAST(extract(epoch FROM s.stop - s.start) AS int) - 1,
                                   60 + (s.ord * 37) %% 300) AS k
CROSS JOIN LATERAL (VALUES ('parts_total.delta'), ('parts_good.delta')) AS v (signal)
WHERE s.state = 'running'
  AND (signal = 'parts_total.delta' OR (s.device_id = ANY(%(counting)s) AND (k + s.ord) %% 33 <> 0))
"""

# -- the bare path ----------------------------------------------------------------------------------------

# One statement, as one would write it by hand for speed: per device, in index order, drop the rows that
# repeat the state before them (heartbeats), end each span at the next change (lead), cut the spans at the
# window's end and at now and split them at local midnight (width_bucket over the midnights); plus the sums
# of the part deltas per local day. No opening hours, maintenance or bookings: the center is open 24/7.
BARE = """
WITH bounds AS (
    SELECT array_agg(g::date ORDER BY g) AS day,
           array_agg(g::date::timestamp AT TIME ZONE %(zone)s ORDER BY g) AS midnight
    FROM generate_series((CAST(%(start)s AS timestamptz) AT TIME ZONE %(zone)s)::date,
                         ((CAST(%(end)s AS timestamptz) - interval '1 microsecond') AT TIME ZONE %(zone)s)::date + 1,
                         interval '1 day') AS g
),
spans AS (
    SELECT d.id AS device_id, s.state, greatest(s.time, %(start)s) AS a, least(s.next, %(end)s, %(now)s) AS b
    FROM unnest(CAST(%(device_ids)s AS text[])) AS d (id)
    CROSS JOIN LATERAL (
        SELECT time, state, lead(time, 1, %(end)s) OVER (ORDER BY time) AS next
        FROM (
            SELECT time, state, lag(state) OVER (ORDER BY time) AS previous
            FROM telemetry_state
            WHERE device_id = d.id AND time < %(end)s
              AND time >= coalesce((SELECT max(time) FROM telemetry_state
                                    WHERE device_id = d.id AND time <= %(start)s), %(start)s)
        ) AS rows
        WHERE previous IS DISTINCT FROM state
    ) AS s
)
SELECT device_id, (SELECT day FROM bounds)[j], state,
       extract(epoch FROM sum(least(b, (SELECT midnight FROM bounds)[j + 1])
                              - greatest(a, (SELECT midnight FROM bounds)[j])))::double precision
FROM spans
CROSS JOIN LATERAL generate_series(width_bucket(a, (SELECT midnight FROM bounds)),
                                   width_bucket(b - interval '1 microsecond', (SELECT midnight FROM bounds))) AS j
WHERE b > a
GROUP BY 1, 2, 3
UNION ALL
SELECT device_id, (time AT TIME ZONE %(zone)s)::date, signal, sum(value)
FROM telemetry_sample
WHERE device_id = ANY(%(device_ids)s) AND signal IN ('parts_total.delta', 'parts_good.delta')
  AND time >= %(start)s AND time < least(CAST(%(end)s AS timestamptz), %(now)s) AND quality = 0
GROUP BY 1, 2, 3
"""


# The frozen rows the reports read, as one would fetch them by hand: per booking the slot, device and class,
# the usage record, the per-day results summed, and the snapshot's JSON.
BARE_REPORTS = """
SELECT b.id, lower(b.during), upper(b.during), b.device_id, d.name, c.billing_basis, b.hourly_rate, u.booked_s,
       u.running_s, u.overrun_s, u.energy_kwh, r.planned_s, r.running_s, r.setup_s, r.down_s, r.micro_stop_s,
       r.offline_s, r.parts_total, r.parts_good, r.ideal_cycle_s, s.timeline, s.cycles, s.programs, s.alarms,
       s.downtime
FROM booking b
JOIN device d ON d.id = b.device_id
JOIN device_class c ON c.id = d.class_id
JOIN usage_record u ON u.booking_id = b.id
JOIN booking_report s ON s.booking_id = b.id
JOIN (SELECT booking_id, sum(planned_s) AS planned_s, sum(running_s) AS running_s, sum(setup_s) AS setup_s,
             sum(down_s) AS down_s, sum(micro_stop_s) AS micro_stop_s, sum(offline_s) AS offline_s,
             sum(parts_total) AS parts_total, sum(parts_good) AS parts_good, min(ideal_cycle_s) AS ideal_cycle_s
      FROM booking_result WHERE booking_id = ANY(%(ids)s) GROUP BY booking_id) r ON r.booking_id = b.id
WHERE b.id = ANY(%(ids)s)
ORDER BY b.id
"""

# -- set-up -----------------------------------------------------------------------------------------------


def bench_devices(count: int) -> DeviceFile:
    """devices.yaml's center, classes and programs, with `count` devices cloned in turn from its machines."""
    base = load_devices(REPO / "devices.yaml")
    templates = base.machines  # the power meters are not booked
    devices = []
    for i in range(count):
        template = templates[i % len(templates)]
        devices.append(
            template.model_copy(update={"id": f"{template.class_id}-{101 + i}", "name": f"{template.name} #{101 + i}"})
        )
    return base.model_copy(update={"devices": devices})


async def prepare(url: str, devices: DeviceFile, days: int, every: int, now: datetime) -> dict[str, int]:
    """Migrated database, center open 24/7, the catalogue synced, states and parts generated, vacuumed."""
    await migrate(url, timescaledb="require")
    ids = [d.id for d in devices.devices]
    _, counting, _ = oee_facts(devices)
    end = START + timedelta(days=days)
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("DELETE FROM opening_hours")
        await conn.execute("INSERT INTO opening_hours SELECT d, '00:00', '24:00' FROM generate_series(1, 7) d")
        async with conn.transaction():
            await sync(conn, catalogue_from(devices), now)
        await conn.execute("SELECT setseed(0.42)")
        await conn.execute(
            SPANS,
            {
                "device_ids": ids,
                "begin": START - timedelta(hours=1),
                "stop": end,
                "max_spans": days * 86400 // 300 + 100,  # spans last about 510 s on average: room to spare
            },
        )
        cur = await conn.execute(
            "SELECT count(*) FILTER (WHERE m = %s) FROM (SELECT max(stop) AS m FROM bench_span GROUP BY device_id) x",
            (end,),
        )
        assert (await cur.fetchone()) == (len(ids),), "too few spans drawn to cover the window"
        states = (await conn.execute(STATES, {"every": every})).rowcount
        parts = (await conn.execute(PARTS, {"counting": sorted(counting)})).rowcount
        cur = await conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE state IS DISTINCT FROM previous) FROM "
            "(SELECT state, lag(state) OVER (PARTITION BY device_id ORDER BY start) AS previous FROM bench_span) s"
        )
        spans, changes = await cur.fetchone()
        await conn.execute("DROP TABLE bench_span")
        # History is all-visible once vacuumed: index-only scans, as on a server that has run for a while.
        await conn.execute("VACUUM ANALYZE telemetry_state")
        await conn.execute("VACUUM ANALYZE telemetry_sample")
    return {"states": states, "parts": parts, "spans": spans, "changes": changes}


# -- measuring --------------------------------------------------------------------------------------------


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await fn()
    return time.perf_counter() - started, result


async def race(
    runs: int, paths: dict[str, Callable[[], Awaitable[Any]]]
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """One warm-up of every path, then `runs` rounds, the paths alternating within each round."""
    results = {name: await fn() for name, fn in paths.items()}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(runs):
        for name, fn in paths.items():
            elapsed, results[name] = await timed(fn)
            times[name].append(elapsed)
    return times, results


def compare(ours: pd.DataFrame, bare_rows: list[tuple]) -> tuple[int, float]:
    """Every state's seconds (within 1 s) and both part counts (exactly) per device and day. Returns the
    number of device-days compared and the largest difference in seconds."""
    bare = pd.DataFrame(bare_rows, columns=["device_id", "day", "key", "value"])
    bare = bare.pivot_table(index=["device_id", "day"], columns="key", values="value", aggfunc="sum").fillna(0.0)
    mine = ours.set_index(["device_id", "day"])
    assert sorted(mine.index) == sorted(bare.index), "the two paths return different device-days"
    assert (mine["planned_s"] - 86400).abs().max() < 1e-6, "open 24/7: every whole day is planned"
    worst = 0.0
    for state in metrics.STATES:
        theirs = bare[state].reindex(mine.index).fillna(0.0) if state in bare else 0.0
        diff = (mine[f"{state}_s"] - theirs).abs()
        worst = max(worst, float(diff.max()))
        assert diff.max() <= 1.0, f"{state} seconds differ by up to {diff.max()} s, at {diff.idxmax()}"
    for column, key in (("parts_total", "parts_total.delta"), ("parts_good", "parts_good.delta")):
        counted = mine[column].notna()  # printers count no good parts: unknown, not zero
        diff = (mine.loc[counted, column] - bare[key].reindex(mine.index)[counted].fillna(0.0)).abs()
        assert not len(diff) or diff.max() == 0, f"{column} differs by up to {diff.max()}"
    return len(mine), worst


def same_answer(history: pd.DataFrame, live: pd.DataFrame) -> tuple[int, float]:
    """The summary's answer equals the live one, micro-stops aside; returns how many device-days differ in
    micro-stop seconds, and by how much at most."""
    micro = ["micro_stop_s", "loss_micro_stop_s"]
    a, b = history.reset_index(drop=True), live.reset_index(drop=True)
    pd.testing.assert_frame_equal(a.drop(columns=micro), b.drop(columns=micro), check_dtype=False)
    diff = (a["micro_stop_s"] - b["micro_stop_s"]).abs()
    return int((diff > 0).sum()), float(diff.max())


async def breakdown(
    conn: AsyncConnection, service: OeeService, ids: list[str], end: datetime, runs: int
) -> dict[str, float]:
    """The live path's queries one by one, with the parameters `OeeService.live` passes them: medians."""
    params = {"device_ids": ids, "start": START, "end": end, "zone": ZONE.key}
    planned = dict(await fetch(conn, QUERIES.device_planned_time.sql, params))
    full = params | {
        "planned": [planned[d] for d in ids],
        "now": service.clock(),
        "micro_stop": service.micro_stop,
        "organization_id": None,
    }
    queries = {
        "device-planned-time": (QUERIES.device_planned_time.sql, params),
        "state-seconds": (QUERIES.state_seconds.sql, full),
        "parts": (QUERIES.parts.sql, full),
    }
    times, _ = await race(runs, {name: partial(fetch, conn, *query) for name, query in queries.items()})
    return {name: statistics.median(t) for name, t in times.items()}


async def fetch(conn: AsyncConnection, sql: str, params: dict[str, Any]) -> list[tuple]:
    cur = await conn.execute(sql, params)
    return await cur.fetchall()


def ms(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1000:7.0f} ms  (runs: {', '.join(f'{s * 1000:.0f}' for s in seconds)})"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


async def bench(
    url: str, devices: DeviceFile, days: int, runs: int, jit: bool, label: str, history: bool
) -> dict[str, float]:
    ids = [d.id for d in devices.devices]
    end = START + timedelta(days=days)
    now = end + timedelta(hours=1)
    service = OeeService(*oee_facts(devices), ZONE, lambda: now)
    params = {"device_ids": ids, "start": START, "end": end, "now": now, "zone": ZONE.key}
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        if not jit:
            await conn.execute("SET jit = off")

        async def ours() -> pd.DataFrame:
            return await service.daily(conn, ids, START, end)

        async def bare() -> list[tuple]:
            return await fetch(conn, BARE, params)

        times, results = await race(runs, {"ours": ours, "bare": bare})
        compared, worst = compare(results["ours"], results["bare"])
        parts = await breakdown(conn, service, ids, end, runs)
        out = {"ours": statistics.median(times["ours"]), "bare": statistics.median(times["bare"])}
        print(f"{label}:")
        print(f"  ours: OeeService.daily, live (no summary rows)  {ms(times['ours'])}")
        print(f"  bare: one hand-written SQL aggregate            {ms(times['bare'])}")
        print(f"  ratio ours / bare: {out['ours'] / out['bare']:.2f}")
        print(
            "  ours by query (medians, the same way): "
            + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in parts.items())
            + f" (together {sum(parts.values()) * 1000:.0f} ms of daily's {out['ours'] * 1000:.0f} ms)"
        )
        print(
            f"  agree: {compared:,} device-days, every state's seconds within 1 s (largest difference {worst:g} s), "
            "parts exactly"
        )
        if history:
            summarize, stored = await timed(lambda: summarize_days(conn, service, ids, now))
            count = (await (await conn.execute("SELECT count(*) FROM oee_daily")).fetchone())[0]
            history_times, answers = await race(runs, {"history": ours})
            differ, by = same_answer(answers["history"], results["ours"])
            out["history"] = statistics.median(history_times["history"])
            print(f"  history: daily once summarize stored the days {ms(history_times['history'])}")
            print(
                f"    summarize: {len(stored)} days, {count:,} rows in {summarize:.1f} s; the same answer as live "
                f"except micro-stop seconds on {differ} device-days (by up to {by:g} s: an idle span across "
                "midnight is cut per day there)"
            )
    return out


async def book_a_month(
    conn: AsyncConnection, devices: DeviceFile, days: int, count: int, now: datetime
) -> tuple[Principal, list[dict[str, Any]]]:
    """One organization, its user and `count` completed bookings spread evenly over the devices and days (up to
    2 h each, back to back at most), written as the booking domain stores them."""
    cur = await conn.execute(
        "INSERT INTO organization (name, uscc) VALUES ('靖江精工机械有限公司', '913202817000000001') RETURNING id"
    )
    (org_id,) = await cur.fetchone()
    cur = await conn.execute(
        "INSERT INTO app_user (email, name, role, organization_id, password_hash) "
        "VALUES ('bench@example.com', 'Bench', 'customer', %s, 'x') RETURNING id",
        (org_id,),
    )
    (user_id,) = await cur.fetchone()
    ids = [d.id for d in devices.devices]
    per_device = -(-count // len(ids))
    spacing = timedelta(days=days) / per_device
    length = min(timedelta(hours=2), spacing)
    bookings = []
    for i in range(count):
        device_id, k = ids[i % len(ids)], i // len(ids)
        start = START + k * spacing
        cur = await conn.execute(
            "INSERT INTO booking (device_id, organization_id, user_id, created_by, during, status, hourly_rate, gross, "
            "net, created_at) SELECT %(device)s, %(org)s, %(user)s, %(user)s, tstzrange(%(start)s, %(end)s), "
            "'completed', coalesce(d.hourly_rate, c.hourly_rate), 0, 0, %(start)s "
            "FROM device d JOIN device_class c ON c.id = d.class_id WHERE d.id = %(device)s RETURNING id",
            {"device": device_id, "org": org_id, "user": user_id, "start": start, "end": start + length},
        )
        (booking_id,) = await cur.fetchone()
        bookings.append(
            {"id": booking_id, "device_id": device_id, "organization_id": org_id, "start": start,
             "end": start + length, "status": "completed"}
        )  # fmt: skip
    return Principal(user_id, "bench@example.com", "Bench", Role.customer, org_id), bookings


async def bench_reports(url: str, devices: DeviceFile, days: int, count: int, runs: int) -> dict[str, float]:
    """Freezes an organization's month of bookings, then times building their reports against the bare SQL."""
    end = START + timedelta(days=days)
    now = end + timedelta(days=2)  # every overrun settled
    service = OeeService(*oee_facts(devices), ZONE, lambda: now)
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SET jit = off")
        async with conn.transaction():
            customer, bookings = await book_a_month(conn, devices, days, count, now)
        freezing, frozen = await timed(lambda: freeze_all(conn, service, bookings, now))
        assert frozen == count, f"only {frozen} of {count} bookings could be frozen"
        ids = [b["id"] for b in bookings]

        async def ours() -> list[report.Report]:
            return await report.reports(conn, ids, customer)

        async def one_by_one() -> list[report.Report]:
            return [await report.booking_report(conn, i, customer) for i in ids]

        async def bare() -> list[tuple]:
            return await fetch(conn, BARE_REPORTS, {"ids": ids})

        times, answers = await race(runs, {"ours": ours, "one": one_by_one, "bare": bare})
        built: list[report.Report] = answers["ours"]
        assert [r.slot.booking_id for r in built] == ids
        assert len(answers["bare"]) == count
        assert answers["one"] == built, "one at a time and all at once disagree"
        for mine, theirs in zip(built, answers["bare"], strict=True):
            assert (mine.times.running_s, mine.parts.total) == (theirs[12], theirs[17]), mine.slot.booking_id
        out = {name: statistics.median(t) for name, t in times.items()}
        spans = sum(len(r.timeline or []) for r in built)
        cycles = sum(len(r.cycles.trend) if r.cycles else 0 for r in built)
        print(
            f"reports: one organization's {count} completed bookings on {len(devices.devices)} devices over {days} days"
        )
        print(
            f"  frozen in {freezing:.1f} s (usage, per-day results, snapshot: {spans:,} state spans, {cycles:,} "
            "measured cycles in all)"
        )
        print(f"  ours: oee.report.reports, all {count} at once       {ms(times['ours'])}")
        print(f"  ours: booking_report, one at a time ({count} calls)  {ms(times['one'])}")
        print(f"  bare: one SQL reading the same frozen rows          {ms(times['bare'])}")
        print(f"  ratio ours / bare: {out['ours'] / out['bare']:.2f} (one at a time {out['one'] / out['bare']:.2f})")
    return out


async def freeze_all(conn: AsyncConnection, service: OeeService, bookings: list[dict[str, Any]], now: datetime) -> int:
    frozen = 0
    for booking in bookings:
        async with conn.transaction():
            frozen += await results.freeze(conn, service, booking, now) is not None
    return frozen


async def summarize_days(conn: AsyncConnection, service: OeeService, ids: list[str], now: datetime) -> list:
    async with conn.transaction():
        return await service.summarize(conn, ids, now)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per path, after one warm-up")
    parser.add_argument("--hz-devices", type=int, default=10, help="devices of the row-a-second set (0: skip it)")
    parser.add_argument("--hz-days", type=int, default=3)
    parser.add_argument("--jit", action="store_true", help="keep the server's JIT (default: SET jit = off)")
    parser.add_argument("--report-bookings", type=int, default=200, help="one organization's bookings in the month")
    args = parser.parse_args()

    started = time.perf_counter()
    cluster = PostgresCluster(timescaledb=True).start()
    try:
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            # No autovacuum: it would analyze fresh chunks while we vacuum (holding back the all-visible marks)
            # or time. The bench vacuums and analyzes itself.
            conn.execute("ALTER SYSTEM SET autovacuum = off")
            conn.execute("SELECT pg_reload_conf()")
        devices = bench_devices(args.devices)
        end = START + timedelta(days=args.days)
        url = cluster.create_database("bench")
        loading, n = await timed(lambda: prepare(url, devices, args.days, 60, end + timedelta(hours=1)))
        grid = args.devices * args.days * 86400
        print(
            f"data: {args.devices} devices x {args.days} days ({START:%Y-%m-%d} to {end - timedelta(days=1):%Y-%m-%d} "
            f"{ZONE.key}) on a 1 Hz grid: {grid:,} device-seconds; center open 24/7; "
            f"JIT {'as the server has it (on)' if args.jit else 'off'}"
        )
        print(
            f"  telemetry_state: {n['states']:,} rows as the gateway stores them: {n['changes']:,} changes of state "
            f"({n['spans']:,} spans drawn, mean {grid / n['spans']:.0f} s) and {n['states'] - n['spans']:,} heartbeats "
            "(every 60 s while a state holds)"
        )
        print(f"  telemetry_sample: {n['parts']:,} part deltas (total and good); generated in {loading:.0f} s")
        main_set = await bench(
            url, devices, args.days, args.runs, args.jit, f"{args.devices} devices x {args.days} days", True
        )

        print()
        reports = await bench_reports(url, devices, args.days, args.report_bookings, args.runs)

        hz: dict[str, float] | None = None
        if args.hz_devices:
            hz_devices = bench_devices(args.hz_devices)
            hz_url = cluster.create_database("bench_1hz")
            hz_end = START + timedelta(days=args.hz_days)
            loading, m = await timed(lambda: prepare(hz_url, hz_devices, args.hz_days, 1, hz_end + timedelta(hours=1)))
            print()
            print(
                f"data, a row every second: {args.hz_devices} devices x {args.hz_days} days, telemetry_state "
                f"{m['states']:,} rows ({m['changes']:,} changes of state), {m['parts']:,} part deltas; "
                f"generated in {loading:.0f} s"
            )
            label = f"{args.hz_devices} devices x {args.hz_days} days, a row every second"
            hz = await bench(hz_url, hz_devices, args.hz_days, args.runs, args.jit, label, False)

        print()
        ours, bare = main_set["ours"], main_set["bare"]
        print(f"OEE per device per day, {args.devices} devices x {args.days} days (medians of {args.runs}):")
        print(f"  ours {ours:.3f} s, bare {bare:.3f} s, ratio ours / bare {ours / bare:.2f}")
        print(f"  goal under {GOAL_SECONDS:g} s: {verdict(ours < GOAL_SECONDS)}")
        print(f"  goal no worse than {GOAL_RATIO:g}x the bare SQL: {verdict(ours / bare <= GOAL_RATIO)}")
        print(
            f"  history (the days stored by summarize): {main_set['history'] * 1000:.0f} ms, "
            f"goal under {GOAL_SECONDS:g} s {verdict(main_set['history'] < GOAL_SECONDS)}"
        )
        print(
            f"  machine reports of one organization's {args.report_bookings} bookings from frozen results: "
            f"{reports['ours']:.3f} s all at once ({reports['one']:.3f} s one at a time), bare SQL "
            f"{reports['bare']:.3f} s, ratio {reports['ours'] / reports['bare']:.2f}; goal under {GOAL_SECONDS:g} s: "
            f"{verdict(reports['ours'] < GOAL_SECONDS)}"
        )
        if hz is not None:
            print(
                f"  a row every second, {args.hz_devices} devices x {args.hz_days} days: ours {hz['ours']:.3f} s, "
                f"bare {hz['bare']:.3f} s, ratio {hz['ours'] / hz['bare']:.2f}"
            )
        load = os.getloadavg()[0]
        print(f"({time.perf_counter() - started:.0f} s in all; load average {load:.1f} on {os.cpu_count()} CPUs)")
    finally:
        cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
