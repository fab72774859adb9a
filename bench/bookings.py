"""Booking benchmark: booking creation and availability over HTTP against the bare database path, same
table, same constraint, same run, ratios printed.

Starts its own TimescaleDB cluster (run `make system` once) and serves the real app under uvicorn in a
child process (so the load generator's own CPU is not spent in the app's event loop), on a fixed clock,
with devices.yaml plus a class of 50 printers whose rules admit the load; the center is opened 24/7.

- Creation: N bookings per round (default 2,000, 2 rounds), each on its own slot of one of the 50 devices so
  that all succeed, posted by C concurrent clients (default 16) for as many customer organizations, half of
  them subsidized; the app's pool has C connections. The bare path: the app's own INSERT statement into the
  same `booking` table (exclusion constraint `booking_no_overlap` included) from C psycopg connections, one
  transaction per INSERT. Both start from an empty table. Per-request p50/p99 latency, throughput, ratio.
- Availability: GET /api/v1/availability for the 50 printers over 7 days (the last round's bookings and
  10 maintenance windows in it), sequentially and from 8 concurrent clients, against the route's
  `free-slots` query (booking/sql/availability.sql) run bare with psycopg, the two interleaved.

Each line also shows the CPU time per request of the load generator (this process), the app's process and
the PostgreSQL backends serving the path (from /proc): on this 2-core machine they all compete for CPU.
Only the ratios of one run mean something on a noisy machine.

    .venv/bin/python bench/bookings.py [--bookings 2000] [--clients 16] [--rounds 2] [--requests 200]
                                      [--concurrent 8]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

# Run as a script, this file's folder is on sys.path, the repository (for the tests' rigs) is not.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool
from ruamel.yaml import YAML

from booking.sqlfiles import QUERIES
from fabhub.devices import load_devices
from fabhub.devservices import PostgresCluster, free_port
from fabhub.migrations import migrate
from tests.booking_rig import customer

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2027, 3, 1, 7, 0, tzinfo=ZONE)  # the app's fixed clock, a Monday morning
DAY1 = datetime(2027, 3, 2, tzinfo=ZONE)  # bookings start here
BENCH_CLASS = "bench-printer"
PROGRAM = "jingjiang-sme"
SECRET = "bench-signing-key-that-is-long-enough-0123456789"
LENGTH = timedelta(hours=1)
STEP = timedelta(hours=2)  # one booking every two hours per device: free time stays fragmented
WARMUP_DAY = 300  # warm-up bookings go far away (horizon_days is 366) and are deleted again
API = "/api/v1"
GRID = MIN_BOOKING = timedelta(minutes=30)  # the bench class's rules, set in write_devices


# -- the center -------------------------------------------------------------------------------------------


def write_devices(path: Path, count: int) -> None:
    """devices.yaml plus `count` printers in a class of their own whose rules admit the load."""
    yaml = YAML(typ="rt")
    data = yaml.load((REPO / "devices.yaml").read_text(encoding="utf-8"))
    cls = copy.deepcopy(data["classes"]["printer"])
    cls["name"] = "Bench 3D printer"
    cls["rules"]["horizon_days"] = 366
    cls["rules"]["max_future_hours_per_org"] = 100_000  # the most devices.yaml allows: no limit in practice
    cls["rules"]["min_booking"] = "30m"
    cls["rules"]["granularity"] = "30m"
    data["classes"][BENCH_CLASS] = cls
    data["subsidy_programs"][PROGRAM]["classes"].append(BENCH_CLASS)
    template = next(d for d in data["devices"] if d["id"] == "printer-01")
    for i in range(count):
        data["devices"].append(
            {
                "id": f"bench-{i:02d}",
                "name": f"Bench printer {i:02d}",
                "class": BENCH_CLASS,
                "protocol": "mqtt",
                "mqtt": {"serial": f"BENCH{i:010d}"},
                "signals": template["signals"],
                "states": template["states"],
            }
        )
    with path.open("w", encoding="utf-8") as f:
        yaml.dump(data, f)
    load_devices(path)  # the real loader validates what we wrote


def fixed_clock() -> datetime:
    return NOW


def run_server(database_url: str, devices_path: str, port: int, pool_size: int) -> None:
    """The child process: the app as `fabhub serve` runs it (uvicorn.Server on a stdlib asyncio loop)."""
    import uvicorn

    from fabhub.app import create_app
    from fabhub.settings import Settings

    settings = Settings(run_jobs=False, run_gateway=False, secret_key=SECRET, db_pool_size=pool_size)
    app = create_app(settings, database_url, load_devices(Path(devices_path)), clock=fixed_clock, write_catalogue=True)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    asyncio.run(server.serve())


async def wait_healthy(base_url: str, proc: multiprocessing.process.BaseProcess) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
        while time.monotonic() < deadline:
            if not proc.is_alive():
                raise SystemExit(f"the app exited with code {proc.exitcode}")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the app did not come up within 60 s")


# -- measuring --------------------------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User plus system CPU time of each process (Linux /proc); a process that is gone is left out."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(after[pid] - before[pid] for pid in after if pid in before)


@dataclass
class Run:
    latencies: list[float]  # seconds, one per request
    elapsed: float  # wall time for all of them
    cpu_client: float = 0.0  # CPU seconds: this process (the load generator or the bare psycopg client)
    cpu_app: float = 0.0  # the app's process
    cpu_db: float = 0.0  # the PostgreSQL backends serving the path

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed

    def pct(self, q: int) -> float:
        """The q-th percentile in milliseconds."""
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1] * 1000

    def per_op(self, cpu: float) -> float:
        return cpu / len(self.latencies) * 1000

    def __add__(self, other: Run) -> Run:
        return Run(
            self.latencies + other.latencies,
            self.elapsed + other.elapsed,
            self.cpu_client + other.cpu_client,
            self.cpu_app + other.cpu_app,
            self.cpu_db + other.cpu_db,
        )


async def drive(n: int, workers: int, one: Callable[[int, int], Awaitable[None]], watch: list[int]) -> Run:
    """Requests 0..n-1 handed out to `workers` concurrent loops; `one(worker, i)` does request i. `watch`:
    the server-side processes whose CPU time to count, the app's process first when there is one."""
    latencies: list[float] = []
    jobs = iter(range(n))

    async def loop(worker: int) -> None:
        for i in jobs:
            started = time.perf_counter()
            await one(worker, i)
            latencies.append(time.perf_counter() - started)

    before, client_before = cpu_seconds(watch), time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in range(workers)))
    elapsed = time.perf_counter() - started
    after, client = cpu_seconds(watch), time.process_time() - client_before
    return Run(latencies, elapsed, client, 0.0, cpu_spent(before, after))


