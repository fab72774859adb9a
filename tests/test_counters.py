"""Counters never invent production: every part counted exactly once whatever restarts, crashes or replays,
and a step no machine could make is quarantined with its reason, never counted (telemetry.counters)."""

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from fabhub.devservices import free_port
from telemetry import BatchWriter
from telemetry.counters import Baseline, count, step
from telemetry.model import Count
from tests.gateway_rig import eventually, rig, running_robot
from tests.http import SECRET
from tests.samples import at, fixed_clock

DELTAS = "SELECT coalesce(sum(value), 0) FROM telemetry_sample WHERE device_id = %s AND signal = 'parts_total.delta'"


def counts(values, modulus=None, max_per_s=None, every=1.0, epochs=None):
    return [
        Count(at(i * every), "robot-01", "parts_total", v, modulus, max_per_s, epochs[i] if epochs else None)
        for i, v in enumerate(values)
    ]


def deltas(result):
    return [d.value for d in result.deltas]


def test_steps_resets_and_wrap_arounds():
    # first sight is the baseline; 10->13 is 3; 13->2 a restart (2 made since); 2->990 is 988; 990->5 wraps at 1000
    result = count(counts([10, 13, 13, 2, 990, 5], modulus=1000), {})
    assert deltas(result) == [3, 2, 988, 15]
    assert result.baselines[("robot-01", "parts_total")] == Baseline(5, at(5))
    assert result.rejected == []


def test_restart_at_zero_counts_nothing_and_the_count_goes_on_from_there():
    assert deltas(count(counts([500, 0, 4]), {})) == [4]


def test_a_restart_at_a_higher_value_is_quarantined_not_counted():
    """A PLC restores a retained value after a power cycle: 100 -> 4,294,967,248 in a minute on a 90 s cycle."""
    result = count(counts([100, 4_294_967_248, 4_294_967_250], max_per_s=3 / 90, every=60), {})
    assert deltas(result) == [2]
    [rejected] = result.rejected
    assert rejected.signal == "parts_total" and rejected.value == "4294967248"
    assert rejected.reason == (
        "counter step of 4294967148 (100 -> 4294967248) in 60 s is more than the machine can make (3):"
        " taken as a reset, not counted"
    )


def test_the_physical_limit_grows_with_the_time_since_the_baseline():
    # 3x a 60 s cycle: 3 parts a minute at most, plus the one that may finish at any instant
    assert deltas(count(counts([0, 31], max_per_s=3 / 60, every=600), {})) == [31]
    assert count(counts([0, 32], max_per_s=3 / 60, every=600), {}).deltas == []
    # a wrap-around is judged the same way
    assert count(counts([65_530, 65_000], modulus=65_536, max_per_s=1, every=5), {}).rejected != []


def test_what_is_not_newer_than_the_baseline_was_counted_already():
    stored = {("robot-01", "parts_total"): Baseline(20, at(10))}
    assert step(stored[("robot-01", "parts_total")], counts([25])[0]) is None  # at(0): older, a replay
    result = count([Count(at(10), "robot-01", "parts_total", 20), Count(at(11), "robot-01", "parts_total", 23)], stored)
    assert deltas(result) == [3]


def test_a_new_job_starts_a_new_baseline():
    result = count(counts([40, 42, 0, 3, 1000], epochs=["J-1", "J-1", "J-2", "J-2", "J-3"]), {})
    assert deltas(result) == [2, 3]


async def test_a_replayed_batch_counts_nothing_twice(any_pool):
    writer = BatchWriter(any_pool, clock=fixed_clock(at(3600)))
    first = counts([100, 103, 110])
    await writer.write_batch(first)
    await writer.write_batch(first)  # the spool replays a batch that was in fact written
    later = [Count(at(3), "robot-01", "parts_total", 111), Count(at(4), "robot-01", "parts_total", 115)]
    await writer.write_batch([*first, *later])
    async with any_pool.connection() as conn:
        assert (await (await conn.execute(DELTAS, ("robot-01",))).fetchone())[0] == 15
        rows = await (await conn.execute("SELECT raw, time FROM telemetry_counter")).fetchall()
    assert rows == [(115, at(4))]


async def test_batches_overtaking_each_other_count_every_part_once(pool):
    """Two writers' batches of one counter, committed in either order: the later value covers the earlier."""
    writer = BatchWriter(pool, clock=fixed_clock(at(3600)))
    await writer.write_batch(counts([0]))
    await writer.write_batch([Count(at(20), "robot-01", "parts_total", 9)])
    await writer.write_batch([Count(at(10), "robot-01", "parts_total", 4)])  # late: covered by 0 -> 9
    await asyncio.gather(
        *(writer.write_batch([Count(at(30 + i), "robot-01", "parts_total", 10 + i)]) for i in range(8))
    )
    async with pool.connection() as conn:
        assert (await (await conn.execute(DELTAS, ("robot-01",))).fetchone())[0] == 17


async def test_two_writers_count_a_counter_seen_for_the_first_time_once(any_pool):
    """Two ingest workers each take the first batches of a new counter: neither may take its own first
    value as the baseline, or the step between the two is lost."""
    first, second = BatchWriter(any_pool), BatchWriter(any_pool)
    pairs = [[Count(at(n), "robot-01", "parts_total", 100 + n) for n in (i, i + 1)] for i in range(0, 200, 2)]

    async def write(writer: BatchWriter, batches: list[list[Count]]) -> None:
        for batch in batches:
            await writer.write_batch(batch)

    await asyncio.gather(write(first, pairs[0::2]), write(second, pairs[1::2]))
    async with any_pool.connection() as conn:
        assert (await (await conn.execute(DELTAS, ("robot-01",))).fetchone())[0] == 199


