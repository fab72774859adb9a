"""Whole-center gateway benchmark: 200 simulated devices (40 CNC over OPC UA, 80 robots over Modbus TCP,
80 printers over MQTT) reporting about once a second, read by one `fabhub gateway` process that writes to
TimescaleDB. Measures the gateway process's CPU and memory and the lag from a device's change to its row
in the database.

The printers are Bambu printers in LAN mode, as a real center's are: each is its own MQTT broker (TLS with a
certificate issued to its serial, user bblp, an 8-digit access code), reached by the gateway with a connection of
its own. `--lan-printers N` keeps N of them in LAN mode and puts the rest on the site broker (Mosquitto), as
printers that publish to a broker would (0: all on the site broker, as before LAN mode existed). The access codes
are made up per run and handed to both processes in the environment (`password_env` names them in the generated
devices.yaml); each printer's certificate is written by `fabhub simulate` where its `ca_file` says, under the
working folder.

Starts its own TimescaleDB cluster and Mosquitto (`fabhub.devservices`, as the tests do: run `make system`
once), writes a devices.yaml with the 200 devices (signal maps and state rules copied from the shipped
devices.yaml), runs `fabhub simulate --speed 60` and `fabhub gateway` as two subprocesses, logs in to the
gateway's API as a technician made for the run, waits until every device is online, then measures for
`--duration` seconds and prints the figures. At 60x a machine makes parts 60 times faster than it physically
could, so the devices' `max_rate` (the writer's limit on a part counter's step) is scaled by the speed too.

    .venv/bin/python bench/center.py [--duration 60] [--warmup 5] [--lan-printers 80] [--keep] [--json]

Lag: the database is polled every 50 ms for each device's newest numeric sample; when it advances to t,
`(time the poll started) - t` is one observation. The sample's time is the device's change time for OPC UA
(source timestamp), the read time for Modbus and the arrival time at the gateway for MQTT (Bambu reports
carry no timestamp). Only each device's newest sample is seen, so the older samples of the same batch,
which waited longer, are not counted: the figures lean low by up to a flush interval.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import paho.mqtt.client as mqtt
import psutil
import psycopg
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from accounts.model import Role
from accounts.users import create_user
from fabhub.devices import check_file
from fabhub.devservices import Mosquitto, PostgresCluster, free_port
from fabhub.migrations import migrate
from gateway.config import DEFAULT_MAX_RATE

log = logging.getLogger("bench.center")

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_DEVICES = ROOT / "devices.yaml"
COUNTS = {"opcua": 40, "modbus": 80, "mqtt": 80}
PREFIX = {"opcua": "cnc", "modbus": "robot", "mqtt": "printer"}
PROTOCOLS = tuple(COUNTS)
SPEED = 60.0
LAG_POLL_S = 0.05
LAG_SQL = (
    "SELECT device_id, max(time) FROM telemetry_sample WHERE time > now() - interval '30 seconds' GROUP BY device_id"
)
ROWS_SQL = (
    "SELECT (SELECT count(*) FROM telemetry_sample), (SELECT count(*) FROM telemetry_text_sample),"
    " (SELECT count(*) FROM telemetry_state)"
)
TABLES = ("telemetry_sample", "telemetry_text_sample", "telemetry_state")
SIMULATORS_TIMEOUT_S = 360.0  # 200 simulators in one process start in about 100 s on 2 idle cores
ONLINE_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
TECHNICIAN = "bench-center@center.example"
LOG_LINE = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) ")


# -- devices.yaml -------------------------------------------------------------------------------------


class Layout(NamedTuple):
    path: Path
    protocol: dict[str, str]  # device id -> protocol
    ports: list[int]  # OPC UA and Modbus ports, in the order the simulators start them
    lan: set[str]  # printers in LAN mode (their own broker), the others are on the site broker
    secrets: dict[str, str]  # environment variable -> access code, for both processes


def _flow(pairs: dict[str, Any]) -> CommentedMap:
    m = CommentedMap(pairs)
    m.fa.set_flow_style()
    return m


def _listening_port(taken: set[int]) -> int:
    """A free port below the range Linux deals outgoing connections' source ports from. The LAN printers'
    brokers start one after another, each with its printer's client connecting to it at once: a port drawn by
    free_port() (from that same range) could meanwhile become some client's source port, and the next broker
    could not listen there."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]) if sys.platform == "linux" else 0
    start = 20_000 if low > 21_000 else 1024
    for candidate in range(start + secrets.randbelow(max(1, min(low, 65_000) - start - 1000)), 65_536):
        if candidate in taken:
            continue
        with contextlib.suppress(OSError), socket.socket() as probe:
            probe.bind(("127.0.0.1", candidate))
            taken.add(candidate)
            return candidate
    raise RuntimeError("no free port for a printer's broker")


