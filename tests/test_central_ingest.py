"""Site gateway -> central broker -> ingest workers -> TimescaleDB, exactly once: with a worker killed
(kill -9) and restarted with its client id, with the broker restarted, with malformed and redelivered
messages. Each test has its own Mosquitto: persistent sessions and shared subscriptions must not leak
between tests."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from fabhub.devices import load_devices
from fabhub.devservices import Mosquitto
from fabhub.gateway_setup import build_publishing_gateway
from fabhub.settings import Settings
from gateway import wire
from gateway.central import CentralLink
from gateway.coordinator import DeviceStatus
from gateway.health import GatewayFigures, HealthReport, HealthTable
from gateway.ingest import IngestWorker
from gateway.publish import HealthPublisher, Publisher
from gateway.spool import Item, Spool
from telemetry.model import Count, Rejected, Sample
from telemetry.writer import BatchWriter, utc_now
from tests.gateway_rig import eventually
from tests.http import REPO

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
SITE = "site-a"


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    own = Mosquitto().start()
    yield own
    own.stop()


def link(broker: Mosquitto, client_id: str) -> CentralLink:
    return CentralLink.from_url(f"{broker.url}/{SITE}", client_id)


def tick(n: int, devices: list[str], signals: int = 5, *, counts: bool = False) -> list[Item]:
    """One second of a center: numbers and a state per device, and a part counter if asked."""
    t = T0 + timedelta(seconds=n)
    out: list[Item] = []
    for d in devices:
        out.extend(Sample(t, d, f"signal_{s}", float(n + s)) for s in range(signals))
        out.append(Sample(t, d, "state", "running" if n % 3 else "idle"))
        if counts:
            out.append(Count(t, d, "parts_total", 100 + n))
    return out


async def stored(pool: AsyncConnectionPool) -> tuple[int, int, dict[str, float]]:
    """(numeric samples without deltas, states, parts counted per device)."""
    async with pool.connection() as conn:
        samples = await (
            await conn.execute("SELECT count(*) FROM telemetry_sample WHERE signal NOT LIKE '%.delta'")
        ).fetchone()
        states = await (await conn.execute("SELECT count(*) FROM telemetry_state")).fetchone()
        parts = await (
            await conn.execute(
                "SELECT device_id, sum(value) FROM telemetry_sample WHERE signal = 'parts_total.delta' GROUP BY 1"
            )
        ).fetchall()
    assert samples is not None and states is not None
    return samples[0], states[0], {d: v for d, v in parts}


@contextlib.asynccontextmanager
async def workers(pool: AsyncConnectionPool, broker: Mosquitto, *ids: str) -> AsyncIterator[list[IngestWorker]]:
    writer = BatchWriter(pool)
    health = HealthTable(pool)
    running = [IngestWorker(link(broker, i), writer.deliver_retrying, health=health, max_age=0.05) for i in ids]
    tasks = [asyncio.create_task(w.run()) for w in running]
    try:
        for w in running:
            await asyncio.wait_for(w.subscribed.wait(), 15)
        yield running
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_the_wire_format_round_trips_and_refuses_with_reasons():
    items: list[Item] = [
        Sample(T0, "cnc-01", "spindle_speed", 1200.5, 1),
        Sample(T0, "cnc-01", "program", "O1000"),
        Sample(T0, "cnc-01", "state", "running"),
        Count(T0, "cnc-01", "parts_total", 7, 65536, 2.0, "job-1"),
        Rejected(None, "cnc-01", "feed_override", "abc", "not a number"),
        Sample(T0, "robot-01", "power_kw", 3.5),
    ]
    [(where, payload)] = wire.encode(SITE, items)
    assert where == "fabhub/v1/site-a/samples"
    assert wire.decode(where, payload) == items
    # a batch larger than a message is split, each device's items keeping their order
    many = tick(1, [f"dev-{n:02d}" for n in range(100)], signals=30)
    messages = wire.encode(SITE, many)
    assert len(messages) == math.ceil(len(many) / wire.MAX_ITEMS) > 1
    assert sorted(i for t, p in messages for i in wire.decode(t, p)) == sorted(many)
    # JSON has no NaN: refused at the gateway with the writer's reason
    [(t, p)] = wire.encode(SITE, [Sample(T0, "cnc-01", "power_kw", math.nan)])
    [nan] = wire.decode(t, p)
    assert type(nan) is Rejected and nan.reason == "value is not finite"
    # an id the writer refuses still travels, to be quarantined by the writer with its reason
    [(t, p)] = wire.encode(SITE, [Sample(T0, "Bad/Id", "x", 1.0)])
    assert wire.decode(t, p) == [Sample(T0, "Bad/Id", "x", 1.0)]
    for payload, why in [
        (b"{not json", "JSONDecodeError"),
        (b'{"v": 2, "devices": {}}', "unsupported version 2"),
        (b'{"v": 1, "devices": {"cnc-01": {"s": [["2026-01-01T00:00:00"], ["x"], [1.0], [0]]}}}', "without its offset"),
        (b'{"v": 1, "devices": {"cnc-01": {"z": []}}}', "unknown item kind"),
        (b'{"v": 1, "devices": {"cnc-01": {"s": [["2026-01-01T00:00:00Z"], ["x"], [1.0]]}}}', "not 4 columns"),
        (b'{"v": 1, "devices": {"cnc-01": {"s": [[], [], [], [0]]}}}', "of one length"),
        (b'{"v": 1, "devices": {"cnc-01": {"r": [[null], ["x"], [1.0], ["why"]]}}}', "are text"),
        (b'{"v": 1, "devices": {"cnc-01": []}}', "devices missing"),
        (b"\xff\xfe", "JSONDecodeError"),
    ]:
        [refused] = wire.decode("fabhub/v1/site-a/samples", payload)
        assert type(refused) is Rejected and refused.device_id == "unknown" and refused.signal == "payload"
        assert refused.reason.startswith("malformed payload on fabhub/v1/site-a/samples"), refused
        assert why in refused.reason, refused
    with pytest.raises(ValueError, match="names the site"):
        wire.site_of("/Site A")


STATUSES = [
    DeviceStatus(
        "cnc-01", "opcua", "online", T0, T0 + timedelta(seconds=5), "running", 5, 1, 2, "timeout", Counter(t=2)
    ),
    DeviceStatus("robot-01", "modbus"),
]


def test_a_health_round_round_trips_and_a_malformed_one_is_refused_with_its_reason():
    report = HealthReport("gw-1", SITE, T0, STATUSES, GatewayFigures(3, 1, 0))
    where, payload = wire.encode_health(SITE, report)
    assert where == "fabhub/v1/site-a/health" and wire.is_health(where)
    assert wire.decode_health(where, payload) == report
    good = b'{"v": 1, "gateway_id": "gw", "heartbeat": "2026-01-01T00:00:00Z", "figures": %s, "devices": [%s]}'
    figures = b'{"spool_depth": 0, "spool_dropped": 0, "writer_pending": 0}'
    device = (
        b'{"device_id": "cnc-01", "protocol": "opcua", "connection": "%s", "since": null, "last_sample": null,'
        b' "state": null, "samples": %s, "quarantined": 0, "reconnects": 0, "last_error": null, "errors": {}}'
    )
    assert type(wire.decode_health(where, good % (figures, device % (b"online", b"0")))) is HealthReport
    for body, why in [
        (b"{garbage", "JSONDecodeError"),
        (b'{"v": 2}', "unsupported version 2"),
        (b'{"v": 1, "gateway_id": "gw"}', "has v, gateway_id"),
        (good.replace(b"Z", b"") % (figures, b""), "without its offset"),
        (good % (b"{}", b""), "figures is not an object"),
        (good % (figures, device % (b"asleep", b"0")), "devices[0].connection: not one of"),
        (good % (figures, device % (b"online", b"-1")), "devices[0].samples: not a count"),
        (good % (figures, device % (b"online", b"true")), "devices[0].samples: not a count"),
        (good % (figures, b'{"device_id": "cnc-01"}'), "devices[0] is not an object"),
    ]:
        refused = wire.decode_health(where, body)
        assert type(refused) is Rejected and refused.signal == "payload", refused
        assert refused.reason.startswith("malformed payload on fabhub/v1/site-a/health"), refused
        assert why in refused.reason, refused


async def test_a_publishing_gateways_device_health_reaches_the_table_through_a_worker(pool, broker, tmp_path):
    """Its devices appear with the heartbeat it sent, a late older round changes nothing, a malformed round is
    quarantined without stopping the worker, and once the gateway is silent its devices read unknown."""
    publisher = Publisher(link(broker, "gw-h"), SITE, Spool(tmp_path / "spool"), max_age=0.05)
    health = HealthPublisher(publisher, every=0.5)
    table = HealthTable(pool, every=0.5, stale_rounds=2)
    ids = ["cnc-01", "robot-01"]
    figures = GatewayFigures(3, 1, 0)
    raw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="raw", protocol=mqtt.MQTTv5)
    raw.connect("127.0.0.1", broker.port)
    raw.loop_start()
    await publisher.start()
    try:
        async with workers(pool, broker, "ingest-1", "ingest-2") as running:
            await eventually(publisher.connected.is_set)
            raw.publish(wire.topic(SITE, "health"), b"{garbage", qos=1).wait_for_publish(10)
            sent = datetime.now(UTC)
            await health.report("gw-h", "ignored: the publisher's site", sent, STATUSES, figures)
            await eventually(lambda: heartbeats(pool, sent), timeout=30)
            now = await table.devices(ids, sent)
            assert now["cnc-01"] | {"device_id": "cnc-01"} == {
                "device_id": "cnc-01",
                "protocol": "opcua",
                "connection": "online",
                "state": "running",
                "since": T0,
                "last_sample": T0 + timedelta(seconds=5),
                "last_error": "timeout",
                "samples": 5,
                "quarantined": 1,
                "reconnects": 2,
                "errors": {"t": 2},
            }
            assert now["robot-01"]["connection"] == "connecting"
            assert await table.figures(sent) == figures
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT gateway_id, site FROM gateway_report")
                assert await cur.fetchall() == [("gw-h", SITE)]
            # a round older than the stored one (late, redelivered, or through the other worker) changes nothing
            offline = [replace(STATUSES[0], connection="offline")]
            await health.report("gw-h", SITE, sent - timedelta(seconds=10), offline, figures)
            await eventually(lambda: sum(w.stats.health for w in running) == 2, timeout=30)
            assert await heartbeats(pool, sent)
            assert (await table.devices(ids, sent))["cnc-01"]["connection"] == "online"
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT signal, value, reason FROM telemetry_quarantine")
                [(signal, value, reason)] = await cur.fetchall()
            assert (signal, value) == ("payload", "{garbage")
            assert reason.startswith("malformed payload on fabhub/v1/site-a/health: JSONDecodeError")

            async def unknown() -> bool:
                seen = await table.devices(ids, datetime.now(UTC))
                return all(seen[d]["connection"] == "unknown" and seen[d]["state"] is None for d in ids)

            await eventually(unknown, timeout=30)  # the gateway stopped reporting: its devices read unknown
    finally:
        await publisher.close()
        raw.disconnect()
        raw.loop_stop()


async def test_fabhub_gateway_publish_reports_its_sites_devices_until_it_stops(pool, broker, tmp_path):
    """build_publishing_gateway, as `fabhub gateway --site site-a --publish URL` runs it: its device appears in the health table from its rounds, and reads unknown once the gateway stopped."""
    text = (REPO / "devices.yaml").read_text().replace("  - id: robot-01\n", "  - id: robot-01\n    site: site-a\n")
    (tmp_path / "devices.yaml").write_text(text)
    settings = Settings(site=SITE, data_dir=tmp_path, health_every_s=0.5, gateway_id="gw-site-a")
    gateway = build_publishing_gateway(
        settings,
        load_devices(tmp_path / "devices.yaml"),
        f"{broker.url}/{SITE}",
        None,
        utc_now,
        CollectorRegistry(),
        {},
    )
    table = HealthTable(pool, every=0.5, stale_rounds=2)

    async def reads(*connections: str) -> bool:
        seen = await table.devices(["robot-01"], datetime.now(UTC))
        return seen.get("robot-01", {}).get("connection") in connections

    async with workers(pool, broker, "ingest-1"):
        await gateway.start()
        try:
            await eventually(lambda: reads(*wire.CONNECTIONS), timeout=60)  # whether a simulator runs or not
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT gateway_id, site FROM device_health")
                assert await cur.fetchall() == [("gw-site-a", SITE)]
        finally:
            await gateway.stop()
        await eventually(lambda: reads("unknown"), timeout=30)


async def heartbeats(pool: AsyncConnectionPool, sent: datetime) -> bool:
    """Whether both devices' rows carry the heartbeat the gateway sent (and no other)."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT device_id, heartbeat FROM device_health ORDER BY 1")
        return await cur.fetchall() == [("cnc-01", sent), ("robot-01", sent)]


