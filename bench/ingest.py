"""Ingest benchmark: the batch writer against bare binary COPY, same rows, same kind of table, same run.

Starts its own TimescaleDB cluster the way the tests do (run `make system` once), writes N samples
(default 1,000,000: 200 devices x 25 signals x 200 s at 1 Hz) through `BatchWriter` and by bare binary
COPY in batches of the same size into an identical hypertable, alternating the two paths, then prints
both rates and the ratio. Only the ratio of one run means something on a noisy machine.

    .venv/bin/python bench/ingest.py [--samples N] [--batch-size N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg_pool import AsyncConnectionPool

from fabhub.devservices import PostgresCluster
from fabhub.migrations import migrate
from telemetry import BatchWriter, Sample
from telemetry.writer import NUMERIC_TYPES

T0 = datetime(2026, 1, 5, tzinfo=UTC)
COPY_BARE = "COPY bare_sample (time, device_id, signal, value, quality) FROM STDIN (FORMAT BINARY)"
BARE_TABLE = """
CREATE TABLE bare_sample (LIKE telemetry_sample INCLUDING ALL);
SELECT create_hypertable('bare_sample', 'time', chunk_time_interval => INTERVAL '1 hour');
"""


def make_samples(n: int) -> list[Sample]:
    devices = [f"dev-{d:03d}" for d in range(200)]
    signals = [f"signal_{s:02d}" for s in range(25)]
    out: list[Sample] = []
    tick = 0
    while len(out) < n:
        t = T0 + timedelta(seconds=tick)
        for d in devices:
            for s in signals:
                out.append(Sample(t, d, s, float(tick % 1000) + 0.5, 0))
        tick += 1
    return out[:n]


async def reset(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("TRUNCATE telemetry_sample, telemetry_series, bare_sample")


async def count(url: str, table: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return (await (await conn.execute(f"SELECT count(*) FROM {table}")).fetchone())[0]


async def bare_copy(url: str, rows: list[Sample], batch_size: int, connections: int = 1) -> float:
    """Binary COPY straight from Python, one transaction per batch: the floor the writer is held to.
    With several connections, batches are dealt round-robin and copied concurrently."""

    async def stream(conn: psycopg.AsyncConnection, batches: list[list[Sample]]) -> None:
        for batch in batches:
            async with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_BARE) as copy:
                copy.set_types(NUMERIC_TYPES)
                for row in batch:
                    await copy.write_row(row)

    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    conns = [await psycopg.AsyncConnection.connect(url) for _ in range(connections)]
    try:
        started = time.perf_counter()
        await asyncio.gather(*(stream(c, batches[n::connections]) for n, c in enumerate(conns)))
        return time.perf_counter() - started
    finally:
        for conn in conns:
            await conn.close()


async def through_writer(url: str, rows: list[Sample], batch_size: int, chunk: int) -> float:
    """Producers hand the writer chunks, as the gateway's adapters do; timed until all is stored."""
    async with AsyncConnectionPool(url, min_size=2, max_size=4, open=False) as pool:
        await pool.open(wait=True)
        writer = BatchWriter(
            pool,
            batch_size=batch_size,
            max_age=0.5,
            capacity=4 * batch_size,
            clock=lambda: T0 + timedelta(seconds=30),
        )
        await writer.start()
        started = time.perf_counter()
        for i in range(0, len(rows), chunk):
            await writer.submit(rows[i : i + chunk])
        await writer.flush()
        elapsed = time.perf_counter() - started
        await writer.close()
        if writer.stats.merges or writer.stats.quarantined:
            raise SystemExit(f"unexpected writer stats: {writer.stats}")
        return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--chunk", type=int, default=500, help="samples per submit() call")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    rows = make_samples(args.samples)
    cluster = PostgresCluster(timescaledb=True).start()
    try:
        url = cluster.create_database("bench")
        await migrate(url, timescaledb="require")
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(BARE_TABLE)
        bare_times, bare2_times, writer_times = [], [], []
        for round_no in range(1, args.rounds + 1):
            await reset(url)
            bare_times.append(await bare_copy(url, rows, args.batch_size))
            assert await count(url, "bare_sample") == len(rows)
            writer_times.append(await through_writer(url, rows, args.batch_size, args.chunk))
            assert await count(url, "telemetry_sample") == len(rows)
            await reset(url)
            bare2_times.append(await bare_copy(url, rows, args.batch_size, connections=2))
            assert await count(url, "bare_sample") == len(rows)
            print(
                f"round {round_no}: bare COPY {len(rows) / bare_times[-1]:,.0f} rows/s, "
                f"writer {len(rows) / writer_times[-1]:,.0f} rows/s, "
                f"bare COPY on 2 connections {len(rows) / bare2_times[-1]:,.0f} rows/s"
            )
        bare, bare2, writer = (len(rows) / statistics.median(t) for t in (bare_times, bare2_times, writer_times))
        print(f"samples: {len(rows):,}  batch size: {args.batch_size}  rounds: {args.rounds} (medians)")
        print(f"bare binary COPY, 1 connection:  {bare:,.0f} rows/s")
        print(f"bare binary COPY, 2 connections: {bare2:,.0f} rows/s")
        print(f"BatchWriter (2 connections):     {writer:,.0f} rows/s")
        print(f"ratio writer / bare COPY:                {writer / bare:.2f}  (goal >= 0.80)")
        print(f"ratio writer / bare COPY, 2 connections: {writer / bare2:.2f}")
    finally:
        cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