def write_devices(target: Path, taken: set[int], lan_printers: int = COUNTS["mqtt"], speed: float = SPEED) -> Layout:
    """The center's devices.yaml with COUNTS devices per protocol. Signal maps and state rules are the
    anchored ones of the shipped file (so the new file aliases them the same way); every OPC UA and Modbus
    device gets a free port of its own, every printer its own serial. The first `lan_printers` printers are in
    LAN mode: their own broker at a port of their own, bblp, an access code in an environment variable, their
    certificate under the file's folder; the others publish to the site broker. Part counters may step
    `speed` times faster than the machine could (the simulators run that much faster)."""
    yaml = YAML(typ="rt")
    yaml.width = 4096  # flow mappings on one line, as in the shipped file
    yaml.indent(mapping=2, sequence=4, offset=2)
    doc = yaml.load(SHIPPED_DEVICES.read_text(encoding="utf-8"))
    models = {p: [d for d in doc["devices"] if d["protocol"] == p and "meters" not in d] for p in PROTOCOLS}
    missing = [p for p, ds in models.items() if not ds]
    if missing:
        raise RuntimeError(f"{SHIPPED_DEVICES} has no {', '.join(missing)} device to copy the signal map from")

    def port() -> int:
        while (p := free_port()) in taken:
            pass
        taken.add(p)
        return p

    devices = CommentedSeq()
    protocol: dict[str, str] = {}
    ports: list[int] = []
    lan: set[str] = set()
    codes: dict[str, str] = {}
    certs = target.parent / "printers"
    for proto in PROTOCOLS:  # servers first: the printers' broker connections come last, see below
        for n in range(1, COUNTS[proto] + 1):
            model = models[proto][(n - 1) % len(models[proto])]
            device_id = f"{PREFIX[proto]}-{n:03d}"
            entry = CommentedMap(
                [("id", device_id), ("name", f"{model['name']} #{n}"), ("class", model["class"]), ("protocol", proto)]
            )
            if proto == "opcua":
                ports.append(port())
                entry["endpoint"] = f"opc.tcp://127.0.0.1:{ports[-1]}"
            elif proto == "modbus":
                ports.append(port())
                entry["endpoint"] = f"tcp://127.0.0.1:{ports[-1]}"
            elif n <= lan_printers:
                entry["endpoint"] = f"mqtts://127.0.0.1:{_listening_port(taken)}"
            if model.get("ideal_cycle_time") is not None:
                entry["ideal_cycle_time"] = model["ideal_cycle_time"]
            entry["max_rate"] = min(1000.0, DEFAULT_MAX_RATE * speed)
            if proto == "opcua":
                entry["opcua"] = CommentedMap(
                    [
                        ("machine", f"MA:Machines/inst:{device_id}"),
                        ("namespaces", _flow({"inst": f"urn:fabhub:sim:{device_id}"})),
                        ("publishing_interval", "1s"),
                        ("events", [_flow(dict(e)) for e in model["opcua"].get("events", [])]),
                    ]
                )
            elif proto == "modbus":
                settings = dict(model.get("modbus") or {})
                entry["modbus"] = _flow({**settings, "poll_interval": "1s"})
            elif "endpoint" in entry:  # a Bambu printer in LAN mode, as they ship
                serial, variable = f"BENCH{n:010d}", f"BENCH_PRINTER_{n:03d}_ACCESS_CODE"
                codes[variable] = f"{secrets.randbelow(10**8):08d}"
                entry["mqtt"] = CommentedMap(
                    [
                        ("serial", serial),
                        ("username", "bblp"),
                        ("password_env", variable),
                        ("ca_file", str(certs / f"{serial}.crt")),  # written there by `fabhub simulate`
                        ("tls_verify_hostname", False),
                    ]
                )
                lan.add(device_id)
            else:
                entry["mqtt"] = _flow({"serial": f"BENCH{n:010d}"})
            entry["signals"] = model["signals"]  # the anchored maps themselves: dumped as aliases
            entry["states"] = model["states"]
            devices.append(entry)
            protocol[device_id] = proto

    out = CommentedMap((k, v) for k, v in doc.items() if k != "devices")
    out["devices"] = devices
    out.yaml_set_start_comment(
        f"Generated by bench/center.py from {SHIPPED_DEVICES.name}: "
        + ", ".join(f"{COUNTS[p]} {p}" for p in PROTOCOLS)
        + f" devices on simulators ({len(lan)} printers in LAN mode)."
    )
    with target.open("w", encoding="utf-8") as f:
        yaml.dump(out, f)
    problems = check_file(target, codes)
    if problems:
        raise RuntimeError(f"generated {target} has problems:\n" + "\n".join(f"  {p}" for p in problems[:20]))
    # Linux deals connect() source ports from the same range free_port() drew from; nothing in the run
    # connects out before the OPC UA and Modbus servers are listening (the printers' MQTT clients start after
    # them), and the LAN printers' brokers listen below that range.
    return Layout(target, protocol, ports, lan, codes)


