"""Scale-out benchmark: samples per second from a site gateway's publish sink through Mosquitto to 1, 2 and 4
`fabhub ingest` worker processes into TimescaleDB, beside the single-process path (the gateway's writer straight
to the database) and bare binary COPY, in the same run. Prints each path's rate, its ratios to bare COPY and to
the single process, the p99 lag from a sample's time to the commit of its row, where the CPU went, and so which
limit was reached: the machine's cores, one process (the broker, a worker, the gateway), or neither.

Why these three: the single process is what a site with database credentials runs; publishing is what a site
with only outbound MQTT runs, and its cost over the single process is the price of that (JSON on the wire, the
broker, acknowledging after commit). Bare COPY is the floor both are held to (bench/ingest.py compares the writer
with it in detail).

The producer stands in for the gateway's adapters and normalizer (bench/gateway_paths.py measures those): each
tick it stamps every device's 25 signals with the wall clock and submits them to the sink, as fast as the sink
takes them (rate), then again paced at `--lag-load` of this round's single-process rate (lag: a saturated path's
lag only says how big its buffers are). The devices are the 200 of bench/center.py's devices.yaml, which the
workers load as `fabhub ingest` does.

Times come from the database (track_commit_timestamp), so waiting for the rows costs nothing measured: a path's
rate is the rows committed after its first transaction over the time from that commit to its last (sustained
throughput: the wait for the first commit, filling the pipeline, is latency, and each path pays it), and a row's
lag is its commit time minus its sample time. Each path first stores two ticks unmeasured: registering 5,000 new
series happens once in a process's life, and took the first transactions tenths of a second. Each
published configuration gets a fresh broker, so no persistent session of an earlier configuration's workers
holds a share of the messages.

    .venv/bin/python bench/scale.py [--samples 500000] [--workers 1,2,4] [--rounds 2] [--lag-seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import psutil
import psycopg
from center import _cpu_seconds, _environment, _fabhub, _postmaster, _spawn, _stop, _tail, _tree, write_devices
from ingest import BARE_TABLE, bare_copy, make_samples, reset

from fabhub.catalogue import settle_catalogue
from fabhub.database import make_pool
from fabhub.devices import load_devices
from fabhub.devservices import Mosquitto, PostgresCluster
from fabhub.migrations import migrate
from fabhub.settings import Settings
from gateway.central import CentralLink
from gateway.publish import Publisher
from gateway.spool import Spool
from telemetry import BatchWriter, Sample

SIGNALS = [f"signal_{s:02d}" for s in range(25)]
SITE = "bench"
BROKER_CONF = ("max_queued_messages 0",)  # as README asks of a central broker: keep every message
WARMUP_TICKS = 2
SAMPLE_S = 0.1  # how often the machine's CPU is sampled for saturation
POLL_S = 0.05  # how often the rows are counted: the CPU figures' window ends up to this late
STALL_S = 30.0  # no new row for this long: the path lost messages (see the broker's log), fail rather than wait
STORED_SQL = """
WITH c AS (SELECT pg_xact_commit_timestamp(xmin) AS at, time FROM telemetry_sample)
SELECT min(at), max(at), count(*) FILTER (WHERE at = (SELECT min(at) FROM c)),
       percentile_disc(0.99) WITHIN GROUP (ORDER BY at - time)
FROM c"""


class Sink(Protocol):
    """The gateway's writer or its publisher, as the producer sees them."""

    async def submit(self, items: list[Sample]) -> None: ...

    async def flush(self) -> None: ...


@dataclass(frozen=True)
class Run:
    rate: float  # samples/s, sustained (see the module docstring)
    lag_p99: float  # seconds, in the paced phase
    cpu: Usage  # in the rate phase
    cpu_us: dict[str, float]  # role -> CPU microseconds per sample, in the rate phase


# -- producing and counting ------------------------------------------------------------------------------


def stamps() -> Iterator[datetime]:
    """Wall-clock times, each later than the last: a sample's identity includes its time."""
    last = datetime.min.replace(tzinfo=UTC)
    while True:
        last = max(datetime.now(UTC), last + timedelta(microseconds=1))
        yield last


async def produce(sink: Sink, devices: list[str], ticks: int, per_second: float | None = None) -> datetime:
    """Submit `ticks` ticks (paced to `per_second` if given) and flush; returns the first tick's time."""
    loop, clock = asyncio.get_running_loop(), stamps()
    started, first = loop.time(), None
    for n in range(ticks):
        if per_second is not None:
            await asyncio.sleep(max(0.0, started + n / per_second - loop.time()))
        when = next(clock)
        first = first or when
        value = float(n % 1000) + 0.5
        await sink.submit([Sample(when, d, s, value, 0) for d in devices for s in SIGNALS])
    await sink.flush()
    assert first is not None
    return first


