"""A user's notification choices: email on or off, the language of messages, and the reminder leads."""

from __future__ import annotations

from typing import Annotated

from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field

from notify.messages import LANGUAGES
from notify.sqlfiles import QUERIES

Language = Annotated[str, Field(pattern="^(" + "|".join(LANGUAGES) + ")$")]
Minutes = Annotated[int, Field(gt=0, le=7 * 24 * 60, description="minutes before the start")]


class Preferences(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: bool = Field(True, description="booking and invoice messages by email")
    language: Language = Field("zh-CN", description="the language of the messages")
    reminder_minutes: list[Minutes] = Field([1440, 60], max_length=5, description="reminders before each start")


async def preferences_of(conn: AsyncConnection, user_id: int) -> Preferences:
    """The defaults for a user who chose nothing."""
    email, language, minutes = await QUERIES.preference(conn, user_id=user_id)
    return Preferences(email=email, language=language, reminder_minutes=minutes)


async def choose(conn: AsyncConnection, user_id: int, chosen: Preferences) -> Preferences:
    minutes = sorted(set(chosen.reminder_minutes), reverse=True)
    await QUERIES.put_preference(
        conn, user_id=user_id, email=chosen.email, language=chosen.language, reminder_minutes=minutes
    )
    return chosen.model_copy(update={"reminder_minutes": minutes})
