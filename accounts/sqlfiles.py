"""Named queries of the accounts domain, and the two helpers every service module needs around them."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosql
from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation
from pydantic import BaseModel

from accounts.errors import Conflict

QUERIES = aiosql.from_path(Path(__file__).with_name("sql"), "apsycopg", mandatory_parameters=False)

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
