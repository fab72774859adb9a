"""Scheduled jobs: run under a per-job advisory lock, so two FabHub processes never run one twice."""

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from fabhub.catalogue import catalogue_from, oee_facts
from fabhub.devices import load_devices
from fabhub.jobs import JobRunner, jobs_for
from fabhub.metrics import Metrics
from fabhub.settings import Settings
from oee.invoices import Invoicing
from oee.service import OeeService
from telemetry import BatchWriter
from tests.samples import T0, fixed_clock, series

NOW = T0 + timedelta(hours=1)
DEVICES = load_devices(Path(__file__).resolve().parent.parent / "devices.yaml")
CATALOGUE = catalogue_from(DEVICES)
OEE = OeeService(*oee_facts(DEVICES), ZoneInfo("Asia/Shanghai"), fixed_clock(NOW))


async def test_job_runs_and_is_skipped_while_another_process_holds_it(pool):
    await BatchWriter(pool, clock=fixed_clock(NOW)).write_batch(series("cnc-01", "power_kw", [1.0, 2.0]))
    metrics = Metrics()
    runner = JobRunner(
        pool,
        jobs_for(
            Settings(), CATALOGUE, OEE, Invoicing(OEE, Decimal("0.06"), ZoneInfo("Asia/Shanghai"), fixed_clock(NOW))
        ),
        fixed_clock(NOW),
        metrics,
    )
    async with pool.connection() as other, other.transaction():
        # another process is in the middle of the rollup job
        await other.execute("SELECT pg_advisory_xact_lock(hashtext('fabhub.job'), hashtext('telemetry-rollup'))")
        ran, result = await runner.run("telemetry-rollup")
        assert (ran, result) == (False, None)
        ran, _ = await runner.run("telemetry-retention")  # a different job is not blocked
        assert ran is True
    ran, result = await runner.run("telemetry-rollup")
    assert ran is True
    assert result.watermark == NOW - timedelta(minutes=1)
    async with pool.connection() as conn:
        rollups = await (await conn.execute("SELECT n, sum FROM telemetry_rollup_1m")).fetchall()
    assert rollups == [(2, 3.0)]
    assert metrics.job_runs.labels(job="telemetry-rollup", outcome="skipped")._value.get() == 1
    assert metrics.job_runs.labels(job="telemetry-rollup", outcome="ok")._value.get() == 1


async def test_scheduler_registers_every_job(pool):
    runner = JobRunner(
        pool,
        jobs_for(
            Settings(), CATALOGUE, OEE, Invoicing(OEE, Decimal("0.06"), ZoneInfo("Asia/Shanghai"), fixed_clock(NOW))
        ),
        fixed_clock(NOW),
    )
    runner.start()
    try:
        scheduled = {job.id: job.trigger.interval for job in runner._scheduler.get_jobs()}
    finally:
        runner.shutdown()
    assert scheduled == {
        "booking-lifecycle": timedelta(minutes=1),
        "idempotency-expiry": timedelta(hours=1),
        "invoice-drafts": timedelta(hours=1),
        "login-expiry": timedelta(hours=1),
        "oee-summary": timedelta(hours=1),
        "telemetry-rollup": timedelta(minutes=1),
        "telemetry-retention": timedelta(hours=1),
    }


def metric(text: str, line_start: str) -> float | None:
    """The value of the first sample line of a /metrics scrape that starts with `line_start`."""
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_metrics_show_each_jobs_state(db_url):
    """Scraped from the running app: every job listed as not running, then a job under way, its last success,
    and the last failure of a job that raised."""
    import asyncio

    import httpx
    import pytest

    from fabhub.jobs import Job
    from tests.http import app_for, serving

    app = app_for(db_url, clock=fixed_clock(NOW))
    runner: JobRunner = app.state.jobs
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(conn, now):
        started.set()
        await release.wait()

    async def broken(conn, now):
        raise RuntimeError("the job's own bug")

    runner.jobs["slow"] = Job("slow", timedelta(hours=1), slow, "waits for the test")
    runner.jobs["broken"] = Job("broken", timedelta(hours=1), broken, "always fails")
    async with serving(app) as base, httpx.AsyncClient(base_url=base) as client:
        scrape = (await client.get("/metrics")).text
        for name in ("booking-lifecycle", "invoice-drafts", "oee-summary", "telemetry-rollup"):
            assert metric(scrape, f'fabhub_job_running{{job="{name}"}}') == 0
        assert metric(scrape, "fabhub_job_last_success_timestamp_seconds") is None  # nothing has run yet

        assert (await runner.run("telemetry-rollup"))[0] is True
        running = asyncio.create_task(runner.run("slow"))
        await started.wait()
        scrape = (await client.get("/metrics")).text
        assert metric(scrape, 'fabhub_job_running{job="slow"}') == 1
        assert metric(scrape, 'fabhub_job_running{job="telemetry-rollup"}') == 0
        assert metric(scrape, 'fabhub_job_last_success_timestamp_seconds{job="telemetry-rollup"}') == NOW.timestamp()
        assert metric(scrape, 'fabhub_job_runs_total{job="telemetry-rollup",outcome="ok"}') == 1
        assert metric(scrape, 'fabhub_job_last_duration_seconds{job="telemetry-rollup"}') >= 0
        release.set()
        await running

        with pytest.raises(RuntimeError, match="own bug"):
            await runner.run("broken")
        scrape = (await client.get("/metrics")).text
        assert metric(scrape, 'fabhub_job_running{job="slow"}') == 0
        assert metric(scrape, 'fabhub_job_last_failure_timestamp_seconds{job="broken"}') == NOW.timestamp()
        assert metric(scrape, 'fabhub_job_last_success_timestamp_seconds{job="broken"}') is None
        assert metric(scrape, 'fabhub_job_runs_total{job="broken",outcome="failed"}') == 1
