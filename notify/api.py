"""The caller's notification choices: email on or off, the language of messages, reminders before a start."""

# No `from __future__ import annotations`: FastAPI must resolve the dependency alias made in make_router.

from typing import Annotated

from fastapi import APIRouter, Depends
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from accounts.auth import Authenticator
from accounts.model import Principal
from notify.messages import LANGUAGES
from notify.sqlfiles import QUERIES

Language = Annotated[str, Field(pattern="^(" + "|".join(LANGUAGES) + ")$")]
Minutes = Annotated[int, Field(gt=0, le=7 * 24 * 60, description="minutes before the start")]


class Preferences(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: bool = Field(True, description="booking and invoice messages by email")
    language: Language = Field("zh-CN", description="the language of the messages")
    reminder_minutes: list[Minutes] = Field([1440, 60], max_length=5, description="reminders before each start")


def make_router(pool: AsyncConnectionPool, auth: Authenticator, prefix: str) -> APIRouter:
    router = APIRouter(tags=["notifications"])
    Caller = Annotated[Principal, Depends(auth.caller)]  # roles: fabhub/policy.py

    @router.get(f"{prefix}/me/notifications")
    async def my_preferences(principal: Caller) -> Preferences:
        async with pool.connection() as conn:
            email, language, minutes = await QUERIES.preference(conn, user_id=principal.id)
        return Preferences(email=email, language=language, reminder_minutes=minutes)

    @router.put(f"{prefix}/me/notifications")
    async def set_preferences(principal: Caller, body: Preferences) -> Preferences:
        minutes = sorted(set(body.reminder_minutes), reverse=True)
        async with pool.connection() as conn:
            await QUERIES.put_preference(
                conn, user_id=principal.id, email=body.email, language=body.language, reminder_minutes=minutes
            )
        return body.model_copy(update={"reminder_minutes": minutes})

    return router
