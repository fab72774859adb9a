"""Live board benchmark: how long a machine's state change takes to reach the technicians' screens, with 50
browsers on the board, against the bare transport floor in the same run, ratio printed. The board is the
one view that must be live (a down robot has to show within a second); this says whether it is, and how
much of the delay is ours rather than the event stream's.

- Ours: the real app (tests/http.py `serve`, gateway on) reading two Modbus robot simulators (robot-01 and
  robot-02 from devices.yaml, speed 0, polled every P ms, default as shipped) with C clients (default 50) logged in
  as a technician on GET /board/events. A change is `force` on a simulator, the clock read right before
  `await sim.tick(0)` publishes its registers; a client's latency ends when the `samples` event carrying
  the new `state` arrives. It includes the wait for the gateway's next poll (0 to P ms, P/2 on average),
  then normalizer, the writer's batch (up to FABHUB_BATCH_MAX_AGE_S) and its commit with the NOTIFY, the
  app's LISTEN connection, LiveHub fan-out, the board's stream and the socket: the path of every app
  process, the gateway's own included.
- Bare: a tiny Starlette app on uvicorn whose sse-starlette endpoint waits on one asyncio queue per client;
  the publisher puts the same one-sample batch on the C queues directly (no gateway, simulator or database).

Changes alternate between the robots, each cycling running -> down -> idle, one at a time: the next is made
once every client has the last one (or 5 s passed: counted as missing), after a random pause of 0 to P ms
so that changes fall at any point of the poll cycle. A few warm-up changes per path are not counted. The two
paths run one after the other: two uvicorn servers with open sse-starlette streams in one loop would share
its shutdown watcher, so stopping one would cut the other's streams.

The clients run in a child process, the servers and simulators in this one. In one process the clients'
reading and parsing would queue in the same event loop as the server's 50 writes and the gateway, and
count as server latency; apart, they use the second core. Both record `time.perf_counter()`, which is
CLOCK_MONOTONIC on Linux, one clock for the whole machine, so the child's arrival times and this
process's change times compare directly.

    .venv/bin/python bench/live.py [--clients 50] [--changes 150] [--poll-ms MS]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as a script, this file's folder is on sys.path, the repository (for the tests' rigs) is not.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx
from psycopg_pool import AsyncConnectionPool
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from accounts.auth import SESSION_COOKIE
from accounts.model import Role
from fabhub.devices import load_devices
from fabhub.devservices import PostgresCluster
from fabhub.migrations import migrate
from simulators.modbus_robot import ModbusRobot
from tests.accounts_rig import login, make_user
from tests.gateway_rig import devices_for, robot
from tests.http import serve, serving

ROBOTS = ("robot-01", "robot-02")
CYCLE = ("running", "down", "idle")  # the robots start idle
WARMUP = 2 * len(ROBOTS)  # changes per path not counted
MISSING_AFTER = 5.0  # seconds a client may take before its sample counts as missing
TECHNICIAN = "bench-technician@center.example"
GOAL_MS = 1000.0

# -- the clients (child process) ----------------------------------------------------------------------------


class Listeners:
    """C event streams; for the one expected (device, state) each remembers when it first arrived."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.hellos = 0
        self.ready = asyncio.Event()
        self.expected: tuple[str, str] | None = None
        self.arrivals: list[float | None] = [None] * n
        self.got = 0
        self.complete = asyncio.Event()

    def expect(self, device: str, state: str) -> None:
        self.arrivals, self.got = [None] * self.n, 0
        self.complete.clear()
        self.expected = (device, state)

    def data(self, i: int, event: str | None, data: str, now: float) -> None:
        if event == "hello":
            self.hellos += 1
            if self.hellos == self.n:
                self.ready.set()
        elif event == "samples" and self.expected is not None and self.arrivals[i] is None:
            for device, signal, value, _ in json.loads(data):
                if signal == "state" and (device, value) == self.expected:
                    self.arrivals[i] = now
                    self.got += 1
                    if self.got == self.n:
                        self.complete.set()
                    break

    async def listen(self, client: httpx.AsyncClient, url: str, i: int) -> None:
        async with client.stream("GET", url) as response:
            response.raise_for_status()
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                raise RuntimeError(f"{url} answered {response.headers.get('content-type')}, not an event stream")
            event: str | None = None
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    self.data(i, event, line[5:].strip(), time.perf_counter())
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif not line:
                    event = None
        raise RuntimeError(f"client {i}: the server closed the stream")


async def stdin_line() -> str:
    return await asyncio.to_thread(sys.stdin.readline)


