"""HTTP routes of API keys: admins create (the key shown once), list and revoke them. Using a key needs no
route: it is a bearer token every API route accepts (accounts/auth.py). Roles: fabhub/policy.py."""

# No `from __future__ import annotations`: FastAPI must resolve the dependency alias made in make_router.

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from accounts import api_keys, checks
from accounts.api_keys import ApiKey, NewApiKey
from accounts.auth import Authenticator
from accounts.model import Principal, Role
from accounts.sqlfiles import QUERIES
from common.http import Instant, RowId
from common.paging import Key, Listing, Page, Paging, fetch_page

API_KEYS = Listing("api-keys", (Key("id", "int", descending=True),))


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=checks.NAME_MAX, description="what system uses it, e.g. 'ERP 用友 U8'")
    role: Role = Field(description="customer, technician or finance; never admin")
    organization_id: int | None = Field(
        None, gt=0, le=2**63 - 1, description="the organization a customer key acts for; empty for staff roles"
    )
    expires_at: Instant | None = Field(None, description="refused from then on; empty: until revoked")


def make_router(
    pool: AsyncConnectionPool, auth: Authenticator, clock: Callable[[], datetime], prefix: str
) -> APIRouter:
    router = APIRouter(tags=["api keys"])
    Caller = Annotated[Principal, Depends(auth.caller)]  # roles: fabhub/policy.py

    @router.post(f"{prefix}/api-keys", status_code=201, summary="Create an API key (shown once)")
    async def create_api_key(principal: Caller, body: ApiKeyIn) -> NewApiKey:
        """`key` is in this answer only: FabHub keeps its SHA-256. A system sends it as
        `Authorization: Bearer fhk_...`."""
        async with pool.connection() as conn, conn.transaction():
            return await api_keys.create_key(conn, **body.model_dump(), at=clock(), actor=principal)

    @router.get(f"{prefix}/api-keys", summary="List API keys")
    async def list_api_keys(principal: Caller, page: Paging) -> Page[ApiKey]:
        """Newest first, never with their secrets."""
        async with pool.connection() as conn:
            return await fetch_page(conn, API_KEYS, QUERIES.api_keys.sql, {"id": None}, page, ApiKey)

    @router.post(f"{prefix}/api-keys/{{key_id}}/revoke", summary="Revoke an API key", responses={404: {}})
    async def revoke_api_key(principal: Caller, key_id: RowId) -> ApiKey:
        """Refused from the next request on; revoking it again changes nothing."""
        async with pool.connection() as conn, conn.transaction():
            return await api_keys.revoke_key(conn, key_id, at=clock(), actor=principal)

    return router