# -- processes ---------------------------------------------------------------------------------------


def _fabhub() -> str:
    exe = Path(sys.executable).parent / "fabhub"
    if exe.exists():
        return str(exe)
    found = shutil.which("fabhub")
    if found is None:
        raise RuntimeError("no `fabhub` command next to this Python or on PATH: install the project first")
    return found


def _environment(extra: dict[str, str], **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FABHUB_")}
    env.update(extra)
    env.update({f"FABHUB_{k.upper()}": v for k, v in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _spawn(args: list[str], env: dict[str, str], logfile: Path) -> subprocess.Popen[bytes]:
    """In a session of its own: a Ctrl-C at the terminal reaches this process only, which stops it."""
    with logfile.open("ab") as out:
        return subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )


async def _stop(proc: subprocess.Popen[bytes] | None, grace: float = STOP_TIMEOUT_S) -> None:
    """SIGINT (what Ctrl-C sends: both commands shut down cleanly on it), then SIGKILL after `grace` s;
    then any child it left behind."""
    if proc is None:
        return
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if proc.poll() is None:
            log.warning("pid %d did not stop within %g s of SIGINT: killing it", proc.pid, grace)
            proc.kill()
            await asyncio.to_thread(proc.wait)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()


def _tail(logfile: Path, lines: int = 30) -> str:
    try:
        return "\n".join(logfile.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def _wait_simulators(proc: subprocess.Popen[bytes], ports: list[int], logfile: Path) -> None:
    """Every server port accepts a connection and `fabhub simulate` has said all simulators run (it says so
    after the printers are connected to the broker). The servers start one after another, so the ports
    are probed in that order."""
    deadline = time.monotonic() + SIMULATORS_TIMEOUT_S
    pending = list(ports)
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"fabhub simulate exited with code {proc.returncode}:\n{_tail(logfile)}")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"simulators not ready after {SIMULATORS_TIMEOUT_S:g} s: {len(pending)} of {len(ports)} ports"
                f" not listening (first {pending[:5]}):\n{_tail(logfile)}"
            )
        while pending:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", pending[0]), 1)
            except (OSError, TimeoutError):
                break
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            pending.pop(0)
        if not pending and "simulators running" in _tail(logfile, 1000):
            return
        await asyncio.sleep(0.2)


async def _make_technician(url: str) -> str:
    """A technician for the run (the device list is for staff); returns the password."""
    password = secrets.token_urlsafe(24)
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await create_user(
            conn,
            email=TECHNICIAN,
            name="Benchmark",
            role=Role.technician,
            organization_id=None,
            password=password,
            at=datetime.now(UTC),
            actor="bench/center.py",
        )
    return password


async def _login(http: httpx.AsyncClient, proc: subprocess.Popen[bytes], password: str, logfile: Path) -> None:
    """Once the gateway's API answers: a bearer token for the status calls."""
    deadline = time.monotonic() + ONLINE_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"fabhub gateway exited with code {proc.returncode}:\n{_tail(logfile)}")
        try:
            response = await http.post("/api/v1/auth/token", data={"username": TECHNICIAN, "password": password})
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code == 200:
            http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
            return
        if response is not None and response.status_code not in (502, 503):
            raise RuntimeError(f"login to the gateway's API refused: {response.status_code} {response.text[:300]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the gateway's API did not answer within {ONLINE_TIMEOUT_S:g} s:\n{_tail(logfile)}")
        await asyncio.sleep(0.5)


async def _wait_online(
    http: httpx.AsyncClient, proc: subprocess.Popen[bytes], expected: set[str], logfile: Path
) -> dict[str, Any]:
    deadline = time.monotonic() + ONLINE_TIMEOUT_S
    body: dict[str, Any] = {}
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"fabhub gateway exited with code {proc.returncode}:\n{_tail(logfile)}")
        with contextlib.suppress(httpx.HTTPError, ValueError):
            response = await http.get("/api/v1/devices")
            if response.status_code == 200:
                body = response.json()
            elif response.status_code in (401, 403):
                raise RuntimeError(f"/api/v1/devices refused us: {response.status_code} {response.text[:300]}")
        devices = {d["device_id"]: d for d in body.get("devices", [])}
        not_online = sorted(i for i in expected if devices.get(i, {}).get("connection") != "online")
        if not not_online:
            return body
        if time.monotonic() > deadline:
            detail = "\n".join(
                f"  {i}: {devices[i]['connection']} ({devices[i].get('last_error') or 'no error'})"
                if i in devices
                else f"  {i}: not reported by the gateway"
                for i in not_online
            )
            raise RuntimeError(
                f"{len(not_online)} of {len(expected)} devices not online after {ONLINE_TIMEOUT_S:g} s:\n{detail}"
            )
        await asyncio.sleep(0.5)