async def committed(url: str, want: int, started: datetime) -> tuple[float, float]:
    """Wait for `want` rows; then the rate (samples/s, see the module docstring; from `started`, the first
    submit, when all came in one transaction) and the p99 lag (s). Fails on a stall or a duplicate."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        seen, since = -1, time.monotonic()
        while True:
            row = await (await conn.execute("SELECT count(*) FROM telemetry_sample")).fetchone()
            assert row is not None
            if row[0] > want:
                raise SystemExit(f"{row[0]:,} rows for {want:,} samples: something was stored twice")
            if row[0] == want:
                break
            if row[0] != seen:
                seen, since = row[0], time.monotonic()
            elif time.monotonic() - since > STALL_S:
                raise SystemExit(f"rows stopped at {seen:,} of {want:,}: messages lost on the way?")
            await asyncio.sleep(POLL_S)
        first, last, in_first, p99 = await (await conn.execute(STORED_SQL)).fetchone()  # type: ignore[misc]
    if last > first:
        return (want - in_first) / (last - first).total_seconds(), p99.total_seconds()
    return want / (last - started).total_seconds(), p99.total_seconds()


async def truncate(url: str) -> None:
    """Between the phases of one configuration: its writers keep their registered series."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("TRUNCATE telemetry_sample")


# -- CPU ---------------------------------------------------------------------------------------------------


def busy_seconds() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


@dataclass(frozen=True)
class Usage:
    percent: dict[str, float]  # role -> % of one core, and "others": the rest of the machine
    seconds: dict[str, float]  # role -> CPU seconds
    busiest: tuple[str, float]  # the process nearest a full core: (its role, %)
    machine: float  # the whole machine, % of one core
    saturated: float  # share of the time the whole machine was at least 90 % busy


class CpuWatch:
    """CPU of each role's processes and of the whole machine from `start()` to `stop()`, and how much of that
    time the machine was saturated (sampled every SAMPLE_S: an average over a phase whose end has one
    process working alone hides that the machine was full while all of them worked)."""

    def __init__(self, roles: dict[str, list[psutil.Process]]) -> None:
        self.roles = roles
        self._samples: list[float] = []

    def _read(self) -> dict[str, dict[int, float]]:
        return {role: _cpu_seconds(procs) for role, procs in self.roles.items()}

    def start(self) -> CpuWatch:
        self.before, self.machine_before, self.t0 = self._read(), busy_seconds(), time.monotonic()
        self._sampler = asyncio.create_task(self._sample())
        return self

    async def _sample(self) -> None:
        last, at = busy_seconds(), time.monotonic()
        while True:
            await asyncio.sleep(SAMPLE_S)
            busy, now = busy_seconds(), time.monotonic()
            self._samples.append(100 * (busy - last) / (now - at))
            last, at = busy, now

    def stop(self) -> Usage:
        self._sampler.cancel()
        after, machine, wall = self._read(), busy_seconds(), time.monotonic() - self.t0
        seconds: dict[str, float] = {}
        busiest = ("", 0.0)
        for role, pids in after.items():
            spent = {pid: t - self.before[role].get(pid, 0.0) for pid, t in pids.items()}
            seconds[role] = sum(spent.values())
            busiest = max(busiest, (role, 100 * max(spent.values(), default=0.0) / wall), key=lambda b: b[1])
        total = 100 * (machine - self.machine_before) / wall
        percent = {role: 100 * s / wall for role, s in seconds.items()}
        percent["others"] = max(0.0, total - sum(percent.values()))  # processes not of this benchmark
        full = 90 * (psutil.cpu_count() or 1)
        saturated = sum(p >= full for p in self._samples) / len(self._samples) if self._samples else 0.0
        return Usage(percent, seconds, busiest, total, saturated)


# -- the paths ---------------------------------------------------------------------------------------------


