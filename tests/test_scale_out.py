"""Several sites and processes on one installation, as real processes on this machine: site `main`'s gateway
writes to TimescaleDB, site `north`'s publishes to a central Mosquitto that two `fabhub ingest` workers read,
and two `fabhub serve --no-gateway` app processes answer the pages and run the jobs. While the machines
change state and make parts, one worker is killed (kill -9) and the central broker restarted; every state and
part is stored once, both boards follow both sites, a scheduled job's effect happens once and a booking race
across the two apps books the slot once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from playwright.async_api import expect
from psycopg_pool import AsyncConnectionPool

from accounts.model import Role
from fabhub.devservices import Mosquitto, free_port
from simulators.machine import Machine, Profile
from simulators.modbus_robot import ModbusRobot
from simulators.mqtt_printer import MqttPrinter, printer_profile
from simulators.opcua_cnc import OpcUaCnc
from tests.accounts_rig import login, make_user
from tests.booking_rig import ZONE, customer
from tests.browser import chromium, log_in, new_page
from tests.gateway_rig import eventually
from tests.http import REPO, SECRET

FABHUB = str(Path(sys.executable).parent / "fabhub")
SITES = {"robot-01": "main", "cnc-01": "main", "robot-02": "north", "printer-02": "north"}
COUNTED = ("robot-01", "cnc-01", "robot-02")  # the machines with a part counter
SERIAL = "01P00A391800002"  # printer-02's, as devices.yaml has it
# What each machine does, in steps the test holds for a while: each is one state change on every machine.
SCRIPT = ("running", "down", "running", "idle", "running")
START = {"robot-01": 1_000, "cnc-01": 5_000, "robot-02": 70}  # the counters when FabHub first reads them


STEADY = {"alarm_rate": 0.0, "microstop_rate": 0.0}  # the script, not chance, changes the machines' states


def _steady(ideal_cycle_s: float) -> Profile:
    return Profile(ideal_cycle_s=ideal_cycle_s, **STEADY)


def _center_file(ports: dict[str, int]) -> dict:
    """The shipped center, its devices cut to the four simulated here, each at its site, polled fast."""
    document = yaml.safe_load((REPO / "devices.yaml").read_text(encoding="utf-8"))
    chosen = []
    for device in document["devices"]:
        if device["id"] not in SITES:
            continue
        device["site"] = SITES[device["id"]]
        device["max_rate"] = None  # machine time runs 100x here: faster than any real machine counts
        if device["protocol"] == "modbus":
            device["endpoint"] = f"tcp://127.0.0.1:{ports[device['id']]}"
            device["modbus"] = {**device["modbus"], "poll_interval": "100ms", "timeout": "500ms"}
        elif device["protocol"] == "opcua":
            device["endpoint"] = f"opc.tcp://127.0.0.1:{ports[device['id']]}/"
            device["opcua"] = {**device["opcua"], "publishing_interval": "100ms", "timeout": "2s"}
        else:  # on the site broker, as a printer in cloud-free "LAN only" setups behind a site broker is not:
            # the shipped printers are their own brokers; this one publishes to north's broker instead
            device.pop("endpoint")
            device["mqtt"] = {"serial": SERIAL, "offline_after": "1m"}
        chosen.append(device)
    document["devices"] = chosen
    return document


@dataclass
class Process:
    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None

    def start(self) -> Process:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def kill(self) -> None:
        """kill -9: no clean-up of any kind, as a crash or an OOM kill."""
        assert self.proc is not None and self.proc.poll() is None, self.tail()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self) -> str:
        return f"--- {self.name} ---\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


@dataclass
class Center:
    pool: AsyncConnectionPool
    sims: dict[str, Any]
    central: Mosquitto
    processes: dict[str, Process] = field(default_factory=dict)
    apps: list[str] = field(default_factory=list)  # the two app processes' base URLs

    async def rows(self, query: str, *args: Any) -> list[tuple]:
        async with self.pool.connection() as conn:
            return await (await conn.execute(query, args)).fetchall()

    async def drive(self, seconds: float) -> None:
        """Machine time passes 100x faster than real time, the simulators' registers and reports with it."""
        for _ in range(int(seconds / 0.1)):
            for sim in self.sims.values():
                await sim.tick(10.0)
            await asyncio.sleep(0.1)

    def force(self, state: str) -> None:
        for sim in self.sims.values():
            sim.machine.force(state, 24 * 3600)

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.processes.values())


def _environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FABHUB_")}
    return env | {
        "FABHUB_DEVICES": str(tmp_path / "devices.yaml"),
        "FABHUB_BATCH_MAX_AGE_S": "0.05",
        **{f"FABHUB_{k.upper()}": v for k, v in settings.items()},
    }