async def test_two_workers_store_a_stream_once_across_a_broker_restart(pool, broker, tmp_path):
    devices = [f"dev-{n:02d}" for n in range(8)]
    publisher = Publisher(link(broker, "gw-a"), SITE, Spool(tmp_path / "spool", retry_max_wait=0.5), max_age=0.05)
    await publisher.start()
    ticks = 60
    async with workers(pool, broker, "ingest-1", "ingest-2") as running:
        await eventually(publisher.connected.is_set)
        for n in range(ticks):
            if n == 20:
                await eventually(lambda: publisher.stats.written > 0)
                await asyncio.to_thread(broker.stop, keep_files=True)
            if n == 40:
                await eventually(lambda: publisher._spool.backlog)  # the broker is away: batches go to disk
                await asyncio.to_thread(broker.start)
            await publisher.submit(tick(n, devices))
            await asyncio.sleep(0.02)
        await publisher.flush()
        await eventually(lambda: not publisher._spool.backlog, timeout=60)
        want = (ticks * len(devices) * 5, ticks * len(devices), {})
        await settles(pool, want, 60)
        assert all(w.stats.messages for w in running), "the shared subscription deals to both workers"
    await publisher.close()
    assert publisher._spool.stats.spooled > 0


async def settles(pool: AsyncConnectionPool, want: tuple, timeout: float) -> None:
    """The rows reach what was published, never pass it; the last look is the assertion's message."""

    async def reached() -> bool:
        got = await stored(pool)
        assert got[0] <= want[0] and got[1] <= want[1], f"more rows than published: {got} > {want}"
        return got == want

    with contextlib.suppress(AssertionError):
        await eventually(reached, timeout=timeout)
    assert await stored(pool) == want


