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