async def test_simulated_robot_restarting_higher_is_quarantined_and_its_next_parts_counted(db_url, tmp_path):
    sim = await running_robot("robot-01", (100, 100))
    async with rig(db_url, tmp_path, {"robot-01": sim}, overrides={"robot-01": {"max_rate": 3.0}}) as r:
        await r.until("SELECT raw FROM telemetry_counter WHERE signal = 'parts_total'", lambda rows: rows == [(100,)])
        sim.machine.set_counters(4_294_967_248, 4_294_967_248)  # a PLC restoring a retained value
        await sim.tick(0)
        await r.until(
            "SELECT reason FROM telemetry_quarantine WHERE signal = 'parts_total'",
            lambda rows: len(rows) == 1 and "taken as a reset, not counted" in rows[0][0],
        )
        sim.machine.set_counters(4_294_967_249, 4_294_967_249)  # one part: within what a UR10 can make
        await sim.tick(0)
        await r.until(DELTAS, lambda rows: rows == [(1,)], "robot-01")
        sim.machine.reset_counters()  # a power cycle that clears the counter: nothing made
        await sim.tick(0)
        await r.until("SELECT raw FROM telemetry_counter WHERE signal = 'parts_total'", lambda rows: rows == [(0,)])
        assert await r.rows(DELTAS, "robot-01") == [(1,)]


DEVICES_YAML = """\
center: {{name: Crash test}}
classes:
  robot: {{name: Robot, hourly_rate: "120.00"}}
devices:
  - id: robot-01
    name: UR10e
    class: robot
    protocol: modbus
    endpoint: tcp://127.0.0.1:{port}
    ideal_cycle_time: 50ms
    modbus: {{poll_interval: 100ms, timeout: 500ms}}
    signals:
      robot_mode: {{address: 258}}
      parts_total: {{address: 128, type: uint32, counter: true}}
"""


FABHUB = str(Path(sys.executable).parent / "fabhub")


def _environment(tmp_path, db_url, mqtt_url) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FABHUB_")}
    return env | {
        "FABHUB_DATABASE_URL": db_url,
        "FABHUB_SECRET_KEY": SECRET,
        "FABHUB_MQTT_URL": mqtt_url,
        "FABHUB_DEVICES": str(tmp_path / "devices.yaml"),
        "FABHUB_DATA_DIR": str(tmp_path / "data"),
        "FABHUB_PORT": str(free_port()),
        "FABHUB_BATCH_MAX_AGE_S": "0.05",
    }


def _gateway_process(tmp_path, db_url, mqtt_url) -> subprocess.Popen:
    env = _environment(tmp_path, db_url, mqtt_url)
    return subprocess.Popen([FABHUB, "gateway"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.timeout(600)
async def test_gateway_killed_at_random_instants_counts_every_part_exactly_once(db_url, mosquitto, tmp_path):
    """`kill -9` of the gateway process 20 times while the robot counts: parts made while it was down are
    counted when it is back, and none made before a crash is counted again."""
    sim = await running_robot("robot-01", (1_000, 1_000))
    await sim.start()  # on a free port, known once it listens
    (tmp_path / "devices.yaml").write_text(DEVICES_YAML.format(port=sim.port))
    # the gateway only reads the catalogue: `catalogue sync` writes it
    sync = [FABHUB, "catalogue", "sync"]
    await asyncio.to_thread(subprocess.run, sync, env=_environment(tmp_path, db_url, mosquitto.url), check=True)
    made = 1_000
    counting = True

    async def produce() -> None:
        nonlocal made
        while counting:
            made += 1
            sim.machine.set_counters(made, made)
            await sim.tick(0)
            await asyncio.sleep(0.05)

    rng = random.Random(20261204)
    producer = asyncio.create_task(produce())

    async def stored(query: str, *args) -> list[tuple]:
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            return await (await conn.execute(query, args)).fetchall()

    try:
        for round_no in range(20):
            process = _gateway_process(tmp_path, db_url, mosquitto.url)
            if round_no == 0:
                # Counting once, whatever a loaded machine does to start-up times: the later kills then land on
                # a gateway whose baseline exists, so a part counted twice would show.
                await eventually(lambda: stored("SELECT 1 FROM telemetry_counter WHERE signal = 'parts_total'"), 60)
            await asyncio.sleep(rng.uniform(1.0, 3.0))  # starting, connecting, counting: any of them
            process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait)
        counting = False
        await producer
        process = _gateway_process(tmp_path, db_url, mosquitto.url)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while loop.time() < deadline:
                if await stored("SELECT raw FROM telemetry_counter WHERE signal = 'parts_total'") == [(made,)]:
                    break
                await asyncio.sleep(0.2)
        finally:
            # the counts are checked in the database below; how this last process ends is not what this test is
            # about (graceful stops are the gateway tests'), and on a loaded machine it may take long: end it
            process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait, 30)
    finally:
        counting = False
        await sim.stop()
    [(first,)] = await stored("SELECT value FROM telemetry_sample WHERE signal = 'parts_total' ORDER BY time LIMIT 1")
    assert await stored("SELECT raw FROM telemetry_counter WHERE signal = 'parts_total'") == [(made,)]
    assert await stored(DELTAS, "robot-01") == [(made - first,)]
    assert await stored("SELECT reason FROM telemetry_quarantine WHERE signal LIKE 'parts%%'") == []
    assert made - first > 100  # it did count through the crashes