@dataclass
class Server:
    url: str  # the database
    client: httpx.AsyncClient
    pid: int

    async def watch(self) -> list[int]:
        """The app's process and the database backends of its pool."""
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
            return [self.pid] + [pid for (pid,) in await cur.fetchall()]

    async def drive(self, n: int, workers: int, one: Callable[[int, int], Awaitable[None]]) -> Run:
        watch = await self.watch()
        app_before = cpu_seconds(watch[:1])
        run = await drive(n, workers, one, watch[1:])
        run.cpu_app = cpu_spent(app_before, cpu_seconds(watch[:1]))
        return run


def median_run(runs: list[Run]) -> tuple[float, float, float]:
    return (
        statistics.median(r.pct(50) for r in runs),
        statistics.median(r.pct(99) for r in runs),
        statistics.median(r.rate for r in runs),
    )


# -- booking creation -------------------------------------------------------------------------------------


@dataclass
class Booker:
    user_id: int
    org_id: int
    subsidized: bool
    headers: dict[str, str]


def slot(i: int, devices: int, day: int = 0) -> tuple[str, datetime, datetime]:
    """Booking i: device i mod D, the (i div D)-th two-hour step from DAY1 (+ `day` days)."""
    start = DAY1 + timedelta(days=day) + (i // devices) * STEP
    return f"bench-{i % devices:02d}", start, start + LENGTH


async def http_bookings(server: Server, people: list[Booker], n: int, devices: int, day: int = 0) -> Run:
    async def one(worker: int, i: int) -> None:
        device_id, start, end = slot(i, devices, day)
        body = {"device_id": device_id, "start": start.isoformat(), "end": end.isoformat(), "purpose": "bench"}
        r = await server.client.post(f"{API}/bookings", json=body, headers=people[i % len(people)].headers)
        if r.status_code != 201:
            raise SystemExit(f"booking {i} ({device_id} {start:%Y-%m-%d %H:%M}): {r.status_code} {r.text}")

    return await server.drive(n, len(people), one)


async def bare_bookings(url: str, people: list[Booker], n: int, devices: int, day: int = 0) -> Run:
    """A bare INSERT of the same row into the same table (same exclusion constraint), one autocommitted
    transaction each, from as many connections as clients."""
    sql = BARE_INSERT
    rate = Decimal("30.00")
    conns = [await psycopg.AsyncConnection.connect(url, autocommit=True) for _ in people]

    async def one(worker: int, i: int) -> None:
        person = people[i % len(people)]
        device_id, start, end = slot(i, devices, day)
        subsidy = Decimal("15.00") if person.subsidized else Decimal(0)
        await conns[worker].execute(
            sql,
            {
                "device_id": device_id,
                "organization_id": person.org_id,
                "user_id": person.user_id,
                "created_by": person.user_id,
                "start": start,
                "end": end,
                "purpose": "bench",
                "hourly_rate": rate,
                "gross": rate,
                "subsidy_program": PROGRAM if person.subsidized else None,
                "subsidy_share": Decimal("0.5") if person.subsidized else None,
                "subsidy": subsidy,
                "net": rate - subsidy,
                "override_reason": None,
                "now": NOW,
            },
        )

    try:
        return await drive(n, len(people), one, [c.info.backend_pid for c in conns])
    finally:
        for conn in conns:
            await conn.close()


async def clear_bookings(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("DELETE FROM booking")
        await conn.execute("VACUUM ANALYZE booking")


async def count_bookings(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return (await (await conn.execute("SELECT count(*) FROM booking WHERE status = 'confirmed'")).fetchone())[0]


BARE_INSERT = """
INSERT INTO booking (device_id, organization_id, user_id, created_by, during, purpose, hourly_rate, gross,
                     subsidy_program, subsidy_share, subsidy, net, override_reason, created_at)
VALUES (%(device_id)s, %(organization_id)s, %(user_id)s, %(created_by)s, tstzrange(%(start)s, %(end)s),
        %(purpose)s, %(hourly_rate)s, %(gross)s, %(subsidy_program)s, %(subsidy_share)s, %(subsidy)s, %(net)s,
        %(override_reason)s, %(now)s)
"""

# -- availability -----------------------------------------------------------------------------------------

WINDOW = {"start": DAY1, "end": DAY1 + timedelta(days=7)}


async def http_availability(server: Server, headers: dict[str, str], n: int, workers: int) -> Run:
    params = {"class": BENCH_CLASS, "from": WINDOW["start"].isoformat(), "to": WINDOW["end"].isoformat()}

    async def one(worker: int, i: int) -> None:
        r = await server.client.get(f"{API}/availability", params=params, headers=headers)
        if r.status_code != 200:
            raise SystemExit(f"availability: {r.status_code} {r.text}")

    return await server.drive(n, workers, one)


async def bare_availability(url: str, device_ids: list[str], n: int, workers: int) -> Run:
    """The route's one query with the app's parameters, read in binary as the app reads it."""
    sql = QUERIES.free_slots.sql
    origin = datetime.combine(WINDOW["start"].astimezone(ZONE).date(), datetime.min.time(), ZONE)
    params = {"device_ids": device_ids, **WINDOW, "zone": ZONE.key, "now": NOW}
    params |= {"step": GRID, "origin": origin, "min_length": MIN_BOOKING}
    conns = [await psycopg.AsyncConnection.connect(url, autocommit=True) for _ in range(workers)]

    async def one(worker: int, i: int) -> None:
        async with conns[worker].cursor(binary=True) as cur:
            await cur.execute(sql, params)
            await cur.fetchall()

    try:
        return await drive(n, workers, one, [c.info.backend_pid for c in conns])
    finally:
        for conn in conns:
            await conn.close()


# -- main -------------------------------------------------------------------------------------------------


def header(unit: str) -> None:
    print(f"  {'path':40} {'p50 ms':>8} {'p99 ms':>8} {unit:>10}   CPU ms per request: client / app / database")


def row(name: str, runs: list[Run]) -> float:
    p50, p99, rate = median_run(runs)
    cpu = (statistics.median(r.per_op(getattr(r, f"cpu_{k}")) for r in runs) for k in ("client", "app", "db"))
    client, app, db = (f"{c:5.2f}" for c in cpu)
    print(f"  {name:40} {p50:8.2f} {p99:8.2f} {rate:10,.0f}   {client} / {app if runs[0].cpu_app else '    -'} / {db}")
    return rate


def ratio(what: str, ours: list[Run], bare: list[Run]) -> None:
    o50, _, orate = median_run(ours)
    b50, _, brate = median_run(bare)
    print(f"  ratio HTTP / bare {what}: {orate / brate:.3f}   (p50 latency {o50 / b50:.1f}x the bare one)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=2000, help="bookings per round and path")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients, organizations and connections")
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2, help="booking rounds (bare, then HTTP)")
    parser.add_argument("--requests", type=int, default=200, help="availability requests per path and concurrency")
    parser.add_argument("--concurrent", type=int, default=8, help="concurrent availability clients (0: skip)")
    args = parser.parse_args()
    if args.bookings // args.devices * STEP > timedelta(days=WARMUP_DAY - 10):
        raise SystemExit("too many bookings per device: they would run into the warm-up bookings")

    started = time.perf_counter()
    cluster = PostgresCluster(timescaledb=True).start()
    proc = None
    tmp = tempfile.TemporaryDirectory(prefix="fabhub-bench-")
    try:
        url = cluster.create_database("bench")
        await migrate(url, timescaledb="require")
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("DELETE FROM opening_hours")
            await conn.execute("INSERT INTO opening_hours SELECT d, '00:00', '24:00' FROM generate_series(1, 7) d")
        devices_path = Path(tmp.name) / "devices.yaml"
        write_devices(devices_path, args.devices)
        device_ids = [f"bench-{i:02d}" for i in range(args.devices)]

        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        proc = multiprocessing.get_context("spawn").Process(
            target=run_server, args=(url, str(devices_path), port, args.clients), daemon=True
        )
        proc.start()
        await wait_healthy(base_url, proc)
        assert proc.pid is not None

        limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
        async with (
            AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool,
            httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client,
        ):
            await pool.open(wait=True)
            server = Server(url, client, proc.pid)
            people: list[Booker] = []
            for n in range(args.clients):
                subsidized = n % 2 == 0
                c = await customer(pool, client, programs=(PROGRAM,) if subsidized else (), classes=(BENCH_CLASS,))
                people.append(Booker(c.user_id, c.org_id, subsidized, c.headers))

            # Warm-up: the app's pool grows to its size, statements get prepared; then an empty table again.
            await http_bookings(server, people, 8 * args.clients, args.devices, day=WARMUP_DAY)
            await bare_bookings(url, people, 4 * args.clients, args.devices, day=WARMUP_DAY + 10)
            await clear_bookings(url)

            bare_runs: list[Run] = []
            http_runs: list[Run] = []
            for round_no in range(1, args.rounds + 1):
                bare_runs.append(await bare_bookings(url, people, args.bookings, args.devices))
                assert await count_bookings(url) == args.bookings
                await clear_bookings(url)
                http_runs.append(await http_bookings(server, people, args.bookings, args.devices))
                assert await count_bookings(url) == args.bookings
                if round_no < args.rounds:
                    await clear_bookings(url)
                b, h = bare_runs[-1], http_runs[-1]
                print(
                    f"round {round_no}: bare INSERT {b.rate:,.0f}/s (p50 {b.pct(50):.2f} ms), "
                    f"HTTP {h.rate:,.0f}/s (p50 {h.pct(50):.2f} ms), ratio {h.rate / b.rate:.3f}",
                    flush=True,
                )

            # Availability over the last round's bookings plus a maintenance window on every fifth device.
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute("ANALYZE booking")
                for device_id in device_ids[::5]:
                    await conn.execute(
                        "INSERT INTO maintenance_window (device_id, during, reason, created_at) "
                        "VALUES (%s, tstzrange(%s, %s), 'bench', %s)",
                        (device_id, DAY1 + timedelta(days=5, hours=10), DAY1 + timedelta(days=5, hours=16), NOW),
                    )
            headers = people[0].headers
            params = {"class": BENCH_CLASS, "from": WINDOW["start"].isoformat(), "to": WINDOW["end"].isoformat()}
            answer = await client.get(f"{API}/availability", params=params, headers=headers)
            intervals = sum(len(d["free"]) for d in answer.json()["devices"])
            await http_availability(server, headers, 10, 1)  # warm-up
            await bare_availability(url, device_ids, 10, 1)
            # Two halves per path, interleaved, so that a slow spell of the machine hits both paths.
            avail: dict[tuple[str, int], Run] = {}
            for workers in (1, args.concurrent) if args.concurrent else (1,):
                half = args.requests // 2
                for _ in range(2):
                    for key, run in (
                        (("bare", workers), await bare_availability(url, device_ids, half, workers)),
                        (("http", workers), await http_availability(server, headers, half, workers)),
                    ):
                        avail[key] = avail[key] + run if key in avail else run

        print()
        print(
            f"booking creation: {args.bookings:,} bookings per round and path, {args.clients} concurrent clients for "
            f"{args.clients} organizations, app pool {args.clients}, {args.devices} devices, medians of "
            f"{args.rounds} round(s)"
        )
        header("booking/s")
        row(f"bare INSERT, {args.clients} connections", bare_runs)
        row("POST /api/v1/bookings", http_runs)
        ratio("throughput", http_runs, bare_runs)
        print()
        print(
            f"availability: class {BENCH_CLASS}, {args.devices} devices x 7 days holding {args.bookings:,} bookings "
            f"and {len(device_ids[::5])} maintenance windows: {intervals:,} free intervals, "
            f"{len(answer.content) / 1024:,.0f} KiB of JSON; {args.requests} requests per line"
        )
        header("req/s")
        for workers in (1, args.concurrent) if args.concurrent else (1,):
            label = "sequential" if workers == 1 else f"{workers} concurrent"
            row(f"bare free-slots query, {label}", [avail["bare", workers]])
            row(f"GET /api/v1/availability, {label}", [avail["http", workers]])
            ratio(f"throughput, {label}", [avail["http", workers]], [avail["bare", workers]])
        print()
        load = os.getloadavg()[0]
        print(f"({time.perf_counter() - started:.0f} s in all; load average {load:.1f} on {os.cpu_count()} CPUs)")
    finally:
        if proc is not None and proc.is_alive():
            proc.terminate()
            proc.join(15)
            if proc.is_alive():
                proc.kill()
                proc.join()
        tmp.cleanup()
        cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