@dataclass
class Rig:
    url: str
    cluster: PostgresCluster
    devices: list[str]
    devices_file: Path
    tmp: Path
    args: argparse.Namespace

    @property
    def ticks(self) -> int:
        return max(1, self.args.samples // (len(self.devices) * len(SIGNALS)))

    @property
    def samples(self) -> int:
        return self.ticks * len(self.devices) * len(SIGNALS)

    def database(self) -> list[psutil.Process]:
        pid = _postmaster(self.cluster)
        return _tree(pid) if pid is not None else []

    async def measure(self, sink: Sink, roles: dict[str, list[psutil.Process]], lag_rate: float | None) -> Run:
        """A warm-up, the rate phase, then the lag phase paced at `lag_rate` samples/s (None: `--lag-load` of
        this rate). The warm-up registers the series and opens the connections, once in a process's life."""
        per_tick = len(self.devices) * len(SIGNALS)
        await committed(self.url, WARMUP_TICKS * per_tick, await produce(sink, self.devices, WARMUP_TICKS))
        await truncate(self.url)
        watch = CpuWatch(roles).start()
        started = await produce(sink, self.devices, self.ticks)
        rate, _ = await committed(self.url, self.samples, started)
        cpu = watch.stop()
        cpu_us = {role: 1e6 * s / self.samples for role, s in cpu.seconds.items()}
        await truncate(self.url)
        offered = lag_rate if lag_rate is not None else self.args.lag_load * rate
        ticks = max(2, round(offered * self.args.lag_seconds / per_tick))
        started = await produce(sink, self.devices, ticks, per_second=offered / per_tick)
        _, lag = await committed(self.url, ticks * per_tick, started)
        return Run(rate, lag, cpu, cpu_us)

    async def single_process(self) -> Run:
        """The gateway's writer as `fabhub gateway` builds it (settings' defaults, a spool for outages)."""
        settings = Settings()
        pool = make_pool(self.url, settings)
        await pool.open(wait=True)
        known = set(self.devices).__contains__
        writer = BatchWriter(
            pool,
            batch_size=self.args.batch_size,
            max_age=settings.batch_max_age_s,
            known_device=known,
            overflow=Spool(self.tmp / "spool-single"),
        )
        await writer.start()
        try:
            roles = {"gateway": [psutil.Process()], "database": self.database()}
            return await self.measure(writer, roles, None)
        finally:
            await writer.close()
            await pool.close()

    async def published(self, workers: int, lag_rate: float) -> Run:
        """Publisher -> a fresh Mosquitto -> `workers` `fabhub ingest` processes -> the database."""
        broker = Mosquitto(extra=tuple(self.args.broker_conf)).start()
        procs = []
        publisher: Publisher | None = None
        try:
            procs = [await self.start_worker(broker, n, workers) for n in range(workers)]
            link = CentralLink.from_url(f"{broker.url}/{SITE}", f"bench-gateway-{workers}")
            spool = Spool(self.tmp / f"spool-{workers}")
            publisher = Publisher(link, SITE, spool, batch_size=self.args.batch_size)
            await publisher.start()
            roles = {
                "gateway": [psutil.Process()],
                "broker": [psutil.Process(broker.pid)],
                "workers": [p for proc in procs for p in _tree(proc.pid)],
                "database": self.database(),
            }
            try:
                return await self.measure(publisher, roles, lag_rate)
            except SystemExit:
                logs = "\n".join(_tail(self.tmp / f"ingest-{workers}-{n}.log", 15) for n in range(workers))
                print(f"{workers} workers: publisher {publisher.stats}, spool {spool.stats}\n{logs}", flush=True)
                raise
        finally:
            if publisher is not None:
                await publisher.close()
            for proc in procs:
                await _stop(proc)
            broker.stop()

    async def start_worker(self, broker: Mosquitto, n: int, of: int) -> subprocess.Popen[bytes]:
        """`fabhub ingest` with a client id of its own; returns once the broker confirmed its subscription."""
        log = self.tmp / f"ingest-{of}-{n}.log"
        env = _environment(
            {},
            database_url=self.url,
            ingest_url=broker.url,
            mqtt_client_id=f"bench-ingest-{of}-{n}",
            devices=str(self.devices_file),
            data_dir=str(self.tmp / "data"),
            batch_size=str(self.args.batch_size),
        )
        log.unlink(missing_ok=True)  # an earlier round's "subscribed" line must not count
        proc = _spawn([_fabhub(), "ingest"], env, log)
        deadline = time.monotonic() + 60
        while "subscribed to" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"fabhub ingest did not subscribe:\n{_tail(log)}")
            await asyncio.sleep(0.1)
        return proc


# -- the report ----------------------------------------------------------------------------------------------


