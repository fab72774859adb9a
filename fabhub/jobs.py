"""Scheduled jobs in the app process (APScheduler). Each run happens in one transaction holding a
PostgreSQL advisory lock named after the job, so two FabHub processes never run the same job at once;
the jobs themselves are idempotent, so a run that follows another changes nothing it should not."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from accounts.auth import expire_logins
from booking import lifecycle, waiting
from booking.bookings import Bookings
from booking.catalogue import Catalogue
from fabhub.metrics import Metrics
from fabhub.settings import Settings
from fabhub.sqlfiles import QUERIES
from notify.dispatch import Notifier
from oee import results
from oee.alerts import publish_machine_down
from oee.invoices import Invoicing
from oee.service import OeeService
from telemetry.activity import activity_after_start
from telemetry.maintenance import apply_retention, roll_up

log = logging.getLogger(__name__)
JobFn = Callable[[AsyncConnection, datetime], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    every: timedelta
    run: JobFn
    description: str


def jobs_for(
    settings: Settings,
    catalogue: Catalogue,
    oee: OeeService,
    invoicing: Invoicing,
    notifier: Notifier | None = None,
    bookings: Bookings | None = None,
) -> list[Job]:
    """Every scheduled job; those that notify and book for waiters only with the notifier and the bookings
    (the app's; a test may leave them out)."""
    raw_age = timedelta(days=settings.raw_retention_days)
    rollup_age = timedelta(days=settings.rollup_retention_days) if settings.rollup_retention_days else None

    async def rollups(conn: AsyncConnection, now: datetime) -> Any:
        return await roll_up(conn, now, lookback=settings.rollup_lookback)

    async def retention(conn: AsyncConnection, now: datetime) -> Any:
        return await apply_retention(
            conn, now, raw_age=raw_age, rollup_age=rollup_age, lookback=settings.rollup_lookback
        )

    async def logins(conn: AsyncConnection, now: datetime) -> Any:
        return await expire_logins(conn, now, timedelta(minutes=settings.login_window_minutes))

    async def oee_summary(conn: AsyncConnection, now: datetime) -> Any:
        return await oee.summarize(conn, sorted(catalogue.devices), now)

    async def booking_lifecycle(conn: AsyncConnection, now: datetime) -> Any:
        moved: dict[str, int] = await lifecycle.advance(conn, now, catalogue, settings.zone, activity_after_start)
        # Completing a booking is what makes its results due: they are frozen here once it is over and its
        # data is in (oee.results: its overrun settled, late batches given time), long before raw retention.
        moved["results_frozen"] = await results.freeze_due(conn, oee, now)
        return moved

    jobs = [
        Job(
            "booking-lifecycle",
            timedelta(minutes=1),
            booking_lifecycle,
            "mark no-shows, start and finish bookings, freeze finished bookings' results",
        ),
        Job("idempotency-expiry", timedelta(hours=1), lifecycle.expire_idempotency_keys, "forget day-old keys"),
        # Hourly rather than at a set hour: each run stores the past days still missing and redoes the last
        # two, so yesterday is summarized within an hour of midnight whenever the process started.
        Job("oee-summary", timedelta(hours=1), oee_summary, "per-device daily OEE summary of past days"),
        Job("invoice-drafts", timedelta(hours=1), invoicing.monthly, "draft last month's invoices once it is over"),
        Job("login-expiry", timedelta(hours=1), logins, "forget failed logins and logged-out tokens once past"),
        Job("telemetry-rollup", timedelta(minutes=1), rollups, "one-minute rollups of numeric samples"),
        Job("telemetry-retention", timedelta(hours=1), retention, "drop raw samples past retention"),
    ]
    if notifier is None or bookings is None:
        return jobs

    async def waiting_list(conn: AsyncConnection, now: datetime) -> Any:
        return await waiting.serve(conn, bookings, now)

    return [
        *jobs,
        Job("machine-alerts", timedelta(seconds=10), publish_machine_down, "publish machines going down in bookings"),
        Job("reminders", timedelta(minutes=1), notifier.remind, "publish the booking reminders that came due"),
        Job("waiting-list", timedelta(minutes=1), waiting_list, "book or offer freed slots to the first waiters"),
        Job("qualification-notices", timedelta(hours=1), notifier.warn_expiring, "notice of qualifications ending"),
        Job("notification-messages", timedelta(seconds=5), notifier.expand, "turn outbox events into messages"),
        Job("notification-sending", timedelta(seconds=5), notifier.deliver, "send due messages, retrying"),
    ]


class JobRunner:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        jobs: list[Job],
        clock: Callable[[], datetime],
        metrics: Metrics | None = None,
    ) -> None:
        self._pool = pool
        self.jobs = {job.name: job for job in jobs}
        self._clock = clock
        self._metrics = metrics
        self._scheduler: AsyncIOScheduler | None = None
        if metrics is not None:
            for name in self.jobs:  # every job listed from the start
                metrics.job_running.labels(job=name).set(0)

    async def run(self, name: str) -> tuple[bool, Any]:
        """Run a job now. Returns (False, None) when another process holds it; a failure is counted (and its
        time kept for /metrics), then raised."""
        job = self.jobs[name]
        started = time.monotonic()
        try:
            async with self._pool.connection() as conn, conn.transaction():
                if not await QUERIES.try_job_lock(conn, name=name):
                    self._count(name, "skipped")
                    return False, None
                if self._metrics is not None:
                    self._metrics.job_running.labels(job=name).set(1)
                result = await job.run(conn, self._clock())
        except Exception:
            self._finished(name, started, ok=False)
            raise
        except BaseException:  # cancelled (shutting down): not a failure, but not running either
            if self._metrics is not None:
                self._metrics.job_running.labels(job=name).set(0)
            raise
        self._finished(name, started, ok=True)
        return True, result

    async def _scheduled(self, name: str) -> None:
        try:
            ran, result = await self.run(name)
            if ran:
                log.debug("job %s: %s", name, result)
        except Exception:
            log.exception("job %s failed", name)

    def _count(self, name: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.job_runs.labels(job=name, outcome=outcome).inc()

    def _finished(self, name: str, started: float, *, ok: bool) -> None:
        """After a run (committed, or failed anywhere, the lock included): its outcome, time and duration."""
        self._count(name, "ok" if ok else "failed")
        if self._metrics is not None:
            self._metrics.job_running.labels(job=name).set(0)
            self._metrics.job_duration.labels(job=name).set(time.monotonic() - started)
            last = self._metrics.job_last_success if ok else self._metrics.job_last_failure
            last.labels(job=name).set(self._clock().timestamp())

    def start(self) -> None:
        self._scheduler = AsyncIOScheduler()
        for job in self.jobs.values():
            self._scheduler.add_job(
                self._scheduled,
                "interval",
                seconds=job.every.total_seconds(),
                args=[job.name],
                id=job.name,
                max_instances=1,
                coalesce=True,
            )
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
