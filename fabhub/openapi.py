"""The OpenAPI document's refusals, completed in one place rather than on every route: each operation lists the
problem details (RFC 9457, common.problems) it can answer with, as application/problem+json. What a route
cannot tell FastAPI is read from the table of roles (fabhub/policy.py: a signed-in route answers 401, 403 and
the API keys' 429) and from the operation itself (an id in the path can be a 404, parameters or a body a
422). A route still names its own refusals (a 409, a 404 of a query parameter) and, where its body says more
than the general problem (a taken slot's `alternatives`, a booking's broken rules), the model of that body."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema

from accounts.auth import Policy
from accounts.model import ALL_ROLES
from common.problems import MEDIA_TYPE, ProblemDetails, ValidationProblem

Spec = dict[str, Any]
METHODS = ("get", "put", "post", "delete", "patch")
REFS = "#/components/schemas/{model}"
GENERAL = {"$ref": REFS.format(model=ProblemDetails.__name__)}
INVALID = {"$ref": REFS.format(model=ValidationProblem.__name__)}
RETRY_AFTER = {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}

# What each refusal means when the route says no more (FastAPI's default description is the status's phrase).
MEANING = {
    400: "The request cannot be carried out as sent",
    401: "Not signed in: no valid bearer token or API key (the answer carries `WWW-Authenticate: Bearer`)",
    404: "Not found, or not the caller's to see",
    409: "The change collides with the current state of things; `detail` says how",
    413: "The request body is larger than the limit",
    422: "Invalid input: fields that do not fit are listed in `errors`, a broken rule is told in `detail`",
    429: "Too many requests (an API key's requests a minute, or failed logins): wait `Retry-After` seconds",
    503: "The database is unavailable for a moment: try again after `Retry-After` seconds",
}
HEADERS = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    429: {"Retry-After": RETRY_AFTER},
    503: {"Retry-After": RETRY_AFTER},
}


def document_problems(app: FastAPI, policy: Policy, prefix: str) -> None:
    """Have `app.openapi()` (and /openapi.json) complete the refusals of every operation under `prefix`."""
    generate: Callable[[], Spec] = app.openapi

    def openapi() -> Spec:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate(), policy, prefix)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(spec: Spec, policy: Policy, prefix: str) -> Spec:
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    _, found = models_json_schema(
        [(m, "serialization") for m in (ProblemDetails, ValidationProblem)], ref_template=REFS
    )
    for name, schema in found.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    for path, item in spec["paths"].items():
        if not path.startswith(prefix):
            continue
        for method in METHODS & item.keys():
            operation = item[method]
            roles = policy[(method.upper(), path)]
            operation["responses"] = _responses(operation, roles)
    return spec


def _responses(operation: Spec, roles: frozenset[Any] | None) -> Spec:
    """The operation's answers with every refusal it can give, each as problem details."""
    answers: Spec = operation["responses"]
    parameters = operation.get("parameters", [])
    statuses = {int(s) for s in answers if s.isdigit() and int(s) >= 400} | {503}
    if roles is not None:
        statuses |= {401, 403, 429}
    if any(p["in"] == "path" for p in parameters):
        statuses.add(404)
    if parameters or "requestBody" in operation:
        statuses.add(422)
    if "requestBody" in operation:
        statuses.add(413)
    for status in sorted(statuses):
        declared = answers.get(str(status), {})
        answers[str(status)] = {
            "description": _description(status, declared.get("description"), roles),
            **({"headers": HEADERS[status]} if status in HEADERS else {}),
            "content": {MEDIA_TYPE: {"schema": _schema(status, declared.get("content", {}))}},
        }
    rest = answers.get("4XX", {})
    answers["4XX"] = {
        "description": rest.get("description", "Any other refusal"),
        "content": {MEDIA_TYPE: {"schema": GENERAL}},
    }
    return answers


def _description(status: int, declared: str | None, roles: frozenset[Any] | None) -> str:
    if declared and declared != HTTPStatus(status).phrase:
        return declared
    if status == 403:
        if roles is None or roles >= ALL_ROLES:
            return "Signed in, but this caller may not do this"
        names = ", ".join(sorted(r.value for r in roles))
        return f"Signed in, but not as one of the roles it needs: {names}"
    return MEANING.get(status, HTTPStatus(status).phrase)


def _schema(status: int, content: Spec) -> Spec:
    """The general problem, after the route's own model of the body when it names one (and, for a 422, the
    field problems of a request FastAPI could not read)."""
    own = [c["schema"] for c in content.values() if c.get("schema") not in (None, GENERAL, INVALID)]
    choices = ([INVALID] if status == 422 else []) + own
    return {"anyOf": [*choices, GENERAL]} if choices else GENERAL
