"""OAuth2 password flow with short-lived JWT access tokens, login rate limiting, API keys for systems
(accounts/api_keys.py) as the other kind of bearer, and the dependency that admits a caller to a route in one
of the roles the app's policy (one table, fabhub/policy.py) gives that route. A token names a user; the user is
loaded on every request, so a deactivated account or a changed role takes effect at once rather than when the
token expires."""

import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from accounts import api_keys, passwords
from accounts.api_keys import DEFAULT_KEY_LIMITS, KeyLimits
from accounts.model import Principal, Role
from accounts.sqlfiles import QUERIES
from accounts.users import active_principal
from common.errors import Forbidden, TooManyRequests, Unauthorized
from common.rows import autocommit

ALGORITHM = "HS256"
ISSUER = "fabhub"


@dataclass(frozen=True, slots=True)
class LoginLimits:
    per_account: int = 5
    per_address: int = 20
    window: timedelta = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str
    expires_in: int
    token_type: str = "bearer"


SESSION_COOKIE = "fabhub_session"
SAFE_METHODS = frozenset({"GET", "HEAD"})

# The roles each route admits, by (method, path as declared); None: open to anyone, no login (`public`).
Policy = Mapping[tuple[str, str], frozenset[Role] | None]


def client_address(request: Request) -> str:
    """The address login limits count against: the scope's client, which the app's outermost middleware
    (common.proxies.TrustedProxies) has set from X-Forwarded-For when, and only when, the peer is a trusted
    proxy."""
    return request.client.host if request.client else "unknown"


def roles_of(policy: Policy, request: Request) -> frozenset[Role]:
    """The roles `policy` gives the route `request` matched; none for a route without a line (refused)."""
    route = request.scope.get("route")
    return policy.get((request.method, getattr(route, "path", "")), None) or frozenset()


