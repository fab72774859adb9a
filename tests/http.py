"""The real app served by uvicorn on a free loopback port, for HTTP tests."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from fabhub.app import create_app
from fabhub.devices import DeviceFile, load_devices
from fabhub.devservices import listening_socket
from fabhub.settings import Settings
from telemetry.writer import utc_now

REPO = Path(__file__).resolve().parent.parent


SECRET = "test-signing-key-that-is-long-enough-0123456789"
# What the gateway's machine would hold for the shipped devices' secrets (the printers' access codes): the
# tests never read the developer's environment for them.
SHIPPED_SECRETS = {
    variable: "00000000"
    for d in load_devices(REPO / "devices.yaml").devices
    for variable in d.secret_variables().values()
}


def app_for(
    database_url: str,
    devices: DeviceFile | None = None,
    mqtt_url: str | None = None,
    clock: Callable[[], datetime] = utc_now,
    environ: dict[str, str] | None = None,
    **settings,
) -> Any:
    """The real app as `serve` runs it, for a test that also reaches into it (`app.state`)."""
    config = Settings(**{"run_jobs": False, "run_gateway": False, "secret_key": SECRET, **settings})
    devices = devices or load_devices(REPO / "devices.yaml")
    return create_app(
        config,
        database_url,
        devices,
        mqtt_url=mqtt_url,
        clock=clock,
        environ={**SHIPPED_SECRETS, **(environ or {})},
        write_catalogue=True,  # each test's database is its own installation, as the demo's is
    )


@contextlib.asynccontextmanager
async def serve(
    database_url: str,
    devices: DeviceFile | None = None,
    mqtt_url: str | None = None,
    clock: Callable[[], datetime] = utc_now,
    environ: dict[str, str] | None = None,
    **settings,
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a free port; jobs and gateway off unless a test asks for them. The client carries no
    credentials: see tests/accounts_rig.py to create users and log in."""
    app = app_for(database_url, devices, mqtt_url, clock, environ, **settings)
    async with serving(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        yield client


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Any ASGI app under uvicorn on a free loopback port, until the block ends; yields its base URL. The
    port is bound before uvicorn starts and held throughout, so no other process can take it in between;
    uvicorn's own X-Forwarded-For handling is off, as in `fabhub serve` (the app applies
    FABHUB_TRUSTED_PROXIES itself)."""
    sock = listening_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", proxy_headers=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