async def _healthy(url: str) -> bool:
    async with httpx.AsyncClient(timeout=2) as client:
        with contextlib.suppress(httpx.HTTPError):
            return (await client.get(f"{url}/healthz")).status_code == 200
    return False


@contextlib.asynccontextmanager
async def center(db_url: str, pool: AsyncConnectionPool, tmp_path: Path) -> AsyncIterator[Center]:
    site_broker, central = Mosquitto().start(), Mosquitto().start()
    sims: dict[str, Any] = {
        "robot-01": ModbusRobot("robot-01", 0, Machine(11, _steady(ideal_cycle_s=90)), speed=0),
        "cnc-01": OpcUaCnc("cnc-01", 0, Machine(12, _steady(ideal_cycle_s=240)), speed=0),
        "robot-02": ModbusRobot("robot-02", 0, Machine(13, _steady(ideal_cycle_s=45)), speed=0),
        "printer-02": MqttPrinter(
            SERIAL, "127.0.0.1", site_broker.port, Machine(14, printer_profile(**STEADY)), mode="delta", speed=0
        ),
    }
    the = Center(pool, sims, central)
    try:
        for device_id, sim in sims.items():
            sim.machine.force("idle", 24 * 3600)
            if device_id in START:
                sim.machine.set_counters(START[device_id], START[device_id])
            await sim.start()
            await sim.tick(0)
        ports = {i: s.port for i, s in sims.items() if i != "printer-02"}
        (tmp_path / "devices.yaml").write_text(yaml.safe_dump(_center_file(ports), allow_unicode=True))
        shared = {"database_url": db_url, "secret_key": SECRET}
        sync = [FABHUB, "catalogue", "sync"]
        synced = await asyncio.to_thread(
            subprocess.run, sync, env=_environment(tmp_path, **shared), capture_output=True, text=True
        )
        assert synced.returncode == 0, synced.stderr

        def process(name: str, args: list[str], **settings: str) -> Process:
            env = _environment(tmp_path, data_dir=str(tmp_path / name), **settings)
            the.processes[name] = Process(name, [FABHUB, *args], env, tmp_path / f"{name}.log").start()
            return the.processes[name]

        for n in (1, 2):
            process(f"ingest-{n}", ["ingest", "--from", central.url, "--client-id", f"ingest-{n}"], **shared)
        process("gateway-main", ["gateway", "--site", "main", "--port", str(free_port())], **shared)
        north = ["gateway", "--site", "north", "--publish", central.url]
        process("gateway-north", north, mqtt_url=site_broker.url)
        for n in (1, 2):
            port = free_port()
            process(f"app-{n}", ["serve", "--no-gateway", "--port", str(port)], **shared)
            the.apps.append(f"http://127.0.0.1:{port}")
        for url in the.apps:
            await eventually(lambda url=url: _healthy(url), timeout=60)
        yield the
    except BaseException:
        print(the.logs())
        raise
    finally:
        for p in reversed(the.processes.values()):
            p.stop()
        for sim in sims.values():
            await sim.stop()
        central.stop()
        site_broker.stop()


async def _states(the: Center, device_id: str) -> list[str]:
    """The device's stored state timeline with repeats (heartbeats) folded: one entry per change."""
    rows = await the.rows("SELECT state FROM telemetry_state WHERE device_id = %s ORDER BY time", device_id)
    folded: list[str] = []
    for (state,) in rows:
        if not folded or folded[-1] != state:
            folded.append(state)
    return folded


async def _parts(the: Center, device_id: str) -> tuple[float, int | None]:
    (made,) = await the.rows(
        "SELECT coalesce(sum(value), 0) FROM telemetry_sample WHERE device_id = %s AND signal = 'parts_total.delta'",
        device_id,
    )
    raw = await the.rows("SELECT raw FROM telemetry_counter WHERE device_id = %s AND signal = 'parts_total'", device_id)
    return made[0], raw[0][0] if raw else None


def _next_weekday(days_ahead: int) -> datetime:
    """10:00 at the center on a weekday at least `days_ahead` days from now: inside opening hours and notice."""
    day = datetime.now(ZONE).date() + timedelta(days=days_ahead)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 10, tzinfo=ZONE)


TECHNICIAN = "tech-scale@center.example"


