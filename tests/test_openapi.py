"""The OpenAPI document tells a client every refusal: each operation has a summary a person reads (not the one
FastAPI makes of the function's name) and lists the problem answers it can give, as application/problem+json.
And the bodies the running app sends fit the schema the document declares for that operation and status,
including those that say more than the general problem: a taken slot's alternatives, broken booking rules, a
series' conflicts, a maintenance window's collisions, a weekly pattern's problems, an unknown reason code."""

from typing import Any

import httpx
import jsonschema_rs

from accounts.model import Role
from fabhub.app import API, create_app
from fabhub.devices import load_devices
from fabhub.policy import ROLES, routes
from fabhub.settings import Settings
from tests.accounts_rig import as_role
from tests.booking_rig import NOW, customer, local, slot
from tests.http import REPO, SECRET, serve

PROBLEM = "application/problem+json"
REFS = "#/components/schemas/"
METHODS = ("get", "put", "post", "delete", "patch")


def app_and_spec() -> tuple[Any, dict]:
    app = create_app(Settings(secret_key=SECRET, run_gateway=False, run_jobs=False), "postgresql:///x",
                     load_devices(REPO / "devices.yaml"))  # fmt: skip
    return app, app.openapi()


def problem_schema(spec: dict, method: str, path: str, status: int) -> dict:
    """The schema the document declares for this refusal; problem details are its only content."""
    answer = spec["paths"][path][method]["responses"][str(status)]
    assert list(answer["content"]) == [PROBLEM], (method, path, status, answer)
    return answer["content"][PROBLEM]["schema"]


def validate(spec: dict, schema: dict, body: dict) -> None:
    jsonschema_rs.Draft202012Validator({**schema, "components": spec["components"]}).validate(body)


