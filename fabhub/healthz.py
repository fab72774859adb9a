"""`/healthz` for load balancers: it answers within HEALTH_WITHIN_S whatever the database does, because a
balancer takes a process out of rotation on a slow answer as on a 503, and a process that hangs on a silent
database must be the one taken out."""

from __future__ import annotations

import asyncio

import psycopg
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from accounts.auth import public
from fabhub.metrics import Metrics
from fabhub.sqlfiles import QUERIES

HEALTH_WITHIN_S = 1.5  # under the 2 s a balancer's health check is commonly given


def make_router(pool: AsyncConnectionPool, metrics: Metrics) -> APIRouter:
    router = APIRouter()
    abandoned: set[asyncio.Task[tuple]] = set()  # health probes still cancelling, kept from the collector

    def _forget(task: asyncio.Task[tuple]) -> None:
        abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a probe that failed after it was abandoned is no news

    async def _database_status() -> tuple:
        async with pool.connection(timeout=HEALTH_WITHIN_S) as conn:
            return await QUERIES.database_status(conn)

    def _unavailable(reason: str) -> JSONResponse:
        metrics.database_up.set(0)
        body = {"status": "unavailable", "database": {"reachable": False, "error": reason}}
        return JSONResponse(body, status_code=503)

    @router.get(
        "/healthz",
        tags=["operations"],
        summary="Database reachability and TimescaleDB status",
        dependencies=[Depends(public)],
    )
    async def healthz() -> JSONResponse:
        # Cancelling a query on a silent connection makes psycopg wait up to 10 s for the server to confirm, so
        # the probe is left to finish in the background rather than awaited.
        probe = asyncio.create_task(_database_status())
        done, _ = await asyncio.wait({probe}, timeout=HEALTH_WITHIN_S)
        if not done:
            probe.cancel()
            abandoned.add(probe)
            probe.add_done_callback(_forget)
            return _unavailable(f"the database did not answer within {HEALTH_WITHIN_S:g} s")
        try:
            status = probe.result()
        except (psycopg.Error, PoolTimeout) as exc:
            return _unavailable(str(exc)[:200])
        metrics.database_up.set(1)
        server_version, timescaledb = status
        return JSONResponse(
            {
                "status": "ok",
                "database": {
                    "reachable": True,
                    "server_version": server_version,
                    "timescaledb": timescaledb is not None,
                    "timescaledb_version": timescaledb,
                },
            }
        )

    return router
