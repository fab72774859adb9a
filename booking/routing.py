"""What the booking routers share: POSTs made safe to retry with an `Idempotency-Key`."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool

from accounts.model import Principal
from booking import idempotency

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Retrying with the same key returns the first answer instead of acting twice",
    ),
]


async def once(
    pool: AsyncConnectionPool,
    principal: Principal,
    key: str | None,
    request: Request,
    payload: Any,
    now: datetime,
    work: idempotency.Work,
) -> JSONResponse:
    """Runs `work` (status and JSON body) in a transaction at most once per key; a created object's answer
    carries its Location."""
    sha = idempotency.fingerprint(request.method, request.url.path, payload)
    answer = await idempotency.run_once(pool, principal.id, key, sha, now, work)
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    if answer.status == 201 and isinstance(answer.body, dict) and "id" in answer.body:
        headers["Location"] = f"{request.url.path}/{answer.body['id']}"
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)
