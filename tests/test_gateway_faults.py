"""Faults across the chain, counted in rows: the database cut for 30 s during ingest, the broker
restarted. Nothing may be lost and nothing written twice."""

import asyncio

import psycopg

from simulators.faultproxy import FaultProxy
from simulators.machine import Machine, Profile
from simulators.modbus_robot import ModbusRobot
from tests.gateway_rig import eventually, printer, rig

SERIAL = "01P00A391800002"


async def stored_rows(r) -> int:
    """Rows the gateway produced (the counters' deltas are the writer's: see counted_exactly)."""
    counts = await r.rows(
        "SELECT (SELECT count(*) FROM telemetry_sample WHERE signal NOT LIKE '%%.delta')"
        " + (SELECT count(*) FROM telemetry_text_sample) + (SELECT count(*) FROM telemetry_state)"
    )
    return counts[0][0]


async def counted_exactly(r, device_id: str) -> None:
    """Every step of the stored raw counter is in the deltas, once."""
    [(first, last, deltas)] = await r.rows(
        "SELECT (array_agg(value ORDER BY time))[1], (array_agg(value ORDER BY time DESC))[1],"
        " (SELECT sum(value) FROM telemetry_sample WHERE device_id = %s AND signal = 'parts_total.delta')"
        " FROM telemetry_sample WHERE device_id = %s AND signal = 'parts_total'",
        device_id,
        device_id,
    )
    assert last > first and deltas == last - first


async def test_database_cut_for_30_seconds_loses_and_duplicates_nothing(db_url, pg_cluster, tmp_path, mosquitto):
    proxy = FaultProxy("127.0.0.1", pg_cluster.port)
    await proxy.start()
    via_proxy = psycopg.conninfo.make_conninfo(db_url, port=proxy.port)
    busy = ModbusRobot("robot-01", 0, Machine(5, Profile(ideal_cycle_s=20)), speed=120, tick_s=0.1)
    busy.machine.force("running", 10_000)
    sims = {"robot-01": busy, "printer-02": printer(SERIAL, mosquitto.port, mode="delta")}
    sims["printer-02"].speed = 0
    async with rig(db_url, tmp_path, sims, mqtt_url=mosquitto.url, pool_url=via_proxy) as r:
        await r.state_becomes("robot-01", "running")
        await sims["printer-02"].tick(60)
        before = r.gateway.spool.stats.spooled
        await proxy.refuse()  # the database is gone: connections cut, new ones refused
        printer_sim = sims["printer-02"]
        for _ in range(30):  # 30 s of machines working while the database is away
            await printer_sim.tick(60)
            await asyncio.sleep(1)
        assert r.gateway.spool.stats.spooled > before  # the outage really went through the spool
        assert r.gateway.spool.depth > 0
        await proxy.resume()
        await eventually(lambda: not r.gateway.spool.backlog, timeout=60)
        await r.gateway.stop()  # everything produced is now in the database or would be reported lost
        stored = await stored_rows(r)
        produced = sum(s.samples for s in r.gateway.statuses)
        assert stored == produced
        await counted_exactly(r, "robot-01")
        assert r.gateway.spool.stats.replayed == r.gateway.spool.stats.spooled
        assert r.gateway.spool.stats.dropped == 0
    await proxy.stop()


async def test_broker_restart_resumes_without_duplicates(db_url, tmp_path, mosquitto):
    sim = printer(SERIAL, mosquitto.port, mode="full")
    sim.machine.force("running", 3600)
    async with rig(db_url, tmp_path, {"printer-02": sim}, mqtt_url=mosquitto.url) as r:
        await sim.tick(60)
        await r.state_becomes("printer-02", "running")
        received = r.gateway.hub.received
        await asyncio.to_thread(mosquitto.restart)
        await eventually(lambda: r.gateway.hub.connected.is_set(), timeout=60)
        await sim.tick(60)
        await eventually(lambda: r.gateway.hub.received > received, timeout=60)
        await r.state_becomes("printer-02", "running")
        await r.gateway.stop()
        assert await stored_rows(r) == sum(s.samples for s in r.gateway.statuses)


async def test_metrics_follow_the_spool(db_url, tmp_path):
    """Scraped from the running app: a spool an earlier run left behind is replayed at start and counted as
    replayed; what a full spool cannot take is counted as dropped."""
    import httpx
    import psycopg

    from gateway.spool import Spool
    from tests.gateway_rig import devices_for
    from tests.http import app_for, serving
    from tests.samples import series

    left = Spool(tmp_path / "spool")
    await left.put(series("robot-01", "power_kw", [1.0, 2.0, 3.0]))
    await left.put(series("robot-01", "power_kw", [4.0, 5.0], start=10))
    devices = devices_for(["robot-01"], {"robot-01": 9})  # nobody answers there: offline, beside the point
    app = app_for(db_url, devices, run_gateway=True, data_dir=tmp_path, batch_max_age_s=0.05)
    async with serving(app) as base, httpx.AsyncClient(base_url=base) as client:

        async def scrape() -> str:
            return (await client.get("/metrics")).text

        # The 5 samples left behind, and whatever this run spooled behind them while they were replayed (the
        # robot's offline state may be one, depending on timing): all replayed, in order, nothing dropped. The
        # offline state is waited for first: once it is stored, nothing more of this run goes to the spool.
        async def offline_stored() -> bool:
            async with await psycopg.AsyncConnection.connect(db_url) as conn:
                cur = await conn.execute("SELECT 1 FROM telemetry_state WHERE device_id = 'robot-01'")
                return await cur.fetchone() is not None

        await eventually(offline_stored, timeout=30)
        await eventually(lambda: _replayed(scrape), timeout=30)
        text = await scrape()
        assert _metric(text, "fabhub_gateway_spool_replayed_total") == 5 + _metric(
            text, "fabhub_gateway_spool_spooled_total"
        )
        assert "fabhub_gateway_spool_dropped_total 0.0" in text
        assert "fabhub_gateway_spool_depth 0.0" in text
        spooled = _metric(text, "fabhub_gateway_spool_spooled_total")

        spool = app.state.gateway.spool
        spool.max_bytes = 10  # full: a batch that does not fit is dropped, counted and logged
        await spool.put(series("robot-01", "power_kw", [6.0, 7.0], start=20))
        text = await scrape()
        assert "fabhub_gateway_spool_dropped_total 2.0" in text
        assert _metric(text, "fabhub_gateway_spool_spooled_total") == spooled  # dropped, not spooled
        assert "fabhub_gateway_spool_replay_failures_total 0.0" in text


def _metric(text: str, name: str) -> float:
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(f"{name} ")))


async def _replayed(scrape) -> bool:
    text = await scrape()
    spooled = _metric(text, "fabhub_gateway_spool_spooled_total")
    done = _metric(text, "fabhub_gateway_spool_depth") == 0
    return done and _metric(text, "fabhub_gateway_spool_replayed_total") == 5 + spooled
