"""One error format for the whole API: RFC 9457 problem details (`application/problem+json` with `type`,
`title`, `status`, `detail`, and `errors` for field problems), from one handler per kind of failure:
our DomainError, FastAPI's request validation, Starlette's HTTP errors, and a value the database refuses."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.errors import DomainError

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"


class FieldProblem(BaseModel):
    """One field that is wrong: where (`body.start`, `query.from`), and why."""

    field: str
    message: str


class ProblemDetails(BaseModel):
    """RFC 9457; `type` is a URN naming the kind of problem. Domain answers may add members (e.g. a taken
    slot's `alternatives`, a booking's broken `problems`)."""

    model_config = {"extra": "allow"}

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None


def kind(status: int) -> str:
    return f"urn:fabhub:problem:{HTTPStatus(status).phrase.lower().replace(' ', '-')}"


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: Sequence[FieldProblem] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": kind(status),
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    if errors:
        body["errors"] = [e.model_dump() for e in errors]
    return JSONResponse(to_jsonable_python(body), status_code=status, headers=headers, media_type=MEDIA_TYPE)


def _field(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem(exc.status, exc.detail, title=exc.title, headers=exc.headers or None, **exc.extra)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [FieldProblem(field=_field(e.get("loc", ())), message=str(e.get("msg", ""))) for e in exc.errors()]
    first = errors[0] if errors else None
    detail = f"{first.field}: {first.message}" if first else "the request is not valid"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    return problem(422, detail, errors=errors)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).description
    return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))


async def _refused_value(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, psycopg.errors.DataError)
    reason = exc.diag.message_primary or "out of range"
    return problem(422, f"invalid value: {reason}")


def install(app: FastAPI) -> None:
    """Every route of `app` answers its failures in the one format."""
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(psycopg.errors.DataError, _refused_value)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ProblemDetails, "content": {MEDIA_TYPE: {}}, "description": "Problem details (RFC 9457)"},
}
