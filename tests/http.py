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
from fabhub.devservices import free_port
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
    config = Settings(**{"run_jobs": False, "run_gateway": False, "secret_key": SECRET, **settings})
    devices = devices or load_devices(REPO / "devices.yaml")
    app = create_app(config, database_url, devices, mqtt_url=mqtt_url, clock=clock, environ={**SHIPPED_SECRETS, **(environ or {})})
    async with serving(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        yield client


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Any ASGI app under uvicorn on a free loopback port, until the block ends; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