# -- measuring ---------------------------------------------------------------------------------------


def _tree(pid: int) -> list[psutil.Process]:
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def _cpu_seconds(procs: list[psutil.Process]) -> dict[int, float]:
    """User + system CPU seconds by pid."""
    out: dict[int, float] = {}
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
    return out


def _cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two readings; a process that appeared in between counts from its start (one that
    ended in between is lost, which for PostgreSQL backends of short connections is a little)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def _rss(procs: list[psutil.Process]) -> int:
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _hwm(pid: int) -> int | None:
    """VmHWM: the process's peak resident set over its life (Linux)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def _postmaster(cluster: PostgresCluster) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((cluster.data / "postmaster.pid").read_text().split()[0])
    return None


class ResourceSampler:
    """Once a second: RSS and CPU of the gateway's process tree, for the peak and the busiest second."""

    def __init__(self, gateway_pid: int) -> None:
        self.gateway_pid = gateway_pid
        self.rss_peak = 0
        self.cpu_max_1s = 0.0

    async def run(self) -> None:
        last_cpu, last_t = _cpu_seconds(_tree(self.gateway_pid)), time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            procs = _tree(self.gateway_pid)
            cpu, now = _cpu_seconds(procs), time.monotonic()
            self.cpu_max_1s = max(self.cpu_max_1s, 100 * _cpu_used(last_cpu, cpu) / (now - last_t))
            self.rss_peak = max(self.rss_peak, _rss(procs))
            last_cpu, last_t = cpu, now


class LagPoller:
    """Every 50 ms, each device's newest numeric sample of the last 30 s; an advance to t observes
    `poll start - t`. The poll start is when the query's snapshot was taken (autocommit), so a row seen
    was committed before it: the observation overstates the lag by less than one poll interval."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.observations: list[tuple[float, str, float]] = []  # (monotonic time, device, lag in s)
        self.query_s: list[float] = []

    async def run(self) -> None:
        last: dict[str, datetime] = {}
        baseline = True
        loop = asyncio.get_running_loop()
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            next_at = loop.time()
            while True:
                started, t0 = datetime.now(UTC), time.perf_counter()
                rows = await (await conn.execute(LAG_SQL)).fetchall()
                self.query_s.append(time.perf_counter() - t0)
                mono = time.monotonic()
                for device, newest in rows:
                    previous = last.get(device)
                    if previous is None or newest > previous:
                        last[device] = newest
                        if not baseline:
                            self.observations.append((mono, device, (started - newest).total_seconds()))
                baseline = False
                next_at += LAG_POLL_S
                delay = next_at - loop.time()
                if delay < 0:  # the query took longer than the interval: poll again at once
                    next_at, delay = loop.time(), 0.0
                await asyncio.sleep(delay)


class ReportCounter:
    """Printer reports as the broker delivers them (device/+/report), counted by a subscriber of ours."""

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("mqtt://").partition(":")
        self._lock = threading.Lock()
        self.count = 0
        self.subscribed = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fabhub-bench-center")
        self._client.on_connect = lambda c, *_: c.subscribe("device/+/report", qos=0)
        self._client.on_subscribe = lambda *_: self.subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(host, int(port or 1883))
        self._client.loop_start()

    def _on_message(self, *_: Any) -> None:
        with self._lock:
            self.count += 1

    def take(self) -> int:
        with self._lock:
            n, self.count = self.count, 0
            return n

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _lag_summary(observations: list[tuple[float, str, float]], t0: float) -> dict[str, Any]:
    lags = [o[2] for o in observations]
    trend = None
    if len(lags) > 2:  # least-squares slope of lag over time: a lag that keeps growing shows here
        trend = 60 * statistics.linear_regression([o[0] - t0 for o in observations], lags).slope
    return {
        "observations": len(lags),
        "p50_s": _quantile(lags, 0.50),
        "p99_s": _quantile(lags, 0.99),
        "max_s": max(lags) if lags else None,
        "trend_s_per_min": trend,
    }


def _metrics(text: str) -> dict[tuple[str, str], Any]:
    """(sample name, protocol label or '') -> value, histogram buckets left out; (family name, 'help') ->
    its help text."""
    out: dict[tuple[str, str], Any] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("fabhub_gateway"):
            continue
        out[(family.name, "help")] = family.documentation
        for s in family.samples:
            if "le" not in s.labels:
                out[(s.name, s.labels.get("protocol", ""))] = s.value
    return out


async def _count_rows(url: str) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        row = await (await conn.execute(ROWS_SQL)).fetchone()
    assert row is not None
    return dict(zip(TABLES, row, strict=True))


def _log_findings(logfile: Path, limit: int) -> dict[str, Any]:
    """Warnings and errors of a subprocess's log: counts by level and logger, and the first lines."""
    by_kind: Counter[str] = Counter()
    lines: list[str] = []
    tracebacks = 0
    with contextlib.suppress(OSError):
        for line in logfile.read_text(errors="replace").splitlines():
            if line.startswith("Traceback"):
                tracebacks += 1
            match = LOG_LINE.match(line)
            if match is None:
                continue
            by_kind[f"{match.group(1)} {line[match.end() :].split(':', 1)[0]}"] += 1
            if len(lines) < limit:
                lines.append(line)
    return {"counts": dict(by_kind.most_common()), "tracebacks": tracebacks, "first_lines": lines}


