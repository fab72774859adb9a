"""The batch writer against real TimescaleDB: routing, concurrency, exactly-once replays, bad input."""

import asyncio
import math
import random
from datetime import timedelta

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from telemetry import BatchWriter, Quality, Sample
from tests.samples import T0, at, fixed_clock, series

NOW = T0 + timedelta(hours=2)
KNOWN = {"cnc-01", "cnc-02", "robot-01", "printer-01"}.__contains__


def writer(pool, **kw):
    kw.setdefault("clock", fixed_clock(NOW))
    kw.setdefault("known_device", KNOWN)
    return BatchWriter(pool, **kw)


async def count(pool, table, where="true"):
    async with pool.connection() as conn:
        cur = await conn.execute(f"SELECT count(*) FROM {table} WHERE {where}")
        return (await cur.fetchone())[0]


async def rows(pool, query):
    async with pool.connection() as conn:
        cur = await conn.execute(query)
        return await cur.fetchall()


async def test_samples_go_to_their_tables_with_quality(pool):
    w = writer(pool)
    result = await w.write_batch(
        [
            Sample(at(0), "cnc-01", "spindle_speed", 12000.0, Quality.GOOD),
            Sample(at(1), "cnc-01", "spindle_speed", 11950, Quality.UNCERTAIN),
            Sample(at(2), "cnc-01", "program", "O1001 BRACKET", Quality.GOOD),
            Sample(at(3), "cnc-01", "state", "running", Quality.GOOD),
            Sample(at(4), "robot-01", "power_on", True, Quality.BAD),
        ]
    )
    assert result.written == 5 and result.duplicates == 0 and result.quarantined == 0
    assert await rows(pool, "SELECT device_id, signal, value, quality FROM telemetry_sample ORDER BY time") == [
        ("cnc-01", "spindle_speed", 12000.0, 0),
        ("cnc-01", "spindle_speed", 11950.0, 1),
        ("robot-01", "power_on", 1.0, 2),
    ]
    assert await rows(pool, "SELECT signal, value FROM telemetry_text_sample") == [("program", "O1001 BRACKET")]
    assert await rows(pool, "SELECT device_id, state FROM telemetry_state") == [("cnc-01", "running")]
    assert await rows(pool, "SELECT device_id, signal, kind FROM telemetry_series ORDER BY 1, 2") == [
        ("cnc-01", "program", "text"),
        ("cnc-01", "spindle_speed", "numeric"),
        ("cnc-01", "state", "state"),
        ("robot-01", "power_on", "numeric"),
    ]


async def test_concurrent_producers_lose_and_duplicate_nothing(pool):
    w = writer(pool, batch_size=700, max_age=0.05, capacity=3000)
    await w.start()
    rng = random.Random(7)

    async def produce(n: int):
        samples = series("cnc-02", f"temperature.axis_{n}", [float(i) for i in range(5000)])
        i = 0
        while i < len(samples):
            size = rng.randint(1, 400)
            await w.submit(samples[i : i + size])
            i += size
            await asyncio.sleep(0)

    await asyncio.gather(*(produce(n) for n in range(8)))
    leftover = await w.close()
    assert leftover == []
    assert await count(pool, "telemetry_sample") == 40_000
    per_signal = await rows(pool, "SELECT signal, count(*), sum(value) FROM telemetry_sample GROUP BY 1 ORDER BY 1")
    assert per_signal == [(f"temperature.axis_{n}", 5000, sum(range(5000))) for n in range(8)]
    assert w.stats.written == 40_000 and w.stats.duplicates == 0
    assert w.stats.batches >= 40_000 / 700
    assert w.pending == 0


async def test_replayed_batch_writes_nothing_twice(pool):
    w = writer(pool)
    batch = series("cnc-01", "spindle_speed", [1.0, 2.0, 3.0]) + [
        Sample(at(10), "cnc-01", "program", "O42"),
        Sample(at(11), "cnc-01", "state", "idle"),
    ]
    first = await w.write_batch(batch)
    again = await w.write_batch(batch)
    assert (first.written, first.duplicates) == (5, 0)
    assert (again.written, again.duplicates) == (0, 5)
    assert w.stats.merges == 1
    assert await count(pool, "telemetry_sample") == 3
    assert await count(pool, "telemetry_text_sample") == 1
    assert await count(pool, "telemetry_state") == 1


async def test_partly_replayed_batch_adds_only_the_new_samples(pool):
    w = writer(pool)
    await w.write_batch(series("cnc-01", "spindle_speed", [1.0, 2.0, 3.0]))
    overlap = series("cnc-01", "spindle_speed", [2.0, 3.0, 4.0, 5.0], start=1)
    result = await w.write_batch(overlap)
    assert (result.written, result.duplicates) == (2, 2)
    values = await rows(pool, "SELECT value FROM telemetry_sample ORDER BY time")
    assert [v for (v,) in values] == [1.0, 2.0, 3.0, 4.0, 5.0]


async def test_first_write_wins_for_the_same_instant(pool):
    w = writer(pool)
    result = await w.write_batch(
        [Sample(at(0), "cnc-01", "feed_override", 100.0), Sample(at(0), "cnc-01", "feed_override", 80.0)]
    )
    assert (result.written, result.duplicates) == (1, 1)
    assert await count(pool, "telemetry_sample") == 1