def fits(spec: dict, r: httpx.Response, method: str, path: str, status: int, model: str | None = None) -> dict:
    """The answer is the problem document the spec declares for `method path` and `status`; with `model`,
    it is that one of the declared choices, not only the general problem every choice falls back on."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM, r.headers
    body = r.json()
    schema = problem_schema(spec, method, path, status)
    validate(spec, schema, body)
    if model is not None:
        assert {"$ref": REFS + model} in schema["anyOf"], schema
        validate(spec, {"$ref": REFS + model}, body)
    return body


def test_the_components_hold_the_problems_to_their_shape():
    _, spec = app_and_spec()
    general = {"type": "urn:fabhub:problem:not-found", "title": "Not found", "status": 404, "detail": "no booking 9"}
    validate(spec, {"$ref": REFS + "ProblemDetails"}, general | {"anything": ["more"]})
    for wrong in ({"type": "not-a-urn"}, {"status": 200}, {"detail": ""}):
        assert not jsonschema_rs.Draft202012Validator(
            {"$ref": REFS + "ProblemDetails", "components": spec["components"]}
        ).is_valid(general | wrong), wrong
    slots = jsonschema_rs.Draft202012Validator({"$ref": REFS + "SlotTakenProblem", "components": spec["components"]})
    assert not slots.is_valid(general | {"status": 409, "alternatives": [{"device_id": "cnc-01"}]})


def test_every_operation_has_a_summary_and_its_problem_answers():
    app, spec = app_and_spec()
    names = {(method.lower(), path): route.name for (method, path), route in routes(app)}
    operations = [(m, p, item[m]) for p, item in spec["paths"].items() for m in METHODS if m in item]
    assert len(operations) >= 100
    for method, path, operation in operations:
        where = f"{method.upper()} {path}"
        summary = operation.get("summary", "")
        assert summary.strip(), f"{where} has no summary"
        assert summary != names[(method, path)].replace("_", " ").title(), f"{where}: {summary!r} is FastAPI's"
        if not path.startswith(API):
            continue  # /healthz answers its own body, a 503 included
        answers = operation["responses"]
        refusals = {s for s in answers if s == "4XX" or (s.isdigit() and int(s) >= 400)}
        assert {"4XX", "503"} <= refusals, where
        for status in refusals:
            schema = problem_schema(spec, method, path, status)
            assert REFS + "ProblemDetails" in str(schema), (where, status, schema)
        if ROLES[(method.upper(), path)] is not None:
            assert {"401", "403", "429"} <= refusals, where
        if "{" in path:
            assert "404" in refusals, where
        if operation.get("parameters") or "requestBody" in operation:
            assert "422" in refusals and REFS + "ValidationProblem" in str(answers["422"]), where
    bookings = spec["paths"][f"{API}/bookings"]["post"]["responses"]
    assert "admin, customer, technician" in bookings["403"]["description"]
    assert bookings["401"]["headers"]["WWW-Authenticate"]
    assert bookings["429"]["headers"]["Retry-After"]


async def test_the_answers_fit_the_declared_problems(db_url, pool):
    _, spec = app_and_spec()
    async with serve(db_url, clock=lambda: NOW) as api:
        fits(spec, await api.get(f"{API}/me"), "get", f"{API}/me", 401)
        first, second = await customer(pool, api), await customer(pool, api)
        fits(spec, await api.get(f"{API}/users", headers=first.headers), "get", f"{API}/users", 403)
        missing = await api.get(f"{API}/bookings/999999", headers=first.headers)
        fits(spec, missing, "get", f"{API}/bookings/{{booking_id}}", 404)
        unreadable = await api.post(
            f"{API}/quotes", json={"device_id": "cnc-01", "start": "noon"}, headers=first.headers
        )
        body = fits(spec, unreadable, "post", f"{API}/quotes", 422, "ValidationProblem")
        assert {"body.start", "body.end"} <= {e["field"] for e in body["errors"]}

        taken = {"device_id": "cnc-01", **slot(1, 9, 11)}
        assert (await api.post(f"{API}/bookings", json=taken, headers=first.headers)).status_code == 201
        r = await api.post(f"{API}/bookings", json=taken, headers=second.headers)
        assert fits(spec, r, "post", f"{API}/bookings", 409, "SlotTakenProblem")["alternatives"]
        short = await api.post(f"{API}/bookings", json=slot(2, 10, 10.5, device_id="cnc-01"), headers=first.headers)
        body = fits(spec, short, "post", f"{API}/bookings", 422, "RulesProblem")
        assert [p["rule"] for p in body["problems"]] == ["min_booking"]
        series = {**taken, "rule": "FREQ=DAILY;COUNT=2"}
        r = await api.post(f"{API}/bookings/series", json=series, headers=second.headers)
        assert len(fits(spec, r, "post", f"{API}/bookings/series", 409, "SeriesConflictProblem")["conflicts"]) == 1

        technician = await as_role(pool, api, Role.technician)
        window = {"device_id": "cnc-01", "start": local(1, 8).isoformat(), "end": local(1, 12).isoformat()}
        r = await api.post(f"{API}/maintenance", json=window | {"reason": "spindle"}, headers=technician)
        assert fits(spec, r, "post", f"{API}/maintenance", 409, "MaintenanceConflictProblem")["bookings"]
        down = f"{API}/downtime/cnc-01/{local(-1, 9).isoformat()}"
        r = await api.put(down, json={"code": "nope"}, headers=technician)
        assert fits(spec, r, "put", f"{API}/downtime/{{device_id}}/{{start}}", 422, "UnknownCodeProblem")["codes"]

        admin = await as_role(pool, api, Role.admin)
        week = {"intervals": [{"weekday": 9, "opens": "08:00", "closes": "20:00"}]}
        r = await api.put(f"{API}/opening-hours", json=week, headers=admin)
        assert "weekday" in fits(spec, r, "put", f"{API}/opening-hours", 422, "ListedProblems")["problems"][0]

        async def chunks():  # no Content-Length: refused as the bytes pass the limit (1 MiB)
            for _ in range(3):
                yield b"y" * (400 * 1024)

        huge = await api.post(f"{API}/bookings", content=chunks(), headers={"content-type": "application/json"})
        fits(spec, huge, "post", f"{API}/bookings", 413)
        wrong = {"username": first.email or "nobody@example.com", "password": "wrong password"}
        for _ in range(5):
            fits(spec, await api.post(f"{API}/auth/token", data=wrong), "post", f"{API}/auth/token", 401)
        fits(spec, await api.post(f"{API}/auth/token", data=wrong), "post", f"{API}/auth/token", 429)