# -- the run -----------------------------------------------------------------------------------------


async def run_center(
    duration_s: float = 60.0,
    *,
    warmup_s: float = 5.0,
    speed: float = SPEED,
    lan_printers: int = COUNTS["mqtt"],
    keep: bool = False,
) -> dict[str, Any]:
    """Start the services, the simulators and the gateway, measure for `duration_s` seconds once every
    device is online (after `warmup_s` more), stop everything and return the figures. `lan_printers` of the
    printers are in LAN mode, the others on the site broker. With `keep`, the working folder (devices.yaml,
    the printers' certificates, the two logs) is left in place and named in the result."""
    work = Path(tempfile.mkdtemp(prefix="fabhub-center-"))
    cluster: PostgresCluster | None = None
    broker: Mosquitto | None = None
    simulators = gateway = None
    counter: ReportCounter | None = None
    sim_log, gw_log = work / "simulate.log", work / "gateway.log"
    started = time.monotonic()
    try:
        log.info("starting TimescaleDB and Mosquitto")
        cluster = await asyncio.to_thread(PostgresCluster(timescaledb=True).start)
        url = await asyncio.to_thread(cluster.create_database, "center")
        await migrate(url, timescaledb="require")
        password = await _make_technician(url)
        broker = await asyncio.to_thread(Mosquitto().start)
        api_port = free_port()
        taken = {cluster.port, broker.port, api_port}
        layout = write_devices(work / "devices.yaml", taken, lan_printers, speed)
        fabhub = _fabhub()

        log.info(
            "starting %d simulators at %gx (%d printers in LAN mode)", len(layout.protocol), speed, len(layout.lan)
        )
        sim_env = _environment(
            layout.secrets, devices=str(layout.path), mqtt_url=broker.url, data_dir=str(work / "simulate")
        )
        simulators = _spawn([fabhub, "simulate", "--speed", f"{speed:g}"], sim_env, sim_log)
        await _wait_simulators(simulators, layout.ports, sim_log)
        simulators_ready = time.monotonic()

        log.info("simulators ready after %.0f s; starting the gateway", simulators_ready - started)
        gw_env = _environment(
            layout.secrets,
            database_url=url,
            devices=str(layout.path),
            mqtt_url=broker.url,
            data_dir=str(work / "gateway"),
            timescaledb="require",
            access_token_minutes=str(24 * 60),  # the run may outlast the default quarter of an hour
            secret_key=secrets.token_urlsafe(32),
        )
        # the catalogue has one writer, the deploy step; the gateway only checks it against its file
        await asyncio.to_thread(
            subprocess.run, [fabhub, "catalogue", "sync"], env=gw_env, check=True, capture_output=True
        )
        gateway = _spawn([fabhub, "gateway", "--port", str(api_port)], gw_env, gw_log)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as http:
            await _login(http, gateway, password, gw_log)
            await _wait_online(http, gateway, set(layout.protocol), gw_log)
            online = time.monotonic()
            log.info(
                "all %d devices online %.1f s after the gateway started",
                len(layout.protocol),
                online - simulators_ready,
            )
            if len(layout.lan) < COUNTS["mqtt"]:  # printers on the site broker: count what it delivers
                counter = ReportCounter(broker.url)
            await asyncio.sleep(warmup_s)
            if counter is not None:
                await asyncio.to_thread(counter.subscribed.wait, 5)

            log.info("measuring for %g s", duration_s)
            result = await _measure(http, url, cluster, gateway.pid, simulators.pid, layout, counter, duration_s)
        result["details"]["speed"] = speed
        result["details"]["lan_printers"] = len(layout.lan)
        result["details"]["startup_s"] = {
            "simulators_ready": round(simulators_ready - started, 1),
            "gateway_all_online": round(online - simulators_ready, 1),
        }
    finally:
        if counter is not None:
            counter.close()
        await _stop(gateway)
        await _stop(simulators)
        if broker is not None:
            await asyncio.to_thread(broker.stop)
        if cluster is not None:
            await asyncio.to_thread(cluster.stop)
    result["details"]["gateway_log"] = _log_findings(gw_log, 25)
    result["details"]["simulator_log"] = _log_findings(sim_log, 10)
    if keep:
        result["details"]["work_dir"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return result


async def _measure(
    http: httpx.AsyncClient,
    url: str,
    cluster: PostgresCluster,
    gateway_pid: int,
    simulators_pid: int,
    layout: Layout,
    counter: ReportCounter | None,
    duration_s: float,
) -> dict[str, Any]:
    gw_procs, sim_procs = _tree(gateway_pid), _tree(simulators_pid)
    pg_pid = _postmaster(cluster)
    pg_procs = _tree(pg_pid) if pg_pid else []
    poller, sampler = LagPoller(url), ResourceSampler(gateway_pid)

    rows0 = await _count_rows(url)
    metrics0 = _metrics((await http.get("/metrics")).text)
    devices0 = {d["device_id"]: d for d in (await http.get("/api/v1/devices")).json()["devices"]}
    if counter is not None:
        counter.take()
    psutil.cpu_percent()
    cpu0 = {
        "gateway": _cpu_seconds(gw_procs),
        "simulators": _cpu_seconds(sim_procs),
        "postgres": _cpu_seconds(pg_procs),
    }
    t0 = time.monotonic()
    tasks = [asyncio.create_task(poller.run()), asyncio.create_task(sampler.run())]
    try:
        await asyncio.sleep(duration_s)
        done = [t for t in tasks if t.done()]
        for t in done:
            t.result()  # a poller that died is a broken measurement: say why
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - t0
    cpu1 = {
        "gateway": _cpu_seconds(_tree(gateway_pid)),
        "simulators": _cpu_seconds(_tree(simulators_pid)),
        "postgres": _cpu_seconds(_tree(pg_pid) if pg_pid else []),
    }
    cpu = {k: _cpu_used(cpu0[k], cpu1[k]) for k in cpu0}
    machine_cpu = psutil.cpu_percent() * psutil.cpu_count()
    reports = counter.take() if counter is not None else None
    gw_procs = _tree(gateway_pid)
    rss_end = _rss(gw_procs)
    hwm = _hwm(gateway_pid)
    metrics1 = _metrics((await http.get("/metrics")).text)
    health = (await http.get("/api/v1/devices")).json()
    # Counted like at the start of the window: both ends carry at most one unflushed batch.
    rows1 = await _count_rows(url)

    mib = 1 << 20
    devices1 = {d["device_id"]: d for d in health["devices"]}
    rates: dict[str, Any] = {}
    for proto in PROTOCOLS:
        ids = [i for i, p in layout.protocol.items() if p == proto]
        per_device = [(devices1[i]["samples"] - devices0[i]["samples"]) / elapsed for i in ids]
        samples_in = metrics1.get(("fabhub_gateway_samples_in_total", proto), 0.0) - metrics0.get(
            ("fabhub_gateway_samples_in_total", proto), 0.0
        )
        rates[proto] = {
            "devices": len(ids),
            "samples_in_per_s": samples_in / elapsed,
            "per_device_samples_per_s": {
                "min": min(per_device),
                "median": statistics.median(per_device),
                "max": max(per_device),
            },
        }
    if reports is not None:  # the printers on the site broker only
        site = COUNTS["mqtt"] - len(layout.lan)
        rates["mqtt"]["broker_reports_per_s"] = reports / elapsed
        rates["mqtt"]["site_printers"] = site

    histogram = {}
    for proto in PROTOCOLS:
        count = metrics1.get(("fabhub_gateway_lag_seconds_count", proto), 0.0)
        total = metrics1.get(("fabhub_gateway_lag_seconds_sum", proto), 0.0)
        d_count = count - metrics0.get(("fabhub_gateway_lag_seconds_count", proto), 0.0)
        d_sum = total - metrics0.get(("fabhub_gateway_lag_seconds_sum", proto), 0.0)
        histogram[proto] = {
            "count": int(count),
            "sum_s": total,
            "mean_s": total / count if count else None,
            "window_mean_s": d_sum / d_count if d_count else None,
        }

    obs = poller.observations
    half = t0 + elapsed / 2
    lag = _lag_summary(obs, t0)
    lag["poll_interval_s"] = LAG_POLL_S
    lag["polls"] = len(poller.query_s)
    lag["poll_query_ms_mean"] = 1000 * statistics.fmean(poller.query_s) if poller.query_s else None
    lag["poll_query_ms_p99"] = 1000 * (_quantile(poller.query_s, 0.99) or 0.0)
    lag["devices_observed"] = len({o[1] for o in obs})
    lag["first_half"] = _lag_summary([o for o in obs if o[0] < half], t0)
    lag["second_half"] = _lag_summary([o for o in obs if o[0] >= half], t0)
    bins: dict[int, list[float]] = {}
    for o in obs:
        bins.setdefault(int((o[0] - t0) // 10), []).append(o[2])
    lag["p50_by_10s"] = [_round(_quantile(bins[k], 0.5)) for k in sorted(bins)]
    lag["per_protocol"] = {p: _lag_summary([o for o in obs if layout.protocol[o[1]] == p], t0) for p in PROTOCOLS}

    delta_rows = {t: rows1[t] - rows0[t] for t in TABLES}
    counter_delta = {
        name: {p: metrics1.get((name, p), 0.0) - metrics0.get((name, p), 0.0) for p in PROTOCOLS}
        for name in ("fabhub_gateway_errors_total", "fabhub_gateway_quarantined_total")
    }
    rows_total = sum(delta_rows.values())
    details = {
        "gateway_cpu_pct_max_1s": sampler.cpu_max_1s,
        "gateway_rss_hwm_mib": hwm / mib if hwm else None,
        "other_cpu_pct": {
            "simulators": 100 * cpu["simulators"] / elapsed,
            "postgres": 100 * cpu["postgres"] / elapsed,
            "machine": machine_cpu,
            "cores": psutil.cpu_count(),
        },
        "rows": {**delta_rows, "total": rows_total},
        "rates": rates,
        "lag": lag,
        "gateway_lag_histogram": histogram,
        "gateway_lag_help": metrics1.get(("fabhub_gateway_lag_seconds", "help"), "the gateway's lag histogram"),
        "health": {
            "not_online_at_end": {
                i: f"{d['connection']} ({d.get('last_error')})"
                for i, d in devices1.items()
                if d["connection"] != "online"
            },
            "reconnects_during": {
                i: d["reconnects"] - devices0[i]["reconnects"]
                for i, d in devices1.items()
                if d["reconnects"] != devices0[i]["reconnects"]
            },
            "errors_during": counter_delta["fabhub_gateway_errors_total"],
            "quarantined_during": counter_delta["fabhub_gateway_quarantined_total"],
            "spool_depth": health.get("spool_depth"),
            "spool_dropped": health.get("spool_dropped"),
            "writer_pending": health.get("writer_pending"),
        },
    }
    return {  # the headline figures first (bench/gateway_paths.py prints the keys one per line), then the rest
        "devices": dict(COUNTS),
        "duration_s": round(elapsed, 1),
        "gateway_cpu_pct": round(100 * cpu["gateway"] / elapsed, 1),
        "gateway_rss_end_mib": round(rss_end / mib, 1),
        "gateway_rss_peak_mib": round(max(sampler.rss_peak, rss_end) / mib, 1),
        "rows_per_s": round(rows_total / elapsed, 1),
        "lag_p50_s": _round(lag["p50_s"]),
        "lag_p99_s": _round(lag["p99_s"]),
        "lag_observations": lag["observations"],
        "lag_resolution_s": LAG_POLL_S,
        "gateway_lag_histogram": {p: {"count": h["count"], "sum_s": _round(h["sum_s"])} for p, h in histogram.items()},
        "details": details,
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# -- output ------------------------------------------------------------------------------------------


def _s(value: float | None, unit: str = " s", digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def format_report(r: dict[str, Any]) -> str:
    """The figures of run_center() as text."""
    d = r["details"]
    lag, rows, other, health = d["lag"], d["rows"], d["other_cpu_pct"], d["health"]
    counts = ", ".join(f"{n} {p}" for p, n in r["devices"].items())
    lan = d.get("lan_printers", 0)
    if lan:
        counts += f": {lan} printers in LAN mode, each its own TLS broker" + (
            f", {r['devices']['mqtt'] - lan} on the site broker" if lan < r["devices"]["mqtt"] else ""
        )
    out = [
        f"whole center: {sum(r['devices'].values())} devices ({counts}), simulators at {d['speed']:g}x,"
        f" measured {r['duration_s']:.1f} s once all were online"
        f" (startup: simulators ready after {d['startup_s']['simulators_ready']} s,"
        f" all devices online {d['startup_s']['gateway_all_online']} s after the gateway started)",
        f"gateway CPU:    {r['gateway_cpu_pct']:.1f} % of one core (average; busiest second"
        f" {d['gateway_cpu_pct_max_1s']:.1f} %)",
        f"gateway memory: RSS {r['gateway_rss_end_mib']:.0f} MiB at the end, peak {r['gateway_rss_peak_mib']:.0f} MiB"
        f" during the window (sampled each second), lifetime high-water mark {_s(d['gateway_rss_hwm_mib'], ' MiB', 0)}",
        f"  same machine, {other['cores']} cores: simulators {other['simulators']:.1f} %, PostgreSQL"
        f" {other['postgres']:.1f} % (incl. the lag poller's backend), whole machine {other['machine']:.0f} % of"
        f" {100 * other['cores']} %",
        f"rows stored:    {r['rows_per_s']:,.0f} /s ({rows['total']:,} rows: telemetry_sample"
        f" {rows['telemetry_sample']:,}, text {rows['telemetry_text_sample']:,}, state {rows['telemetry_state']:,})",
        f"lag device change -> row in the database: p50 {_s(r['lag_p50_s'])}, p99 {_s(r['lag_p99_s'])},"
        f" max {_s(lag['max_s'])} ({r['lag_observations']:,} observations over {lag['devices_observed']} devices)",
        f"  resolution {1000 * r['lag_resolution_s']:.0f} ms: the database was polled every"
        f" {1000 * r['lag_resolution_s']:.0f} ms ({lag['polls']:,} polls,"
        f" query {_s(lag['poll_query_ms_mean'], ' ms', 1)} mean, {_s(lag['poll_query_ms_p99'], ' ms', 1)} p99)"
        " and a lag is taken at the poll that first sees the row, so it overstates by up to one interval;"
        " only each device's newest sample per poll is seen",
        f"  first half p50 {_s(lag['first_half']['p50_s'])} p99 {_s(lag['first_half']['p99_s'])};"
        f" second half p50 {_s(lag['second_half']['p50_s'])} p99 {_s(lag['second_half']['p99_s'])};"
        f" trend {_s(lag['trend_s_per_min'], ' s/min')}",
        f"  p50 by 10 s: {', '.join(_s(v, '', 2) for v in lag['p50_by_10s'])}",
        "  (trend: least-squares slope over the window. A backlog shows as a lag that keeps growing with the writer's"
        " pending count and the spool below; the writer's 1 s flush cycle beating against the devices' 1 s cycles"
        " makes a bounded sawtooth of a few minutes' period, part of which a short window also sees as a slope)",
    ]
    for proto in PROTOCOLS:
        p = lag["per_protocol"][proto]
        out.append(
            f"  {proto:7s} p50 {_s(p['p50_s'])} p99 {_s(p['p99_s'])} max {_s(p['max_s'])}"
            f" trend {_s(p['trend_s_per_min'], ' s/min')} ({p['observations']:,} observations)"
        )
    out.append("rates from the gateway's counters (samples after report-on-change and deadbands):")
    for proto in PROTOCOLS:
        x = d["rates"][proto]
        per = x["per_device_samples_per_s"]
        line = (
            f"  {proto:7s} {x['samples_in_per_s']:8.1f} samples/s, per device min {per['min']:.2f}"
            f" median {per['median']:.2f} max {per['max']:.2f}"
        )
        if "broker_reports_per_s" in x:
            line += (
                f"; the site broker delivered {x['broker_reports_per_s']:.1f} reports/s"
                f" ({x['broker_reports_per_s'] / x['site_printers']:.2f} per printer on it)"
            )
        out.append(line)
    out.append(f"fabhub_gateway_lag_seconds ({d['gateway_lag_help']}), over the gateway's life:")
    for proto in PROTOCOLS:
        h = d["gateway_lag_histogram"][proto]
        out.append(
            f"  {proto:7s} count {h['count']:,} sum {h['sum_s']:.1f} s, mean {_s(h['mean_s'])}"
            f" (during the window {_s(h['window_mean_s'])})"
        )
    out.append(
        f"health: not online at the end {len(health['not_online_at_end'])}, devices that went offline during the"
        f" window {len(health['reconnects_during'])}, link errors {json.dumps(health['errors_during'])},"
        f" quarantined {json.dumps(health['quarantined_during'])}, spool depth {health['spool_depth']}"
        f" (dropped {health['spool_dropped']}), writer pending {health['writer_pending']}"
    )
    for device, state in list(health["not_online_at_end"].items())[:10]:
        out.append(f"  {device}: {state}")
    for name in ("gateway_log", "simulator_log"):
        findings = d[name]
        out.append(
            f"{name.replace('_', ' ')}: {sum(findings['counts'].values())} warning/error lines"
            f" {json.dumps(findings['counts'])}, {findings['tracebacks']} tracebacks"
        )
        out.extend(f"  {line[:300]}" for line in findings["first_lines"])
    if "work_dir" in d:
        out.append(f"devices.yaml and the logs kept in {d['work_dir']}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description="Whole-center gateway benchmark: 200 simulated devices at 1 Hz.")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds to measure (default 60)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds between all online and measuring")
    parser.add_argument(
        "--lan-printers",
        type=int,
        default=COUNTS["mqtt"],
        help=f"printers in LAN mode, each its own TLS broker; the rest on the site broker (default {COUNTS['mqtt']})",
    )
    parser.add_argument("--keep", action="store_true", help="keep the working folder with the logs")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per status poll otherwise
    if not 0 <= args.lan_printers <= COUNTS["mqtt"]:
        parser.error(f"--lan-printers is between 0 and {COUNTS['mqtt']}")
    result = asyncio.run(
        run_center(args.duration, warmup_s=args.warmup, lan_printers=args.lan_printers, keep=args.keep)
    )
    print(format_report(result))
    if args.json:
        print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
