"""Database row helpers every domain's service modules use around their named queries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from common.errors import Conflict

M = TypeVar("M", bound=BaseModel)


def from_row(model: type[M], row: Sequence[Any]) -> M:
    """A model from a row whose columns the query lists in the order of the model's fields."""
    return model(**dict(zip(model.model_fields, row, strict=True)))


@asynccontextmanager
async def unique_or_conflict(conn: AsyncConnection, reason: str) -> AsyncIterator[None]:
    """Runs a write in a savepoint, so a unique violation (say, two admins taking one email at once) becomes
    a Conflict and leaves the caller's transaction usable."""
    try:
        async with conn.transaction():
            yield
    except UniqueViolation:
        raise Conflict(reason) from None


@asynccontextmanager
async def autocommit(pool: AsyncConnectionPool) -> AsyncIterator[AsyncConnection]:
    """A pooled connection for a read that is one statement: without the BEGIN and COMMIT round trips a
    transaction costs. Hot paths (every request's token check, availability) use it."""
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        try:
            yield conn
        finally:
            await conn.set_autocommit(False)


async def dict_rows(conn: AsyncConnection, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """A named query's rows as dicts (the `.sql` of an aiosql query), the pooled connection's row factory left
    alone: every domain reads its wide rows this way."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params or {})
        return await cur.fetchall()