async def test_two_sites_two_workers_two_apps_store_and_show_everything_once(db_url, pool, tmp_path):
    await make_user(pool, Role.technician, email=TECHNICIAN)
    async with center(db_url, pool, tmp_path) as the:
        # every machine's first state, from both sites, reaches the database: the counters' baselines too
        for device_id in SITES:
            await _until(the, device_id, _first_seen)

        # a booking under way on robot-01, so its going down is news for the technicians
        async with httpx.AsyncClient(base_url=the.apps[0], timeout=30) as first:
            owner = await customer(pool, first)
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO booking (device_id, organization_id, user_id, created_by, during, hourly_rate, gross, net,"
                " created_at) VALUES ('robot-01', %s, %s, %s, tstzrange(now() - interval '10 minutes',"
                " now() + interval '50 minutes'), 120, 120, 120, now())",
                (owner.org_id, owner.user_id, owner.user_id),
            )

        async with chromium() as browser:
            boards = []
            for url in the.apps:
                page = await new_page(browser, url)
                await log_in(page, TECHNICIAN)
                assert page.url.endswith("/board")
                boards.append(page)
            for n, state in enumerate(SCRIPT):
                the.force(state)
                if n == 1:  # mid-stream: a worker dies without a word, and comes back under its client id
                    the.processes["ingest-1"].kill()
                await the.drive(2)
                if n == 1:
                    the.processes["ingest-1"].start()
                if n == 2:
                    await asyncio.to_thread(the.central.restart)
                # both boards show both sites' machines in the new state
                for page in boards:
                    for device_id in ("robot-01", "robot-02"):
                        await expect(page.locator(f"#tile-{device_id}")).to_have_class(
                            f"tile state-{state}", timeout=20_000
                        )
                await the.drive(1)

        # the simulators stop where they are; everything they reported arrives, once
        for device_id in COUNTED:
            final = the.sims[device_id].machine.state.parts_total
            await _until(the, device_id, lambda the, d, f=final: _counted_up_to(the, d, f))
            made, raw = await _parts(the, device_id)
            assert raw == final
            assert made == final - START[device_id] > 0, the.logs()
        for device_id in SITES:
            states = await _states(the, device_id)
            assert states == ["idle", *SCRIPT], (device_id, states)

        # both sites' devices are online in both app processes' /api/v1/devices: the publishing site's health
        # came through the central broker and an ingest worker
        for url in the.apps:
            async with httpx.AsyncClient(base_url=url, timeout=30) as app:
                headers = await login(app, TECHNICIAN)
                for device_id in SITES:
                    found = (await app.get(f"/api/v1/devices/{device_id}", headers=headers)).json()
                    assert (found["connection"], found["state"]) == ("online", SCRIPT[-1]), (url, found)

        # the machine-alerts job ran in both app processes: the technicians hear of robot-01 going down once
        down = "SELECT count(*) FROM outbox_event WHERE kind = 'device.down' AND payload->'down'->>'device_id' = %s"
        await eventually(lambda: _one(the, down, "robot-01"), timeout=60)
        assert (await the.rows(down, "robot-01"))[0][0] == 1

        # one slot, two customers, one on each app process at the same instant: one booking
        start = _next_weekday(3)
        body = {"device_id": "robot-02", "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}
        async with (
            httpx.AsyncClient(base_url=the.apps[0], timeout=30) as a,
            httpx.AsyncClient(base_url=the.apps[1], timeout=30) as b,
        ):
            one, other = await customer(pool, a), await customer(pool, b)
            answers = await asyncio.gather(
                a.post("/api/v1/bookings", json=body, headers=one.headers),
                b.post("/api/v1/bookings", json=body, headers=other.headers),
            )
            assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
            # a token from one app process is good at the other: the key is shared
            me = await b.get("/api/v1/me", headers=await login(a, one.email))
            assert me.status_code == 200 and me.json()["email"] == one.email, me.text


async def _until(the: Center, device_id: str, check: Callable[[Center, str], Awaitable[bool]]) -> None:
    """Wait for `check`; fail with what the database holds of the device and the processes' logs."""
    try:
        await eventually(lambda: check(the, device_id), timeout=60)
    except AssertionError:
        states, parts = await _states(the, device_id), await _parts(the, device_id)
        raise AssertionError(f"{device_id}: states {states}, parts {parts}\n{the.logs()}") from None


async def _first_seen(the: Center, device_id: str) -> bool:
    states = await _states(the, device_id)
    if states != ["idle"]:
        return False
    return device_id not in COUNTED or (await _parts(the, device_id))[1] == START[device_id]


async def _counted_up_to(the: Center, device_id: str, final: int) -> bool:
    return (await _parts(the, device_id))[1] == final


async def _one(the: Center, query: str, *args: Any) -> bool:
    return (await the.rows(query, *args))[0][0] >= 1