def median_run(runs: list[Run]) -> Run:
    """Median rate and lag; the CPU figures of the run whose rate is the lower median."""
    ordered = sorted(runs, key=lambda r: r.rate)
    return replace(
        ordered[(len(ordered) - 1) // 2],
        rate=statistics.median(r.rate for r in runs),
        lag_p99=statistics.median(r.lag_p99 for r in runs),
    )


def limit(cpu: Usage, cores: int) -> str:
    role, pct = cpu.busiest
    if cpu.saturated >= 0.5:
        return (
            f"the machine's {cores} cores: at least 90 % busy {cpu.saturated:.0%} of the time (other processes"
            f" took {cpu.percent['others']:.0f} % of a core; busiest of ours: {role} {pct:.0f} %)"
        )
    if pct >= 90:
        return f"one process: {role} at {pct:.0f} % of a core"
    return (
        f"no CPU limit (machine saturated {cpu.saturated:.0%} of the time, busiest process {role} {pct:.0f} %):"
        " acknowledgement and commit round trips"
    )


def report(rig: Rig, bare: list[float], single: list[Run], published: dict[int, list[Run]]) -> None:
    args, cores = rig.args, psutil.cpu_count() or 1
    b, s = statistics.median(bare), median_run(single)
    print(
        f"scale-out, medians of {args.rounds} rounds, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {rig.samples:,} samples"
        f" a path ({len(rig.devices)} devices x {len(SIGNALS)} signals a tick), batch {args.batch_size}; lag at"
        f" {args.lag_load:.0%} of the single process's rate for {args.lag_seconds:g} s"
    )
    print(f"{'path':32} {'samples/s':>10} {'/ bare':>7} {'/ single':>8} {'p99 lag':>8}")
    print(f"{'bare binary COPY':32} {b:>10,.0f} {1:>7.2f}")
    rows = [("single process (gateway writer)", s)]
    rows += [(f"published, {k} ingest worker{'s' if k > 1 else ''}", median_run(runs)) for k, runs in published.items()]
    for name, run in rows:
        print(f"{name:32} {run.rate:>10,.0f} {run.rate / b:>7.2f} {run.rate / s.rate:>8.2f} {run.lag_p99:>6.2f} s")
    print("CPU in the rate phase, us a sample (% of one core):")
    for name, run in rows:
        parts = ", ".join(f"{role} {us:.1f} ({run.cpu.percent[role]:.0f} %)" for role, us in run.cpu_us.items())
        print(f"  {name:32} {sum(run.cpu_us.values()):4.1f} us: {parts}; others {run.cpu.percent['others']:.0f} %")
    print("limit reached:")
    for name, run in rows:
        print(f"  {name:32} {limit(run.cpu, cores)}")
    if 1 in published:
        one = median_run(published[1]).rate / s.rate
        print(f"ratio 1 ingest worker / single process: {one:.2f}  (goal >= 0.70)")
    print(f"        (broker: mosquitto with {'; '.join(args.broker_conf)})")


async def rounds(rig: Rig) -> None:
    args = rig.args
    bare_rows = make_samples(rig.samples)
    bare: list[float] = []
    single: list[Run] = []
    published: dict[int, list[Run]] = {k: [] for k in args.workers}
    for round_no in range(1, args.rounds + 1):
        await reset(rig.url)
        bare.append(rig.samples / await bare_copy(rig.url, bare_rows, args.batch_size))
        await reset(rig.url)
        single.append(await rig.single_process())
        lag_rate = args.lag_load * single[-1].rate
        for k in args.workers:
            await reset(rig.url)
            published[k].append(await rig.published(k, lag_rate))
        figures = ", ".join(f"{k} workers {runs[-1].rate:,.0f}" for k, runs in published.items())
        print(
            f"round {round_no}: bare COPY {bare[-1]:,.0f}, single process {single[-1].rate:,.0f}, {figures}", flush=True
        )
    report(rig, bare, single, published)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--samples", type=int, default=500_000, help="samples per path and round (whole ticks)")
    parser.add_argument("--workers", default="1,2,4", help="ingest worker counts to run")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--lag-seconds", type=float, default=5.0, help="length of each paced lag phase")
    parser.add_argument("--lag-load", type=float, default=0.5, help="lag phase's rate, share of the single process's")
    parser.add_argument(
        "--broker-conf",
        action="append",
        default=list(BROKER_CONF),
        metavar="LINE",
        help=f"a mosquitto.conf line (repeatable), after {'; '.join(BROKER_CONF)}",
    )
    args = parser.parse_args()
    args.workers = [int(k) for k in args.workers.split(",")]
    return args


async def main() -> None:
    args = parse()
    cluster = PostgresCluster(settings={"track_commit_timestamp": "on"}).start()
    try:
        with tempfile.TemporaryDirectory(prefix="fabhub-scale-") as folder:
            tmp = Path(folder)
            layout = write_devices(tmp / "devices.yaml", set(), lan_printers=0)
            url = cluster.create_database("bench")
            await migrate(url, timescaledb="require")
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute(BARE_TABLE)
                # the deploy step's catalogue, which `fabhub ingest` checks its devices.yaml against
                await settle_catalogue(conn, load_devices(layout.path), datetime.now(UTC), write=True)
            rig = Rig(url, cluster, sorted(layout.protocol), layout.path, tmp, args)
            await rounds(rig)
    finally:
        cluster.stop()


if __name__ == "__main__":
    os.environ.pop("FABHUB_DATABASE_URL", None)  # Settings() is the gateway's defaults, not this shell's database
    asyncio.run(main())
