"""The FastAPI app: the composition root wires each domain's router to the pool, settings and clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import partial

import psycopg
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import PoolTimeout

from accounts.api import make_router as accounts_router
from accounts.api_keys import KeyLimits
from accounts.api_keys_api import make_router as api_keys_router
from accounts.auth import Authenticator, LoginLimits, public
from accounts.model import Principal
from accounts.registration import MAX_LICENCE_BYTES, Licences
from accounts.registration_api import make_router as registration_router
from booking.api import make_router as booking_router
from booking.bookings import Bookings
from booking.floor_api import make_router as floor_router
from booking.series_api import make_router as series_router
from booking.waiting_api import make_router as waiting_router
from common import problems
from common.bodies import BoundedBodies
from common.problems import PROBLEM_RESPONSES as PROBLEMS
from common.problems import problem
from common.proxies import TrustedProxies
from common.tasks import cancel_and_wait
from common.times import AnswerZone
from fabhub.api_docs import mount_api_docs
from fabhub.catalogue import settle_catalogue
from fabhub.database import make_pool
from fabhub.devices import DeviceFile
from fabhub.domains import domains_for, notifier_for
from fabhub.gateway_setup import build_gateway, health_table
from fabhub.healthz import make_router as health_router
from fabhub.jobs import JobRunner, jobs_for
from fabhub.metrics import Metrics
from fabhub.migrations import migrate
from fabhub.openapi import document_problems
from fabhub.policy import ROLES
from fabhub.policy import check as check_policy
from fabhub.settings import Settings
from fabhub.signing_key import signing_key
from fabhub.web.admin_api_keys import make_router as admin_api_keys_router
from fabhub.web.admin_audit import make_router as admin_audit_router
from fabhub.web.admin_hours import make_router as admin_hours_router
from fabhub.web.admin_import import make_router as admin_import_router
from fabhub.web.admin_notifications import make_router as admin_notifications_router
from fabhub.web.admin_orgs import make_router as admin_orgs_router
from fabhub.web.admin_registrations import make_router as admin_registrations_router
from fabhub.web.admin_users import make_router as admin_users_router
from fabhub.web.admin_webhooks import make_router as admin_webhooks_router
from fabhub.web.bank_pages import make_router as bank_pages_router
from fabhub.web.board import Board, Machine
from fabhub.web.board import make_router as board_router
from fabhub.web.booking_pages import make_router as booking_pages_router
from fabhub.web.change_pages import make_router as change_pages_router
from fabhub.web.finance_pages import make_router as finance_pages_router
from fabhub.web.invite_pages import make_router as invite_pages_router
from fabhub.web.live import LiveHub, SilentGateways
from fabhub.web.machine_pages import make_router as machine_router
from fabhub.web.management_pages import make_router as management_router
from fabhub.web.pages import make_router as pages_router
from fabhub.web.register_pages import make_router as register_pages_router
from fabhub.web.render import Pages
from fabhub.web.report_pages import make_router as report_pages_router
from fabhub.web.session import Csrf, WebSessions
from fabhub.web.site import mount
from gateway.api import make_router as gateway_router
from notify.api import make_router as notify_router
from notify.webhooks_api import make_router as webhooks_router
from oee.api import make_router as oee_router
from oee.bank_import import BankImport
from oee.billing_api import make_router as billing_router
from oee.downtime_api import make_router as downtime_router
from oee.energy_api import make_router as energy_router
from oee.payments import Payments
from oee.payments_api import make_router as payments_router
from oee.report_api import make_router as report_router
from outbox.events import waiting as outbox_waiting
from telemetry.api import make_router as telemetry_router
from telemetry.live import LiveListener
from telemetry.reader import TelemetryReader
from telemetry.sight import EVERYTHING, Sight
from telemetry.writer import utc_now

log = logging.getLogger(__name__)
API = "/api/v1"


def create_app(
    settings: Settings,
    database_url: str,
    devices: DeviceFile,
    *,
    clock: Callable[[], datetime] = utc_now,
    run_migrations: bool = True,
    write_catalogue: bool = False,
    mqtt_url: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> FastAPI:
    """`environ` holds the secrets devices.yaml names (access codes, passwords). Without `write_catalogue`
    the app refuses to start when devices.yaml and the database's catalogue disagree (fabhub/catalogue.py)."""
    metrics = Metrics()
    pool = make_pool(database_url, settings)
    domains = domains_for(settings, devices, clock)
    catalogue, oee_service, invoicing = domains.catalogue, domains.oee, domains.invoicing
    notifier = notifier_for(settings, devices, clock, pool)
    bookings = Bookings(pool, catalogue, settings.zone, clock)
    jobs = JobRunner(pool, jobs_for(settings, catalogue, oee_service, invoicing, notifier, bookings), clock, metrics)
    reader = TelemetryReader(pool, settings.zone, clock)
    secret = signing_key(settings)
    auth = Authenticator(
        pool,
        secret,
        clock,
        token_ttl=timedelta(minutes=settings.access_token_minutes),
        limits=LoginLimits(
            settings.login_failures_per_account,
            settings.login_failures_per_address,
            timedelta(minutes=settings.login_window_minutes),
        ),
        token_url=f"{API}/auth/token",
        policy=ROLES,
        key_limits=KeyLimits(settings.api_key_rate_per_min),
    )
    gateway = (
        build_gateway(settings, devices, pool, mqtt_url, clock, metrics.registry, environ)
        if settings.run_gateway
        else None
    )

    csrf = Csrf(secret, settings.secure_cookies)
    sessions = WebSessions(auth, timedelta(hours=settings.session_hours), csrf)
    programs = {p: s.name for p, s in devices.subsidy_programs.items()}
    pages = Pages(settings.zone, devices.center.name, csrf, programs, email=settings.smtp_url is not None)
    # One path for every process, a gateway here or not: what is written reaches the board on commit.
    hub = LiveHub()
    health = health_table(settings, pool)
    machines = [Machine(d.id, d.name, d.class_id) for d in devices.machines if not d.retired]
    silent = SilentGateways(health, reader, [m.id for m in machines], hub, clock)
    listener = LiveListener(database_url, reader, silent.publish)
    board = Board(
        machines,
        {c: (k.name, k.name_zh or k.name) for c, k in devices.classes.items()},
        reader,
        health,
        bookings,
        pool,
        clock,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if run_migrations:
            report = await migrate(database_url, timescaledb=settings.timescaledb)
            if report.applied:
                log.info("applied migrations: %s", ", ".join(report.applied))
        await pool.open(wait=True, timeout=30)
        async with pool.connection() as conn:
            for change in await settle_catalogue(conn, devices, clock(), write=write_catalogue, site=settings.site):
                log.info("catalogue: %s", change)
        if settings.run_jobs:
            jobs.start()
        live = [asyncio.create_task(listener.run(), name="live-listener")]
        live.append(asyncio.create_task(silent.run(), name="silent-gateways"))
        if gateway is not None:
            await gateway.start()
        try:
            yield
        finally:
            await cancel_and_wait(live)
            if gateway is not None:
                await gateway.stop()
            jobs.shutdown()
            await pool.close()

    app = FastAPI(
        title="FabHub",
        version="0.1.0",
        summary="Shared-equipment workshop: live machines, bookings, OEE and billing",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from mount_api_docs, with their files served here, not by a CDN
        redoc_url=None,
    )
    app.state.pool = pool
    app.state.jobs = jobs
    app.state.metrics = metrics
    app.state.gateway = gateway
    app.state.listener = listener
    app.state.auth = auth

    # Every route takes its caller through auth.caller (or sessions.visitor, or is public), which admits the
    # roles fabhub/policy.py gives it; check_policy below refuses a route without its line there.
    signed_in = Depends(auth.caller)  # a default, not an Annotated alias: this module's annotations are strings

    async def sight(principal: Principal = signed_in) -> Sight:
        """A machine's detailed telemetry: staff see everything, a customer its organization's bookings."""
        if principal.is_staff:
            return EVERYTHING
        return Sight(partial(bookings.held, principal.organization_id))

    async def staff(principal: Principal = signed_in) -> bool:
        return principal.is_staff

    app.include_router(api_keys_router(pool, auth, clock, API), responses=PROBLEMS)
    app.include_router(
        accounts_router(
            pool,
            auth,
            clock,
            devices.classes.__contains__,
            devices.subsidy_programs.__contains__,
            API,
            zone=settings.zone,
        ),
        responses=PROBLEMS,
    )
    licences = Licences(settings.data_dir / "licences")
    app.include_router(register_pages_router(pages, sessions, pool, licences, clock))
    app.include_router(
        registration_router(pool, auth, licences, devices.subsidy_programs.__contains__, clock, API),
        responses=PROBLEMS,
    )
    app.include_router(booking_router(pool, auth, bookings, settings.zone, clock, API), responses=PROBLEMS)
    app.include_router(notify_router(pool, auth, clock, API), responses=PROBLEMS)
    app.include_router(webhooks_router(pool, auth, clock, API), responses=PROBLEMS)
    app.include_router(series_router(pool, auth, bookings, API), responses=PROBLEMS)
    app.include_router(waiting_router(pool, auth, bookings, clock, API), responses=PROBLEMS)
    app.include_router(floor_router(pool, auth, catalogue, settings.zone, clock, API), responses=PROBLEMS)
    app.include_router(oee_router(pool, auth, oee_service, catalogue, clock, API), responses=PROBLEMS)
    app.include_router(energy_router(pool, auth, oee_service, catalogue, API), responses=PROBLEMS)
    app.include_router(downtime_router(pool, auth, catalogue, settings.zone, clock, API), responses=PROBLEMS)
    app.include_router(
        billing_router(
            pool,
            auth,
            invoicing,
            devices.einvoice,
            devices.center.name,
            settings.zone,
            clock,
            API,
            settings.payment_term_days,
        ),
        responses=PROBLEMS,
    )
    payments = Payments(settings.zone, clock)
    bank = BankImport(payments, clock)
    app.include_router(
        payments_router(pool, auth, payments, bank, settings.payment_term_days, settings.zone, clock, API),
        responses=PROBLEMS,
    )
    app.include_router(report_router(pool, auth, devices.center.name, settings.zone, API), responses=PROBLEMS)
    app.include_router(
        telemetry_router(reader, devices.device_ids.__contains__, f"{API}/telemetry", sight, clock),
        dependencies=[signed_in],
        responses=PROBLEMS,
    )
    protocols = {d.id: d.protocol for d in devices.devices if not d.retired}
    devices_router = gateway_router(health, protocols, f"{API}/devices", staff, clock)
    app.include_router(devices_router, dependencies=[signed_in], responses=PROBLEMS)

    mount(
        app,
        pages,
        sessions,
        pages_router(pages, sessions),
        board_router(pages, sessions, board, hub),
        booking_pages_router(pages, sessions, pool, bookings, catalogue, oee_service, clock),
        change_pages_router(pages, sessions, pool, bookings, catalogue, clock),
        finance_pages_router(pages, sessions, pool, invoicing, catalogue, clock, payments, settings.payment_term_days),
        bank_pages_router(pages, sessions, pool, bank, settings.zone, clock),
        report_pages_router(pages, sessions, pool),
        management_router(pages, sessions, pool, oee_service, reader, bookings, catalogue, clock),
        machine_router(pages, sessions, pool, reader, catalogue, clock),
        admin_orgs_router(pages, sessions, pool, catalogue, clock),
        admin_registrations_router(pages, sessions, pool, catalogue, clock),
        admin_users_router(pages, sessions, pool, catalogue, clock),
        invite_pages_router(pages, sessions, pool, clock),
        admin_import_router(pages, sessions, pool, clock),
        admin_hours_router(pages, sessions, pool, clock),
        admin_audit_router(pages, sessions, pool),
        admin_api_keys_router(pages, sessions, pool, clock),
        admin_notifications_router(pages, sessions, pool, clock),
        admin_webhooks_router(pages, sessions, pool, clock),
    )

    mount_api_docs(app)

    app.include_router(health_router(pool, metrics))

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        include_in_schema=False,
        dependencies=[Depends(public)],
    )
    async def prometheus() -> Response:
        # The outbox's figures are the database's; a scrape while it is away keeps the last ones.
        with contextlib.suppress(psycopg.Error, PoolTimeout):
            async with pool.connection(timeout=2) as conn:
                metrics.outbox_waiting.set(await outbox_waiting(conn))
                for status in ("pending", "sent", "failed"):
                    metrics.notifications.labels(status).set(0)
                for status, n in (await notifier.counts(conn)).items():
                    metrics.notifications.labels(status).set(n)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Callable) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.http_requests.labels(request.method, route, str(response.status_code)).inc()
        metrics.http_latency.labels(route).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    async def database_away(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable during %s %s: %s", request.method, request.url.path, exc)
        return problem(503, "database unavailable, try again shortly", headers={"Retry-After": "5"})

    check_policy(app)
    document_problems(app, ROLES, API)
    problems.install(app)
    # outermost: a body is bounded before any route, dependency or token check sees it
    # the registration form carries the business licence (10 MB, and the form around it)
    uploads = {f"{API}/registrations": MAX_LICENCE_BYTES + 256 * 1024, "/register": MAX_LICENCE_BYTES + 256 * 1024}
    app.add_middleware(BoundedBodies, limit=settings.max_body_bytes, limits=uploads)
    # the client behind trusted proxies (FABHUB_TRUSTED_PROXIES), for every route and the login limits alike
    app.add_middleware(TrustedProxies, trusted=settings.trusted_networks)
    # every time in an answer in the center's zone with its offset (common/times.py)
    app.add_middleware(AnswerZone, zone=settings.zone)
    return app