async def test_a_retired_worker_stores_its_share_and_ends_its_session(pool, broker, tmp_path):
    """Mosquitto deals a stopped worker's session its share: `leave` stores it and ends the session."""
    devices = [f"dev-{n:02d}" for n in range(4)]
    publisher = Publisher(link(broker, "gw-c"), SITE, Spool(tmp_path / "spool"), max_age=0.05)
    await publisher.start()
    async with workers(pool, broker, "ingest-1"):
        async with workers(pool, broker, "ingest-2"):
            pass  # subscribed, then stopped: its session stays a member of the group
        await eventually(publisher.connected.is_set)
        for n in range(20):
            await publisher.submit(tick(n, devices))
            await asyncio.sleep(0.02)
        await publisher.flush()
        await asyncio.sleep(0.5)
        assert (await stored(pool))[0] < 20 * len(devices) * 5, "the stopped worker's share waits in its session"
        retiring = IngestWorker(link(broker, "ingest-2"), BatchWriter(pool).deliver_retrying, max_age=0.05)
        await asyncio.wait_for(retiring.leave(quiet=0.5), 30)
        assert retiring.stats.messages > 0
        for n in range(20, 40):  # all to the one member left
            await publisher.submit(tick(n, devices))
        await publisher.flush()
        await settles(pool, (40 * len(devices) * 5, 40 * len(devices), {}), 30)
    await publisher.close()
    assert not await session_present(broker, "ingest-2")


