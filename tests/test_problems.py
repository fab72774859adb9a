"""One error format for the whole API (RFC 9457 problem details), bodies bounded before anything reads
them, and JSON held to the standard: NaN, Infinity and lone surrogates are a 422, never a 500."""

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from accounts.model import Role
from fabhub.app import create_app
from fabhub.devices import load_devices
from fabhub.settings import Settings
from tests.accounts_rig import as_role
from tests.booking_rig import NOW, customer, slot
from tests.http import REPO, SECRET, serve

PROBLEM = "application/problem+json"


def is_problem(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM, r.headers
    body = r.json()
    assert body["status"] == status and body["type"].startswith("urn:fabhub:problem:")
    assert isinstance(body["title"], str) and isinstance(body["detail"], str) and body["detail"]
    return body


def json_routes() -> list[tuple[str, str]]:
    """Every API route that takes a JSON body."""
    app = create_app(Settings(secret_key=SECRET, run_gateway=False, run_jobs=False), "postgresql:///x",
                     load_devices(REPO / "devices.yaml"))  # fmt: skip
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.route
        if isinstance(route, APIRoute) and context.path.startswith("/api/") and route.body_field is not None:
            media = getattr(route.body_field.field_info, "media_type", "application/json")
            if media == "application/json":
                found.extend((m, context.path) for m in sorted(context.methods))
    assert len(found) >= 15
    return found


def concrete(path: str) -> str:
    return path.replace("{device_class}", "cnc").replace("{device_id}", "cnc-01").replace("{month}", "2027-03")


async def test_every_kind_of_failure_is_a_problem_document(db_url, pool):
    async with serve(db_url, clock=lambda: NOW) as api:
        is_problem(await api.get("/api/v1/me"), 401)
        assert (await api.get("/api/v1/me")).headers["www-authenticate"] == "Bearer"
        api.headers.update(await as_role(pool, api, Role.customer))
        is_problem(await api.get("/api/v1/users"), 403)
        is_problem(await api.get("/api/v1/bookings/999999"), 404)
        invalid = is_problem(await api.post("/api/v1/quotes", json={"device_id": "cnc-01", "start": "noon"}), 422)
        fields = {e["field"] for e in invalid["errors"]}
        assert {"body.start", "body.end"} <= fields, invalid
        assert all(e["message"] for e in invalid["errors"])
        overflow = is_problem(await api.get("/api/v1/bookings/99999999999999999999"), 422)
        assert overflow["errors"][0]["field"] == "path.booking_id"
        is_problem(await api.get("/api/v1/nothing-here"), 404)
        is_problem(await api.delete("/api/v1/classes"), 405)


async def test_a_taken_slot_is_a_conflict_with_its_alternatives(db_url, pool):
    async with serve(db_url, clock=lambda: NOW) as api:
        first = await customer(pool, api)
        second = await customer(pool, api)
        body = {"device_id": "cnc-01", **slot(1, 9, 11)}
        assert (await api.post("/api/v1/bookings", json=body, headers=first.headers)).status_code == 201
        taken = is_problem(await api.post("/api/v1/bookings", json=body, headers=second.headers), 409)
        assert taken["alternatives"], taken


@pytest.mark.parametrize(
    "payload",
    [b'{"device_id": "cnc-01", "start": NaN}', b'{"x": Infinity}', b'{"purpose": "\\ud800"}', b'{"x": 1e999}'],
    ids=["nan", "infinity", "lone-surrogate", "overflow"],
)
async def test_non_standard_json_is_refused_on_every_json_route(db_url, pool, payload):
    async with serve(db_url, clock=lambda: NOW) as api:
        api.headers.update(await as_role(pool, api, Role.admin))
        for method, path in json_routes():
            r = await api.request(method, concrete(path), content=payload, headers={"content-type": "application/json"})
            body = is_problem(r, 422)
            assert "not valid JSON" in body["detail"], (method, path, body)


async def test_bodies_are_bounded_before_they_are_read_or_the_caller_known(db_url):
    async with serve(db_url, clock=lambda: NOW, max_body_bytes=64 * 1024) as api:
        big = b"x" * (2 << 20)
        declared = await api.post("/api/v1/auth/token", content=big, headers={"content-type": "text/plain"})
        is_problem(declared, 413)

        async def chunks():  # no Content-Length: counted as it arrives (refused at the third chunk)
            for _ in range(3):
                yield b"y" * 32768

        streamed = await api.post("/api/v1/bookings", content=chunks(), headers={"content-type": "application/json"})
        is_problem(streamed, 413)
        small = await api.post("/api/v1/auth/token", data={"username": "a@b.cn", "password": "x"})
        is_problem(small, 401)  # under the limit the request goes on as usual


def test_the_openapi_document_describes_problem_details():
    app = create_app(Settings(secret_key=SECRET, run_gateway=False, run_jobs=False), "postgresql:///x",
                     load_devices(REPO / "devices.yaml"))  # fmt: skip
    spec = app.openapi()
    assert "ProblemDetails" in spec["components"]["schemas"]
    quotes = spec["paths"]["/api/v1/quotes"]["post"]["responses"]
    assert "application/problem+json" in quotes["4XX"]["content"]
    assert "422" not in quotes or "HTTPValidationError" not in str(quotes["422"])
