"""The caller's notification choices: email on or off, the language of messages, reminders before a start."""

# No `from __future__ import annotations`: FastAPI must resolve the dependency alias made in make_router.

from typing import Annotated

from fastapi import APIRouter, Depends
from psycopg_pool import AsyncConnectionPool

from accounts.auth import Authenticator
from accounts.model import Principal
from notify.preferences import Preferences, choose, preferences_of


def make_router(pool: AsyncConnectionPool, auth: Authenticator, prefix: str) -> APIRouter:
    router = APIRouter(tags=["notifications"])
    Caller = Annotated[Principal, Depends(auth.caller)]  # roles: fabhub/policy.py

    @router.get(f"{prefix}/me/notifications")
    async def my_preferences(principal: Caller) -> Preferences:
        async with pool.connection() as conn:
            return await preferences_of(conn, principal.id)

    @router.put(f"{prefix}/me/notifications")
    async def set_preferences(principal: Caller, body: Preferences) -> Preferences:
        async with pool.connection() as conn:
            return await choose(conn, principal.id, body)

    return router
