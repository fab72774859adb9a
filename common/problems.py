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
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.errors import DomainError

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"


class FieldProblem(BaseModel):
    """One field that is wrong: where (`body.start`, `query.from`), and why."""

    field: str = Field(examples=["body.start"], description="where: body, query, path or header, then the name")
    message: str = Field(examples=["Input should be a valid datetime"])


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, the body of every refusal. A domain answer may add members that say more
    (a taken slot's `alternatives`, a booking's broken rules in `problems`); the operation's own schemas
    name them."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        pattern="^urn:fabhub:problem:[a-z-]+$",
        description="a URN naming the kind of problem after the status, e.g. urn:fabhub:problem:conflict",
    )
    title: str = Field(description="the kind of problem, in a few words")
    status: int = Field(ge=400, le=599, description="the HTTP status code, repeated")
    detail: str = Field(min_length=1, description="what is wrong here, in words a person can act on")


class ValidationProblem(ProblemDetails):
    """422 for a request that does not fit the operation's parameters or body: every field that is wrong,
    in `errors`; `detail` repeats the first."""

    errors: list[FieldProblem] = Field(min_length=1)


class ListedProblems(ProblemDetails):
    """422 for an input checked as a whole (a weekly pattern, a bank statement): every problem found,
    not only the first."""

    problems: list[str] = Field(min_length=1, examples=[["line 3: amount 'x' is not a number"]])


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