async def session_present(broker: Mosquitto, client_id: str) -> bool:
    answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()
    probe = CentralLink.from_url(broker.url, client_id).client()
    probe.on_connect = lambda c, u, flags, *_: loop.call_soon_threadsafe(answer.set_result, flags.session_present)
    CentralLink.from_url(broker.url, client_id).connect(probe, receive_maximum=1)
    try:
        return await asyncio.wait_for(answer, 10)
    finally:
        probe.disconnect()
        probe.loop_stop()


def start_worker(db_url: str, broker: Mosquitto, client_id: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FABHUB_")}
    env |= {
        "FABHUB_DATABASE_URL": db_url,
        "FABHUB_INGEST_URL": broker.url,
        "FABHUB_MQTT_CLIENT_ID": client_id,
        "FABHUB_DEVICES": str(REPO / "devices.yaml"),
        "PYTHONPATH": str(REPO),
    }
    # the deploy step writes the catalogue; the worker only checks its devices.yaml against it
    subprocess.run([sys.executable, "-m", "fabhub.cli", "catalogue", "sync"], cwd=REPO, env=env, check=True)
    return subprocess.Popen(
        [sys.executable, "-m", "fabhub.cli", "ingest"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


@pytest.mark.timeout(180)
async def test_a_worker_killed_with_sigkill_loses_nothing_and_stores_nothing_twice(pool, db_url, broker, tmp_path):
    devices = sorted(load_devices(REPO / "devices.yaml").device_ids)
    publisher = Publisher(link(broker, "gw-b"), SITE, Spool(tmp_path / "spool"), max_age=0.05)
    await publisher.start()
    procs = [start_worker(db_url, broker, "ingest-a"), start_worker(db_url, broker, "ingest-b")]
    try:
        await eventually(publisher.connected.is_set)
        await asyncio.sleep(3)  # both workers subscribed (they log it; a missed tick would fail the count below)
        ticks = 150
        for n in range(ticks):
            if n == 60:
                await eventually(lambda: _any_rows(pool), timeout=60)
                os.kill(procs[0].pid, signal.SIGKILL)
                procs[0].wait()
            if n == 100:  # a supervisor restarts it under its client id: its session's unacked messages return
                procs[0] = start_worker(db_url, broker, "ingest-a")
            await publisher.submit(tick(n, devices))
            await asyncio.sleep(0.02)
        await publisher.flush()
        want = (ticks * len(devices) * 5, ticks * len(devices), {})
        await settles(pool, want, 90)
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in procs:
            _, errors = proc.communicate(timeout=30)
            assert b"Traceback" not in errors, errors.decode()[-3000:]
        await publisher.close()


async def _any_rows(pool: AsyncConnectionPool) -> bool:
    return (await stored(pool))[0] > 0


async def test_malformed_and_redelivered_messages_are_stored_once_and_acknowledged(pool, broker):
    good = (
        tick(1, ["cnc-01"], counts=True)
        + tick(2, ["cnc-01"], counts=True)
        + [Rejected(T0, "cnc-01", "feed_override", "abc", "not a number")]
    )
    [(where, payload)] = wire.encode(SITE, good)
    raw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="raw", protocol=mqtt.MQTTv5)
    raw.connect("127.0.0.1", broker.port)
    raw.loop_start()
    try:
        async with workers(pool, broker, "ingest-1") as [worker]:
            for body in (payload, b"{garbage", payload, b"{garbage"):  # each sent twice, as a redelivery would
                raw.publish(where, body, qos=1).wait_for_publish(10)
            await eventually(lambda: worker.stats.messages == 4)
            assert await stored(pool) == (10, 2, {"cnc-01": 1.0})
            async with pool.connection() as conn:
                rows = await (
                    await conn.execute("SELECT device_id, signal, value, reason FROM telemetry_quarantine ORDER BY 2")
                ).fetchall()
            assert rows[0] == ("cnc-01", "feed_override", "abc", "not a number")
            assert rows[1][:3] == ("unknown", "payload", "{garbage") and rows[1][3].startswith("malformed payload")
            assert len(rows) == 2
        # acknowledged: the same client id's session holds nothing to deliver again
        async with workers(pool, broker, "ingest-1") as [again]:
            raw.publish(where, payload, qos=1).wait_for_publish(10)
            await eventually(lambda: again.stats.messages >= 1)
            await asyncio.sleep(0.5)
            assert again.stats.messages == 1
    finally:
        raw.disconnect()
        raw.loop_stop()


def test_fabhub_ingest_says_what_it_needs(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FABHUB_")} | {"PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "fabhub.cli", "ingest"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 2 and "FABHUB_DATABASE_URL" in result.stderr