class Authenticator:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        secret: str,
        clock: Callable[[], datetime],
        *,
        token_ttl: timedelta = timedelta(minutes=15),
        limits: LoginLimits = LoginLimits(),
        token_url: str = "/api/v1/auth/token",
        policy: Policy | None = None,
        key_limits: KeyLimits = DEFAULT_KEY_LIMITS,
    ) -> None:
        """`policy`: the roles of every route (fabhub.policy.ROLES); a route without a line admits no one."""
        if len(secret) < 32:
            raise ValueError("the token signing secret needs at least 32 characters")
        self._pool = pool
        self._secret = secret
        self._clock = clock
        self.token_ttl = token_ttl
        self.limits = limits
        self.key_limits = key_limits
        self.scheme = OAuth2PasswordBearer(
            tokenUrl=token_url,
            auto_error=False,
            description="`Authorization: Bearer <token>`: a person's access token from this login, or a system's"
            " API key (`fhk_<id>_<secret>`, made by an admin at /api/v1/api-keys), which needs no login",
        )
        self.policy: Policy = policy or {}
        self.caller = self._caller()

    # -- tokens ------------------------------------------------------------------------------------------

    def issue(self, user_id: int, ttl: timedelta | None = None) -> Token:
        """`ttl`: the web pages' sessions last a working day; API tokens `token_ttl`."""
        now = self._clock()
        ttl = ttl or self.token_ttl
        claims = {"sub": str(user_id), "iss": ISSUER, "iat": now, "exp": now + ttl, "jti": secrets.token_hex(16)}
        return Token(jwt.encode(claims, self._secret, algorithm=ALGORITHM), int(ttl.total_seconds()))

    def _claims(self, token: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                # Expiry is checked against the app's clock below, which tests may set.
                options={"require": ["sub", "exp", "iat"], "verify_exp": False, "verify_iat": False},
            )
            claims["sub"] = int(claims["sub"])
        except (jwt.InvalidTokenError, ValueError) as exc:
            raise _unauthorized("invalid or expired token") from exc
        if claims["exp"] <= self._clock().timestamp():
            raise _unauthorized("invalid or expired token")
        return claims

    async def principal(self, token: str) -> Principal:
        claims = self._claims(token)
        async with autocommit(self._pool) as conn:
            issued_at = datetime.fromtimestamp(claims["iat"], UTC)
            principal = await active_principal(conn, claims["sub"], claims.get("jti"), issued_at)
        if principal is None:
            raise _unauthorized("this account no longer exists or is deactivated")
        return principal

    async def key_principal(self, key: str) -> Principal:
        """Who an API key (`fhk_...`) acts as, counted against the key's rate limit."""
        async with autocommit(self._pool) as conn:
            return await api_keys.authenticate(conn, key, self._clock(), self.key_limits)

    async def revoke(self, token: str) -> None:
        """Ends a token before its expiry (a logout): it is refused from now on. An invalid one ends anyway."""
        try:
            claims = self._claims(token)
        except Unauthorized:
            return
        if claims.get("jti"):
            expires_at = datetime.fromtimestamp(claims["exp"], UTC)
            async with self._pool.connection() as conn:
                await QUERIES.revoke_token(conn, jti=claims["jti"], expires_at=expires_at)

    # -- login -------------------------------------------------------------------------------------------

    async def login(self, email: str, password: str, address: str, ttl: timedelta | None = None) -> Token:
        return self.issue(await self._verify(email, password, address), ttl)

    async def confirm_password(self, principal: Principal, password: str, address: str) -> None:
        """Before a password change: the same limits as a login, so a stolen token cannot be used to guess the
        password and take the account over."""
        await self._verify(principal.email, password, address)

    async def _verify(self, email: str, password: str, address: str) -> int:
        now = self._clock()
        # A NUL cannot reach PostgreSQL text; such an "email" matches no account and is counted as a failure.
        account = email.strip().lower().replace("\x00", "\ufffd")
        since = now - self.limits.window
        async with self._pool.connection() as conn, conn.transaction():
            # Serialized per account and per address, and counted as a failure before the (slow) hash check:
            # parallel guesses each see the ones before them, so none slips past the limit.
            await QUERIES.lock_login(conn, account=account, address=address)
            counts = await QUERIES.login_failures(conn, account=account, address=address, since=since)
            self._refuse_if_limited(now, *counts)
            await QUERIES.record_login_failure(conn, account=account, address=address, now=now, since=since)
            row = await QUERIES.credentials(conn, email=account)
        # Without an account the hash check still runs (on a dummy), so timing does not tell which emails exist.
        verified = await passwords.verify_password(row[1] if row is not None else None, password)
        if row is None or not verified:
            raise _unauthorized("wrong email or password")
        user_id, stored = row
        async with self._pool.connection() as conn:
            await QUERIES.forget_login_attempt(conn, account=account, address=address, now=now)
            if passwords.needs_rehash(stored):
                await QUERIES.set_password_hash(conn, id=user_id, password_hash=await passwords.hash_password(password))
        return user_id

    def _refuse_if_limited(
        self, now: datetime, account_n: int, account_oldest: Any, address_n: int, address_oldest: Any
    ) -> None:
        for count, oldest, limit, what in (
            (account_n, account_oldest, self.limits.per_account, "this account"),
            (address_n, address_oldest, self.limits.per_address, "your address"),
        ):
            if count >= limit:
                retry = max(1, int((oldest + self.limits.window - now).total_seconds()) + 1)
                raise TooManyRequests(f"too many failed logins for {what}; try again in {retry} s", retry)

    # -- route dependencies ------------------------------------------------------------------------------

    def _caller(self) -> Callable[..., Awaitable[Principal]]:
        """The dependency every API route that needs a login takes (`Depends(auth.caller)`): it authenticates
        the caller and admits it only in a role the policy gives the matched route. It carries `.policy`,
        which the authorization matrix test reads off each route."""

        async def caller(request: Request, bearer: Annotated[str | None, Depends(self.scheme)]) -> Principal:
            # The web pages' session cookie counts for reading only: a request that changes something must
            # carry a bearer token, which a cross-site form cannot (the pages' own forms check a CSRF token).
            token = bearer or (request.cookies.get(SESSION_COOKIE) if request.method in SAFE_METHODS else None)
            if not token:
                raise _unauthorized("not authenticated: log in at /api/v1/auth/token")
            if bearer and api_keys.is_api_key(bearer):
                principal = await self.key_principal(bearer)
            else:
                principal = await self.principal(token)
            allowed = roles_of(self.policy, request)
            if principal.role not in allowed:
                names = ", ".join(sorted(allowed)) or "none"
                raise Forbidden(f"a {principal.role} may not do this; it needs the role {names}")
            return principal

        caller.policy = self.policy  # type: ignore[attr-defined]
        return caller


def public() -> None:
    """Marks a route as open to everyone (the login itself, the secret calendar feed, health)."""


public.roles = None  # type: ignore[attr-defined]


def _unauthorized(reason: str) -> Unauthorized:
    return Unauthorized(reason, headers={"WWW-Authenticate": "Bearer"})


async def expire_logins(conn: AsyncConnection, now: datetime, window: timedelta) -> dict[str, int]:
    """Failures older than the window count for nothing, a revoked token past its expiry would be refused
    anyway, and an API key's past minutes limit nothing: a scheduled job removes them."""
    return {
        "login_failures": await QUERIES.expire_login_failures(conn, before=now - window),
        "revoked_tokens": await QUERIES.expire_revoked_tokens(conn, now=now),
        "api_key_windows": await api_keys.expire_windows(conn, now),
    }
