"""Stateless app processes: device health lives in a table the gateways write, and the live board follows
the database through LISTEN/NOTIFY, so every app process, with a gateway or without, shows what any gateway
reported. Two real apps on one database, served over HTTP; the gateway in one of them, or a `fabhub gateway`
process of its own. Nothing here waits for a fixed time: it waits, generously, for what must arrive, and
checks the order it arrived in."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

from accounts.model import Role
from fabhub.devices import DeviceFile, load_devices
from fabhub.devservices import free_port
from telemetry import BatchWriter, Sample
from telemetry.live import CHANNEL, PAYLOAD_LIMIT, TEXT_ANNOUNCED, decode
from tests.accounts_rig import login, make_user
from tests.gateway_rig import devices_for, eventually, running_robot
from tests.http import REPO, SECRET, app_for, serving

TECHNICIAN = "tech@center.example"
# Rounds long enough that a loaded machine never makes a reporting gateway look silent.
STEADY = {"health_every_s": 0.5, "health_stale_rounds": 10}
# Short rounds, for the test that waits for a silent gateway to be noticed.
QUICK = {"health_every_s": 0.25, "health_stale_rounds": 4}


class BoardStream:
    """A technician's board event stream, read in the background: every sample it was sent, in order."""

    def __init__(self) -> None:
        self.samples: list[list[Any]] = []
        self.hello = asyncio.Event()

    def states(self, device_id: str, after: int = 0) -> list[str]:
        """The device's states from the `after`th sample on, a repeat of the same state once (a gateway's
        heartbeat repeats the state; so may a listener reading the latest values back)."""
        found: list[str] = []
        for s in self.samples[after:]:
            if s[:2] == [device_id, "state"] and found[-1:] != [s[2]]:
                found.append(s[2])
        return found

    def saw(self, device_id: str, signal: str, value: object) -> bool:
        return any(s[:3] == [device_id, signal, value] for s in self.samples)

    async def read(self, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", "/board/events", headers={"Accept": "text/event-stream"}) as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if line.startswith("event: hello"):
                    self.hello.set()
                elif line.startswith("data: ") and line != "data: {}":
                    self.samples += json.loads(line.removeprefix("data: "))


@dataclass
class AppProcess:
    app: Any
    client: httpx.AsyncClient  # a technician's
    board: BoardStream


@contextlib.asynccontextmanager
async def app_process(db_url: str, devices: DeviceFile | None, tmp: Path, **settings: Any) -> AsyncIterator[AppProcess]:
    """An app process as a load balancer would see it (no gateway unless asked), served over HTTP, with a
    technician's client (the user exists: see `technician`) and its board's event stream open."""
    app = app_for(db_url, devices, data_dir=tmp, **settings)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        token = (await login(client, TECHNICIAN))["Authorization"].removeprefix("Bearer ")
        client.cookies.set("fabhub_session", token)
        client.headers["Authorization"] = f"Bearer {token}"
        board = BoardStream()
        reading = asyncio.create_task(board.read(client))
        try:
            await asyncio.wait_for(board.hello.wait(), 30)
            yield AppProcess(app, client, board)
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading


async def technician(pool) -> None:
    await make_user(pool, Role.technician, email=TECHNICIAN)


async def device(client: httpx.AsyncClient, device_id: str) -> dict[str, Any]:
    r = await client.get(f"/api/v1/devices/{device_id}")
    assert r.status_code == 200, r.text
    return r.json()


async def connection_is(client: httpx.AsyncClient, device_id: str, connection: str) -> bool:
    return (await device(client, device_id))["connection"] == connection


async def test_a_change_a_gateway_writes_reaches_the_boards_of_every_app_process(db_url, pool, tmp_path):
    """A runs the gateway, B does not: both boards get the robot's states in the order it went through them."""
    await technician(pool)
    sim = await running_robot("robot-01")
    await sim.start()
    try:
        devices = devices_for(["robot-01"], {"robot-01": sim.port})
        async with (
            app_process(db_url, devices, tmp_path / "a", run_gateway=True, **STEADY) as a,
            app_process(db_url, devices, tmp_path / "b", **STEADY) as b,
        ):
            assert a.app.state.gateway is not None and b.app.state.gateway is None  # B only reads
            boards = (a.board, b.board)
            await eventually(lambda: all(board.states("robot-01") == ["running"] for board in boards))
            for state in ("down", "idle", "running"):
                sim.machine.force(state, 600)
                await sim.tick(0)
                await eventually(lambda s=state: all(board.states("robot-01")[-1:] == [s] for board in boards))
            for board in boards:  # every change, in the order the robot made them, on both
                assert board.states("robot-01") == ["running", "down", "idle", "running"]
            for process in (a, b):
                found = await device(process.client, "robot-01")
                assert found["connection"] == "online" and found["state"] == "running"
                [listed] = (await process.client.get("/api/v1/devices")).json()["devices"]
                assert listed["device_id"] == "robot-01" and listed["samples"] > 0
    finally:
        await sim.stop()


def one_robot(path: Path, port: int) -> DeviceFile:
    """The shipped devices.yaml with only robot-01, at the simulator's port and polled fast, written to `path`
    for a `fabhub gateway` process (and loaded for the app processes beside it)."""
    shipped = yaml.safe_load((REPO / "devices.yaml").read_text())
    [robot] = [d for d in shipped["devices"] if d["id"] == "robot-01"]
    robot |= {"endpoint": f"tcp://127.0.0.1:{port}", "modbus": {"unit": 1, "poll_interval": "200ms", "timeout": "1s"}}
    shipped["devices"] = [robot]
    path.write_text(yaml.safe_dump(shipped, allow_unicode=True))
    return load_devices(path)


@contextlib.contextmanager
def gateway_process(db_url: str, mqtt_url: str, devices: Path, tmp: Path) -> Iterator[subprocess.Popen]:
    """`fabhub gateway` in a process of its own, as a site would run it; its output in tmp/gateway.log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FABHUB_")}
    env |= {
        "FABHUB_DATABASE_URL": db_url,
        "FABHUB_MQTT_URL": mqtt_url,
        "FABHUB_DEVICES": str(devices),
        "FABHUB_DATA_DIR": str(tmp),
        "FABHUB_PORT": str(free_port()),
        "FABHUB_GATEWAY_ID": "site-a",
        "FABHUB_SITE": "main",
        "FABHUB_SECRET_KEY": SECRET,
        "FABHUB_HEALTH_EVERY_S": str(QUICK["health_every_s"]),
        "FABHUB_HEALTH_STALE_ROUNDS": str(QUICK["health_stale_rounds"]),
    }
    tmp.mkdir()
    fabhub = str(Path(sys.executable).parent / "fabhub")
    # the deploy step writes the catalogue; the gateway only checks its file against it
    subprocess.run([fabhub, "catalogue", "sync"], env=env, check=True, capture_output=True)
    with (tmp / "gateway.log").open("wb") as log:
        command = [fabhub, "gateway"]
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.send_signal(signal.SIGCONT)
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def test_a_gateway_that_stops_reporting_leaves_its_devices_unknown_in_every_app_process(
    db_url, pool, mosquitto, tmp_path
):
    """The gateway process is frozen (SIGSTOP): alive, its connections open, but it reports nothing more.
    Both app processes then answer `unknown` for its robot, in the API, on the board's page and on the
    board's stream; thawed, it reports again and both show the robot's stored state."""
    await technician(pool)
    sim = await running_robot("robot-01")
    await sim.start()
    devices = one_robot(tmp_path / "devices.yaml", sim.port)
    try:
        with gateway_process(db_url, mosquitto.url, tmp_path / "devices.yaml", tmp_path / "gateway") as gateway:

            async def reporting() -> list[tuple]:
                async with pool.connection() as conn:
                    return await (await conn.execute("SELECT gateway_id, site FROM gateway_report")).fetchall()

            await eventually(reporting, 90)
            assert await reporting() == [("site-a", "main")]
            async with (
                app_process(db_url, devices, tmp_path / "a", **QUICK) as a,
                app_process(db_url, devices, tmp_path / "b", **QUICK) as b,
            ):
                apps, boards = (a.client, b.client), (a.board, b.board)
                await eventually(lambda: all(board.states("robot-01")[-1:] == ["running"] for board in boards), 90)
                for client in apps:
                    await eventually(lambda c=client: connection_is(c, "robot-01", "online"))

                gateway.send_signal(signal.SIGSTOP)
                for client in apps:
                    await eventually(lambda c=client: connection_is(c, "robot-01", "unknown"))
                    found = await device(client, "robot-01")
                    assert found["state"] is None and found["since"] is not None
                    staff = (await client.get("/api/v1/devices")).json()
                    assert staff["spool_depth"] == 0 and staff["writer_pending"] == 0  # no gateway reports now
                    tiles = (await client.get("/board/tiles")).text
                    assert re.search(r'class="tile state-unknown"[^>]*id="tile-robot-01"', tiles), tiles
                await eventually(lambda: all(board.states("robot-01")[-1:] == ["unknown"] for board in boards))
                frozen = [len(board.samples) for board in boards]

                gateway.send_signal(signal.SIGCONT)
                for client in apps:
                    await eventually(lambda c=client: connection_is(c, "robot-01", "online"))
                await eventually(
                    lambda: all(
                        board.states("robot-01", n)[-1:] == ["running"] for board, n in zip(boards, frozen, strict=True)
                    )
                )
    finally:
        await sim.stop()


async def test_a_batch_too_large_for_one_notification_reaches_the_board_whole(db_url, pool, tmp_path):
    """1,200 values in one batch: the writer announces them in several notifications on commit, each under
    PostgreSQL's limit, and a board of an app process receives every one of them."""
    at = datetime.now(UTC)
    devices = [f"machine-with-a-rather-long-name-{i:04d}" for i in range(400)]
    samples = [Sample(at, d, "temperature.spindle_bearing_front", 20.0 + i) for i, d in enumerate(devices)]
    samples += [Sample(at, d, "program", f"O{i:04d}_FLANGE_HOUSING.NC") for i, d in enumerate(devices)]
    samples += [Sample(at, d, "state", "running") for d in devices]
    samples += [Sample(at - timedelta(seconds=1), d, "temperature.spindle_bearing_front", -1.0) for d in devices]
    await technician(pool)
    async with (
        app_process(db_url, None, tmp_path) as process,
        await psycopg.AsyncConnection.connect(db_url, autocommit=True) as listener,
    ):
        await listener.execute(f"LISTEN {CHANNEL}")
        await BatchWriter(pool, clock=lambda: at).write_batch(samples)
        payloads = [n.payload async for n in listener.notifies(timeout=10, stop_after=1000)]
        assert len(payloads) > 1
        assert all(len(p.encode()) < PAYLOAD_LIMIT for p in payloads)
        announced = [s for p in payloads for s in decode(p)]
        latest = {(s.device_id, s.signal): s.value for s in announced}
        assert len(announced) == len(latest) == 3 * len(devices)  # the latest value per series, once
        assert latest[(devices[7], "temperature.spindle_bearing_front")] == 27.0
        assert latest[(devices[7], "program")] == "O0007_FLANGE_HOUSING.NC"
        assert latest[(devices[7], "state")] == "running"
        assert {s.time for s in announced} == {at}

        def on_the_board() -> dict[tuple[str, str], object]:
            return {(s[0], s[1]): s[2] for s in process.board.samples if s[0] in devices}

        await eventually(lambda: len(on_the_board()) == len(latest))
        assert on_the_board() == latest


async def test_a_text_longer_than_a_notification_is_stored_whole_and_announced_cut(db_url, pool):
    """A device may send any text: pg_notify refusing a long one would fail the whole batch, again and again."""
    at = datetime(2026, 3, 2, 9, tzinfo=UTC)
    alarm = "主轴过载\n" * 4000  # 20,000 characters, 3 bytes each in UTF-8, and control characters
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as listener:
        await listener.execute(f"LISTEN {CHANNEL}")
        await BatchWriter(pool, clock=lambda: at).write_batch([Sample(at, "cnc-01", "alarm", alarm)])
        [payload] = [n.payload async for n in listener.notifies(timeout=10, stop_after=1)]
    assert len(payload.encode()) < PAYLOAD_LIMIT
    [announced] = decode(payload)
    assert announced.value == alarm[:TEXT_ANNOUNCED]
    async with pool.connection() as conn:
        stored = await (await conn.execute("SELECT value FROM telemetry_text_sample WHERE signal = 'alarm'")).fetchall()
    assert stored == [(alarm,)]


async def test_the_listener_survives_a_killed_connection_and_catches_up(db_url, pool, tmp_path):
    await technician(pool)
    async with app_process(db_url, None, tmp_path) as process:
        listener, board = process.app.state.listener, process.board
        await eventually(lambda: listener.connects == 1)
        async with pool.connection() as conn:
            await conn.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE application_name = 'fabhub-live' AND datname = current_database()"
            )
        # written while the listener is away: it hears of it when it reads the latest values back
        at = datetime.now(UTC)
        await BatchWriter(pool).write_batch([Sample(at, "cnc-01", "program", "WHILE_AWAY.NC")])
        await eventually(lambda: board.saw("cnc-01", "program", "WHILE_AWAY.NC"))
        assert listener.connects == 2
        # and it listens again
        await BatchWriter(pool).write_batch([Sample(at + timedelta(seconds=1), "cnc-01", "state", "down")])
        await eventually(lambda: board.saw("cnc-01", "state", "down"))
