"""Idempotency keys for POST requests (the `Idempotency-Key` header, as Stripe and the IETF draft use it):
a client that retries after a timeout gets the first answer instead of a second booking. The key is
claimed inside the request's own transaction, so the answer and the key commit or vanish together."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from booking.sqlfiles import QUERIES
from common.errors import Invalid

KEEP = timedelta(hours=24)
Work = Callable[[AsyncConnection], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any
    replayed: bool = False


def fingerprint(method: str, path: str, body: Any) -> bytes:
    return hashlib.sha256(orjson.dumps([method, path, body], option=orjson.OPT_SORT_KEYS)).digest()


async def run_once(
    pool: AsyncConnectionPool,
    user_id: int,
    key: str | None,
    sha: bytes,
    now: datetime,
    work: Work,
) -> Answer:
    """Run `work` in a transaction, at most once per (user, key) within a day. `work` returns a status and a
    JSON-ready body; an exception from it rolls everything back and leaves the key free for a retry."""
    async with pool.connection() as conn:
        if key is None:
            async with conn.transaction():
                return Answer(*await work(conn))
        for _ in range(2):
            stored = await _stored(conn, user_id, key, sha, now)
            if stored is not None:
                return stored
            try:
                async with conn.transaction():
                    await QUERIES.drop_expired_key(conn, user_id=user_id, key=key, since=now - KEEP)
                    await QUERIES.claim_key(conn, user_id=user_id, key=key, sha=sha, now=now)
                    status, body = await work(conn)
                    await QUERIES.store_response(conn, user_id=user_id, key=key, status=status, response=Jsonb(body))
                    return Answer(status, body)
            except psycopg.errors.UniqueViolation:
                continue  # the same key committed meanwhile: replay its answer
        raise Invalid("this Idempotency-Key is in use by a request that did not finish; retry shortly")


async def _stored(conn: AsyncConnection, user_id: int, key: str, sha: bytes, now: datetime) -> Answer | None:
    row = await QUERIES.stored_response(conn, user_id=user_id, key=key, since=now - KEEP)
    await conn.commit()
    if row is None:
        return None
    stored_sha, status, body = row
    if bytes(stored_sha) != sha:
        raise Invalid("this Idempotency-Key was used for a different request")
    return Answer(status, body, replayed=True)