def answer(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


async def clients_main(url: str, n: int) -> None:
    """The child: first stdin line the session token ('-' for none); prints `ready` once every stream said
    hello; then per `expect DEVICE STATE` line prints `ok`, and the arrival times as JSON once all have it."""
    token = (await stdin_line()).strip()
    headers = {"Cookie": f"{SESSION_COOKIE}={token}"} if token != "-" else {}
    listeners = Listeners(n)
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(10, read=None), limits=limits) as client:
        tasks = [asyncio.create_task(listeners.listen(client, url, i)) for i in range(n)]

        async def watched(aw: Awaitable[object], wait_s: float | None = None) -> None:
            """Wait for `aw`, failing at once if a stream fails."""
            waiting = asyncio.ensure_future(aw)
            done, _ = await asyncio.wait([waiting, *tasks], timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task in done:
                    task.result()
            if waiting not in done:
                waiting.cancel()

        try:
            await watched(listeners.ready.wait(), 60)
            if not listeners.ready.is_set():
                raise RuntimeError(f"only {listeners.hellos} of {n} streams said hello within 60 s")
            answer("ready")
            while (line := (await stdin_line()).split()) and line[0] == "expect":
                listeners.expect(line[1], line[2])
                answer("ok")
                await watched(listeners.complete.wait(), MISSING_AFTER)
                listeners.expected = None
                answer(json.dumps(listeners.arrivals))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class Clients:
    """The parent's handle on the child process of clients."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str, n: int, token: str | None) -> AsyncIterator[Clients]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--client-of", url, "--clients", str(n),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        clients = cls(proc)
        try:
            await clients.send(token or "-")
            await clients.reply("ready", 90)
            yield clients
        finally:
            if proc.returncode is None:
                with contextlib.suppress(OSError):
                    await clients.send("quit")
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def reply(self, expected: str | None = None, wait_s: float = 30) -> str:
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), wait_s)).decode().strip()
        if not line or (expected is not None and line != expected):
            await self.proc.wait()
            raise SystemExit(f"the clients' process answered {line!r} (exit code {self.proc.returncode})")
        return line

    async def expect(self, device: str, state: str) -> None:
        await self.send(f"expect {device} {state}")
        await self.reply("ok")

    async def arrivals(self) -> list[float | None]:
        return json.loads(await self.reply(None, MISSING_AFTER + 30))


# -- measuring ----------------------------------------------------------------------------------------------

Trigger = Callable[[str, str], Awaitable[float]]  # makes the change, returns the clock read just before it


def plan(changes: int) -> list[tuple[str, str]]:
    """(device, state) per change: the robots in turn, each cycling through CYCLE."""
    n = len(ROBOTS)
    return [(ROBOTS[k % n], CYCLE[(k // n) % len(CYCLE)]) for k in range(WARMUP + changes)]


async def measure(clients: Clients, changes: int, pause_s: float, trigger: Trigger) -> tuple[list[float], int]:
    """Latencies in seconds of the counted changes, one per client each, and how many never arrived."""
    latencies: list[float] = []
    missing = 0
    for k, (device, state) in enumerate(plan(changes)):
        await asyncio.sleep(random.uniform(0, pause_s))
        await clients.expect(device, state)
        started = await trigger(device, state)
        arrivals = await clients.arrivals()
        if k >= WARMUP:
            latencies += [t - started for t in arrivals if t is not None]
            missing += sum(t is None for t in arrivals)
        elif None in arrivals:
            raise SystemExit(f"warm-up change {k} ({device} -> {state}) did not reach every client")
    return latencies, missing


def pct(latencies: list[float], q: int) -> float:
    """The q-th percentile in milliseconds."""
    return statistics.quantiles(latencies, n=100, method="inclusive")[q - 1] * 1000


# -- the bare fan-out ---------------------------------------------------------------------------------------


def bare_app(queues: set[asyncio.Queue[list[list[str]]]]) -> Starlette:
    """One sse-starlette endpoint: hello, then whatever its queue gets, formatted as the board does."""

    async def events(request: Request) -> EventSourceResponse:
        async def stream() -> AsyncIterator[ServerSentEvent]:
            queue: asyncio.Queue[list[list[str]]] = asyncio.Queue(512)
            queues.add(queue)
            try:
                yield ServerSentEvent(event="hello", data="{}", retry=1000)
                while True:
                    yield ServerSentEvent(event="samples", data=json.dumps(await queue.get()))
            finally:
                queues.discard(queue)

        return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})

    return Starlette(routes=[Route("/events", events)])


async def bare_run(n: int, changes: int, pause_s: float) -> tuple[list[float], int]:
    queues: set[asyncio.Queue[list[list[str]]]] = set()

    async def publish(device: str, state: str) -> float:
        started = time.perf_counter()
        batch = [[device, "state", state, datetime.now(UTC).isoformat()]]
        for queue in queues:
            queue.put_nowait(batch)
        return started

    async with serving(bare_app(queues)) as base, Clients.connect(f"{base}/events", n, None) as clients:
        return await measure(clients, changes, pause_s, publish)


# -- simulator -> gateway -> board --------------------------------------------------------------------------


async def gateway_run(url: str, n: int, changes: int, poll: timedelta, data_dir: Path) -> tuple[list[float], int]:
    sims: dict[str, ModbusRobot] = {}
    try:
        for seed, device in enumerate(ROBOTS, 1):
            sims[device] = sim = robot(device, seed)
            sim.machine.force("idle", 3600)
            await sim.tick(0)
            await sim.start()
        overrides = {d: {"modbus": {"poll_interval": poll}} for d in ROBOTS}
        devices = devices_for(list(ROBOTS), {d: s.port for d, s in sims.items()}, overrides)

        async def change(device: str, state: str) -> float:
            sim = sims[device]
            sim.machine.force(state, 3600)
            started = time.perf_counter()
            await sim.tick(0)
            return started

        async with serve(url, devices, run_gateway=True, data_dir=data_dir, timescaledb="require") as client:
            async with AsyncConnectionPool(url, min_size=1, max_size=1, open=False) as pool:
                await pool.open(wait=True)
                await make_user(pool, Role.technician, email=TECHNICIAN)
            token = (await login(client, TECHNICIAN))["Authorization"].removeprefix("Bearer ")
            events = str(client.base_url.join("/board/events"))
            async with Clients.connect(events, n, token) as clients:
                return await measure(clients, changes, poll.total_seconds(), change)
    finally:
        for sim in sims.values():
            await sim.stop()


# -- main ---------------------------------------------------------------------------------------------------


def row(name: str, latencies: list[float]) -> None:
    print(f"  {name:42} {pct(latencies, 50):8.1f} {pct(latencies, 99):8.1f} {max(latencies) * 1000:8.1f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50, help="event-stream clients on each path")
    parser.add_argument("--changes", type=int, default=150, help="state changes counted per path")
    parser.add_argument("--poll-ms", type=int, help="the robots' Modbus poll interval (default: devices.yaml's)")
    parser.add_argument("--client-of", help=argparse.SUPPRESS)  # the child process: the clients of this URL
    args = parser.parse_args()
    if args.client_of:
        await clients_main(args.client_of, args.clients)
        return

    started = time.perf_counter()
    if args.poll_ms is None:
        shipped = {d.id: d for d in load_devices(REPO / "devices.yaml").devices}[ROBOTS[0]].modbus.poll_interval
        args.poll_ms = int(shipped.total_seconds() * 1000)
    poll = timedelta(milliseconds=args.poll_ms)
    cluster = PostgresCluster(timescaledb=True).start()
    tmp = tempfile.TemporaryDirectory(prefix="fabhub-bench-")
    try:
        url = cluster.create_database("bench")
        await migrate(url, timescaledb="require")
        # Bare first, on its own: see the module docstring for why not side by side.
        bare, bare_missing = await bare_run(args.clients, args.changes, poll.total_seconds())
        print(f"bare: p50 {pct(bare, 50):.1f} ms, p99 {pct(bare, 99):.1f} ms", flush=True)
        ours, missing = await gateway_run(url, args.clients, args.changes, poll, Path(tmp.name))
        print(f"gateway: p50 {pct(ours, 50):.1f} ms, p99 {pct(ours, 99):.1f} ms", flush=True)
    finally:
        tmp.cleanup()
        cluster.stop()

    print()
    what = f"{args.clients} SSE clients, robots polled every {args.poll_ms} ms, {args.changes} state changes"
    print(f"live board: {what}")
    print(f"  {'path':42} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    row(f"bare SSE fan-out (queue -> {args.clients} clients)", bare)
    row(f"simulator -> gateway -> SSE ({args.clients} clients)", ours)
    p99 = pct(ours, 99)
    print(
        f"  ratio p50 {pct(ours, 50) / pct(bare, 50):.1f}  p99 {p99 / pct(bare, 99):.1f}   "
        f"goal: p99 < {GOAL_MS:.0f} ms ({'met' if p99 < GOAL_MS else 'MISSED'})"
    )
    print(
        f"  (the gateway path includes the wait for the next Modbus poll: 0-{args.poll_ms} ms, "
        f"{args.poll_ms / 2:.0f} ms on average; samples missing after {MISSING_AFTER:.0f} s: "
        f"bare {bare_missing}, gateway {missing})"
    )
    print(
        f"  ({', '.join(ROBOTS)} in turn, after {WARMUP} warm-up changes per path; {args.clients} latencies per "
        "change, one per client, from just before the change to the sample's arrival)"
    )
    load = os.getloadavg()[0]
    print(f"({time.perf_counter() - started:.0f} s in all; load average {load:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    asyncio.run(main())
