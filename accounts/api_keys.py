"""API keys: how a system (an ERP, a MES) calls the API as a bearer without a person's password.

A key reads `fhk_<id>_<secret>`: the prefix tells it from a JWT, the id finds its row without a scan, and the
secret (`secrets.token_urlsafe(32)`, 256 random bits) is kept only as its SHA-256, which needs no slow hash
at that entropy. Each key is its own service account, an app_user row without a password, so bookings and
audit entries made with it name it like any user; the key gives that account a fixed role (never admin: a
leaked admin key could mint keys and users) and, for a customer, the organization it acts for, so every
existing rule of what a role and an organization may see applies unchanged."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import AsyncConnection
from pydantic import BaseModel

from accounts import audit, checks, tokens, users
from accounts.model import Principal, Role
from accounts.sqlfiles import QUERIES
from common.errors import Invalid, NotFound, TooManyRequests, Unauthorized
from common.rows import from_row
from common.times import Stamp

ENTITY = "api_key"
PREFIX = "fhk_"
KEY_ROLES = frozenset({Role.customer, Role.technician, Role.finance})
_KEY = re.compile(r"^fhk_([1-9][0-9]{0,17})_([A-Za-z0-9_-]{43})$")
# Service accounts' addresses: the reserved .invalid domain (RFC 2606) never receives mail.
SERVICE_EMAIL = "api-key-{id}@fabhub.invalid"
WINDOW = timedelta(minutes=1)


class ApiKey(BaseModel):
    """A key as listed: everything but its secret, which is shown once, at creation."""

    id: int
    user_id: int
    name: str
    role: Role
    organization_id: int | None
    created_by: int | None
    created_at: Stamp
    expires_at: Stamp | None
    revoked_at: Stamp | None
    last_used_at: Stamp | None
    updated_at: Stamp


class NewApiKey(ApiKey):
    key: str


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """Requests per key per minute, counted across every process."""

    per_minute: int = 600


DEFAULT_KEY_LIMITS = KeyLimits()


def is_api_key(token: str) -> bool:
    return token.startswith(PREFIX)


async def create_key(
    conn: AsyncConnection,
    *,
    name: str,
    role: Role,
    organization_id: int | None,
    expires_at: datetime | None,
    at: datetime,
    actor: Principal,
) -> NewApiKey:
    """The key with its secret, which is not stored and cannot be shown again."""
    name = checks.name(name, "an API key's name")
    role = users.parse_role(role)
    if role not in KEY_ROLES:
        raise Invalid(f"an API key's role is {', '.join(sorted(KEY_ROLES))}: administration stays with people")
    await users.check_membership(conn, role, organization_id)
    if expires_at is not None and expires_at <= at:
        raise Invalid("expires_at is in the past")
    key_id = await QUERIES.next_api_key_id(conn)
    email = SERVICE_EMAIL.format(id=key_id)
    user_id = await users.add_passwordless_user(
        conn, email=email, name=name, role=role, organization_id=organization_id, at=at, actor=actor
    )
    secret, digest = tokens.new_token()
    await QUERIES.insert_api_key(
        conn,
        id=key_id,
        user_id=user_id,
        name=name,
        role=role,
        organization_id=organization_id,
        digest=digest,
        created_by=actor.id,
        at=at,
        expires_at=expires_at,
    )
    created = await get_key(conn, key_id)
    await audit.record(conn, at, actor, "create", ENTITY, key_id, after=created)
    return NewApiKey(**created.model_dump(), key=f"{PREFIX}{key_id}_{secret}")


async def get_key(conn: AsyncConnection, key_id: int) -> ApiKey:
    rows = [from_row(ApiKey, row) async for row in QUERIES.api_keys(conn, id=key_id)]
    if not rows:
        raise NotFound(f"no API key {key_id}")
    return rows[0]


async def list_keys(conn: AsyncConnection) -> list[ApiKey]:
    """Every key, newest first (the admin page; the API pages through the same query)."""
    return [from_row(ApiKey, row) async for row in QUERIES.api_keys(conn, id=None)]


async def revoke_key(conn: AsyncConnection, key_id: int, *, at: datetime, actor: Principal) -> ApiKey:
    """Refused from the next request on; revoking a revoked key changes nothing."""
    before = await get_key(conn, key_id)
    if await QUERIES.revoke_api_key(conn, id=key_id, at=at) is None:
        return before
    after = await get_key(conn, key_id)
    await audit.record(conn, at, actor, "revoke", ENTITY, key_id, before=before, after=after)
    return after


async def authenticate(conn: AsyncConnection, presented: str, now: datetime, limits: KeyLimits) -> Principal:
    """The principal a bearer key acts as, counted against its rate limit; `conn` in autocommit, so the count
    and the last use are written whatever the request then does."""
    match = _KEY.match(presented)
    if match is None:
        raise _refused("malformed API key: it reads fhk_<id>_<secret>")
    key_id, secret = int(match.group(1)), match.group(2)
    row = await QUERIES.api_key_credentials(conn, id=key_id)
    # An unknown id and a wrong secret answer alike, so guesses learn nothing about which ids exist.
    if row is None or not hmac.compare_digest(row[0], tokens.digest(secret)):
        raise _refused("unknown API key")
    _digest, user_id, email, name, role, organization_id, expires_at, revoked_at, _last_used = row
    if revoked_at is not None:
        raise _refused("this API key was revoked")
    if expires_at is not None and expires_at <= now:
        raise _refused("this API key has expired")
    window_start = now.replace(second=0, microsecond=0)
    count = await QUERIES.count_api_key_request(conn, id=key_id, window_start=window_start)
    if count > limits.per_minute:
        retry = max(1, int((window_start + WINDOW - now).total_seconds() + 0.999))
        raise TooManyRequests(f"this API key may make {limits.per_minute} requests a minute; retry in {retry} s", retry)
    await QUERIES.touch_api_key(conn, id=key_id, at=now)
    return Principal(user_id, email, name, Role(role), organization_id)


async def expire_windows(conn: AsyncConnection, now: datetime) -> int:
    """Past minutes' counts decide nothing: a scheduled job removes them."""
    return int(await QUERIES.expire_api_key_windows(conn, before=now - WINDOW))


def _refused(reason: str) -> Unauthorized:
    return Unauthorized(reason, headers={"WWW-Authenticate": "Bearer"})