async def test_bad_samples_are_quarantined_with_reasons_and_the_rest_is_written(pool):
    w = writer(pool)
    naive = at(0).replace(tzinfo=None)
    batch = [
        Sample(at(0), "cnc-01", "spindle_speed", math.nan),
        Sample(at(1), "cnc-01", "spindle_speed", math.inf),
        Sample(at(2), "cnc-01", "spindle_speed", -math.inf),
        Sample(at(3), "lathe-99", "spindle_speed", 1.0),
        Sample(at(4), "CNC 01;drop", "spindle_speed", 1.0),
        Sample(at(5), "cnc-01", "Spindle Speed", 1.0),
        Sample(naive, "cnc-01", "spindle_speed", 1.0),
        Sample(NOW + timedelta(hours=2), "cnc-01", "spindle_speed", 1.0),
        Sample(at(6), "cnc-01", "state", "exploded"),
        Sample(at(7), "cnc-01", "program", "bad\x00text"),
        Sample(at(8), "cnc-01", "spindle_speed", [1, 2]),
        Sample(at(9), "cnc-01", "spindle_speed", 1.0, 7),
        Sample(at(10), "cnc-01", "spindle_speed", 10**400),
        Sample(at(11), "cnc-01", "spindle_speed", 500.0),
        Sample(at(12), ["cnc-01"], {"spindle"}, 1.0),
    ]
    result = await w.write_batch(batch)
    assert (result.written, result.quarantined) == (1, 14)
    assert await rows(pool, "SELECT value FROM telemetry_sample") == [(500.0,)]
    reasons = await rows(pool, "SELECT device_id, signal, reason FROM telemetry_quarantine ORDER BY value, reason")
    assert sorted(r for _, _, r in reasons) == sorted(
        [
            "value is not finite",
            "value is not finite",
            "value is not finite",
            "value is not finite",
            "unknown device",
            "invalid device id",
            "invalid device id",
            "invalid signal name",
            "timestamp without time zone",
            "timestamp in the future",
            "unknown state",
            "text is not valid UTF-8 or contains NUL",
            "unsupported value type list",
            "invalid quality",
        ]
    )
    # the raw value is kept for inspection, e.g. the NaN and the unknown device
    kept = await rows(pool, "SELECT value FROM telemetry_quarantine WHERE device_id = 'lathe-99'")
    assert kept == [("1.0",)]
    # a replay of the same batch does not quarantine anything twice
    await w.write_batch(batch)
    assert await count(pool, "telemetry_quarantine") == 14
    assert await count(pool, "telemetry_sample") == 1


async def test_out_of_order_samples_are_stored_and_late_ones_marked_for_rollup(pool):
    w = writer(pool, late_after=timedelta(minutes=1))
    await w.write_batch(series("cnc-01", "power_kw", [3.0, 4.0], start=7170))  # on time
    late = series("cnc-01", "power_kw", [1.0, 2.0], start=10)
    await w.write_batch(late)
    assert [v for (v,) in await rows(pool, "SELECT value FROM telemetry_sample ORDER BY time")] == [
        1.0,
        2.0,
        3.0,
        4.0,
    ]
    pending = await rows(pool, "SELECT from_time, to_time FROM telemetry_rollup_pending")
    assert pending == [(at(10), at(11))]


async def test_flushes_by_age_when_the_batch_is_not_full(pool):
    w = writer(pool, batch_size=10_000, max_age=0.05)
    await w.start()
    await w.submit(series("cnc-01", "spindle_speed", [1.0, 2.0, 3.0]))
    await w.flush()
    assert await count(pool, "telemetry_sample") == 3
    assert w.stats.batches == 1
    await w.close()


async def test_flushes_by_size(pool):
    w = writer(pool, batch_size=100, max_age=30)
    await w.start()
    await w.submit(series("cnc-01", "spindle_speed", [float(i) for i in range(1000)]))
    await w.flush()
    assert w.stats.batches == 10
    assert await count(pool, "telemetry_sample") == 1000
    await w.close()


async def test_database_away_keeps_samples_for_the_caller():
    port_nobody_listens_on = 9
    async with AsyncConnectionPool(
        f"postgresql://postgres@127.0.0.1:{port_nobody_listens_on}/x", open=False, timeout=0.2
    ) as dead:
        await dead.open(wait=False)
        w = BatchWriter(dead, batch_size=50, max_age=0.01, retry_max_wait=0.05, clock=fixed_clock(NOW))
        await w.start()
        samples = series("cnc-01", "spindle_speed", [float(i) for i in range(120)])
        await w.submit(samples)
        while w.stats.retries < 3:
            await asyncio.sleep(0.05)
        leftover = await w.close(grace=0.1)
    assert sorted(leftover) == sorted(samples)


async def test_rejects_nonsense_configuration(pool):
    with pytest.raises(ValueError, match="batch_size"):
        BatchWriter(pool, batch_size=0)
    with pytest.raises(ValueError, match="capacity"):
        BatchWriter(pool, capacity=0)


def test_psycopg_is_binary_accelerated():
    # The writer's speed depends on the C implementation; make sure it is the one installed.
    assert psycopg.pq.__impl__ in ("binary", "c")
