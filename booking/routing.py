"""What the booking routers share: the route class that turns domain errors into their HTTP answers, and
POSTs made safe to retry with an `Idempotency-Key`."""

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import Header, Path, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from psycopg_pool import AsyncConnectionPool
from pydantic import AfterValidator, AwareDatetime
from pydantic_core import to_jsonable_python

from accounts.model import Principal
from booking import idempotency
from booking.errors import BookingError

# Device, class and program ids, as devices.yaml writes them.
ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# A database row id in a path: a bigint, so a larger number is a 422 rather than an overflow in the query.
RowId = Annotated[int, Path(gt=0, le=2**63 - 1)]
EARLIEST_YEAR, LATEST_YEAR = 2000, 2199


def _plausible(value: datetime) -> datetime:
    # Checked on the written fields: converting a time near year 1 or 9999 to UTC would itself overflow.
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"times lie between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
    return value


# A time with its offset, in a range where date arithmetic cannot overflow (farther ones are typos).
Instant = Annotated[AwareDatetime, AfterValidator(_plausible)]


def _printable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text cannot contain NUL characters")
    return value


# Free text people type (purposes, reasons): PostgreSQL text cannot hold NUL.
Text = Annotated[str, AfterValidator(_printable)]

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


class GuardedRoute(APIRoute):
    """Translates the domain's errors into their HTTP answers for every route of a router, so none can leak
    as a 500: a BookingError becomes its status and body, a value the database refuses a 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except BookingError as exc:
                return JSONResponse(to_jsonable_python(exc.body()), status_code=exc.status)
            except psycopg.errors.DataError as exc:
                reason = exc.diag.message_primary or "out of range"
                return JSONResponse({"detail": f"invalid value: {reason}"}, status_code=422)

        return guarded


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
