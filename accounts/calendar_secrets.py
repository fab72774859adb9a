"""The secret in a user's calendar feed URL: calendar apps fetch the feed without logging in, so the URL
itself is the credential. Only its sha256 is stored; rotating it makes the old URL worthless."""

from __future__ import annotations

import hashlib
import secrets

from psycopg import AsyncConnection

from accounts.model import Principal
from accounts.sqlfiles import QUERIES
from accounts.users import active_principal, missing


async def rotate_calendar_secret(conn: AsyncConnection, user_id: int) -> str:
    secret = secrets.token_urlsafe(32)
    if await QUERIES.set_calendar_secret(conn, id=user_id, digest=_digest(secret)) is None:
        raise missing(user_id)
    return secret


async def principal_by_calendar_secret(conn: AsyncConnection, secret: str) -> Principal | None:
    """The feed's owner, or None for an unknown secret or a deactivated account."""
    user_id = await QUERIES.user_by_calendar_secret(conn, digest=_digest(secret))
    return await active_principal(conn, user_id) if user_id is not None else None


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
