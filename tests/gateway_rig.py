"""A rig for the gateway's end-to-end tests: the shipped devices.yaml pointed at simulators on free
ports, the gateway built the way the app builds it, and polling the database until a condition holds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from fabhub.devices import DeviceFile, load_devices
from fabhub.gateway_setup import build_gateway
from fabhub.settings import Settings
from gateway.service import Gateway
from simulators.machine import Machine, Profile
from simulators.modbus_robot import ModbusRobot
from simulators.mqtt_printer import MqttPrinter, printer_profile
from simulators.opcua_cnc import OpcUaCnc
from simulators.printer_broker import LanPrinter
from tests.http import REPO

FAST = {"poll_interval": timedelta(milliseconds=200), "timeout": timedelta(milliseconds=500)}
CENTRAL = {"username": None, "password_env": None, "ca_file": None, "tls_verify_hostname": True}
ACCESS_CODE_VARIABLE = "PRINTER_ACCESS_CODE"
ACCESS_CODE = "31415926"  # what the gateway's environment holds in ACCESS_CODE_VARIABLE, unless a test says
LAN = {"username": "bblp", "password_env": ACCESS_CODE_VARIABLE, "tls_verify_hostname": False}


def devices_for(ids: list[str], ports: dict[str, int], overrides: dict[str, dict] | None = None) -> DeviceFile:
    """The shipped devices, only `ids`, with endpoints on the given ports and fast polling; `overrides` change
    protocol settings per device, e.g. {"cnc-01": {"opcua": {"username": "x"}}}, or the device's own fields,
    e.g. {"robot-01": {"max_rate": 3.0}}. Tests move counters faster than machines can: the physical limit
    on a counter's step is lifted (max_rate and the signals' max_per_s None) unless a test sets it."""
    shipped = load_devices(REPO / "devices.yaml")
    chosen = []
    for d in shipped.devices:
        if d.id not in ids:
            continue
        update: dict[str, Any] = {"heartbeat": timedelta(seconds=30), "max_rate": None}
        update["signals"] = {n: s.model_copy(update={"max_per_s": None}) for n, s in d.signals.items()}
        if d.protocol == "modbus":
            update["endpoint"] = f"tcp://127.0.0.1:{ports[d.id]}"
            update["modbus"] = d.modbus.model_copy(update=FAST)
        elif d.protocol == "opcua":
            update["endpoint"] = f"opc.tcp://127.0.0.1:{ports[d.id]}/"
            update["opcua"] = d.opcua.model_copy(
                update={**FAST, "publishing_interval": timedelta(milliseconds=100), "timeout": timedelta(seconds=2)}
            )
        else:  # on the test's broker, unless a LanPrinter serves it (see rig)
            update["endpoint"] = None
            update["mqtt"] = d.mqtt.model_copy(update={"offline_after": timedelta(seconds=2), **CENTRAL})
        for key, changes in (overrides or {}).get(d.id, {}).items():
            if isinstance(changes, dict):
                update[key] = update.get(key, getattr(d, key)).model_copy(update=changes)
            else:
                update[key] = changes
        chosen.append(d.model_copy(update=update))
    return shipped.model_copy(update={"devices": chosen})


@dataclass
class Rig:
    pool: AsyncConnectionPool
    gateway: Gateway
    sims: dict[str, Any] = field(default_factory=dict)

    async def rows(self, query: str, *args: Any) -> list[tuple]:
        async with self.pool.connection() as conn:
            return await (await conn.execute(query, args)).fetchall()

    async def until(self, query: str, check: Callable[[list[tuple]], bool], *args: Any, timeout: float = 30) -> list:
        """Poll the database until `check` holds for the rows of `query`; fail with the last rows."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        rows: list[tuple] = []
        while loop.time() < deadline:
            await self.gateway.writer.flush()
            rows = await self.rows(query, *args)
            if check(rows):
                return rows
            await asyncio.sleep(0.1)
        raise AssertionError(f"condition not met in {timeout} s; last rows of {query!r}: {rows[-10:]}")

    async def state(self, device_id: str) -> str | None:
        rows = await self.rows(
            "SELECT state FROM telemetry_state WHERE device_id = %s ORDER BY time DESC LIMIT 1", device_id
        )
        return rows[0][0] if rows else None

    async def state_becomes(self, device_id: str, state: str, timeout: float = 30) -> None:
        query = "SELECT state FROM telemetry_state WHERE device_id = %s ORDER BY time DESC LIMIT 1"
        await self.until(query, lambda r: bool(r) and r[0][0] == state, device_id, timeout=timeout)


def robot(device_id: str, seed: int = 1) -> ModbusRobot:
    return ModbusRobot(device_id, 0, Machine(seed, Profile(ideal_cycle_s=90)), speed=0)


async def running_robot(device_id: str, counters: tuple[int, int] | None = None) -> ModbusRobot:
    """A robot in the middle of a long job, its registers published, optionally with its part counters set."""
    sim = robot(device_id)
    sim.machine.force("running", 3600)
    if counters is not None:
        sim.machine.set_counters(*counters)
    await sim.tick(0)
    return sim


def cnc(device_id: str, seed: int = 2) -> OpcUaCnc:
    return OpcUaCnc(device_id, 0, Machine(seed, Profile(ideal_cycle_s=240)), speed=0)


def printer(serial: str, port: int, seed: int = 3, mode: str = "delta") -> MqttPrinter:
    return MqttPrinter(serial, "127.0.0.1", port, Machine(seed, printer_profile()), mode=mode, speed=0)


@contextlib.asynccontextmanager
async def rig(
    db_url: str,
    tmp_path: Path,
    sims: dict[str, Any],
    mqtt_url: str | None = None,
    pool_url: str | None = None,
    overrides: dict[str, dict] | None = None,
    access_code: str = ACCESS_CODE,
    environ: dict[str, str] | None = None,
    **settings: Any,
) -> AsyncIterator[Rig]:
    """Start the simulators, then a gateway for exactly their devices; stop both afterwards. A LanPrinter is
    reached as a printer in LAN mode is: its own TLS broker, its certificate trusted (ca_file), the access code
    from the gateway's environment (`access_code`); `environ` holds the other secrets the devices name."""
    for sim in sims.values():
        await sim.start()
    ports = {i: s.port for i, s in sims.items() if hasattr(s, "port")}
    merged = {i: dict(o) for i, o in (overrides or {}).items()}
    for i, sim in sims.items():
        if isinstance(sim, LanPrinter):
            own = merged.setdefault(i, {})
            own["endpoint"] = sim.url
            own["mqtt"] = {**LAN, "ca_file": sim.broker.cert_path, **own.get("mqtt", {})}
    devices = devices_for(list(sims), ports, merged)
    # one client id per test, the same for its rigs: a persistent session is the test's own, never one a
    # gateway of an earlier test on the shared broker left behind
    settings.setdefault("mqtt_client_id", f"rig-{tmp_path.name}"[:64])
    config = Settings(data_dir=tmp_path, batch_max_age_s=0.05, **settings)
    async with AsyncConnectionPool(pool_url or db_url, min_size=1, max_size=6, open=False, timeout=3) as pool:
        await pool.open(wait=True)
        environ = {ACCESS_CODE_VARIABLE: access_code, **(environ or {})}
        registry = CollectorRegistry()
        gateway = build_gateway(config, devices, pool, mqtt_url, lambda: datetime.now(UTC), registry, environ)
        await gateway.start()
        try:
            yield Rig(pool, gateway, sims)
        finally:
            await gateway.stop()
            for sim in sims.values():
                await sim.stop()


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not true within {timeout} s")
