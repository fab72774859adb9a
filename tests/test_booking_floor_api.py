"""The floor router over HTTP: roles, status codes and bodies. It is mounted here on a bare FastAPI app with
the real Authenticator (tokens issued directly), so these tests need nothing of the composition root."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from icalendar import Calendar

from accounts import audit
from accounts.auth import Authenticator, public
from accounts.model import Role
from booking.floor_api import make_router
from common import problems
from fabhub.policy import ROLES
from tests.accounts_rig import make_org, make_user
from tests.test_booking_floor import NOW, ZONE, Center, _center, book, local

SECRET = "test-signing-key-that-is-long-enough-0123456789"


@dataclass
class Api:
    client: httpx.AsyncClient
    center: Center
    headers: dict[Role, dict[str, str]]
    router: APIRouter
    auth: Authenticator


@pytest.fixture
async def api(pool) -> AsyncIterator[Api]:
    center = await _center(pool)
    auth = Authenticator(pool, SECRET, lambda: NOW, policy=ROLES)
    router = make_router(pool, auth, center.catalogue, ZONE, lambda: NOW, "/api/v1")
    app = FastAPI()
    app.include_router(router)
    problems.install(app)  # the app's one error handler, as create_app installs it
    principals = {
        Role.technician: center.technician,
        Role.admin: center.admin,
        Role.finance: center.finance,
        Role.customer: center.customer,
    }
    headers = {role: {"Authorization": f"Bearer {auth.issue(p.id).access_token}"} for role, p in principals.items()}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://fab.example") as client:
        yield Api(client, center, headers, router, auth)


def window(day: int, start: float, end: float, **extra) -> dict:
    return {"start": local(day, start).isoformat(), "end": local(day, end).isoformat(), **extra}


async def test_every_route_takes_its_roles_from_the_policy(api):
    """One access dependency per route: auth.caller, which admits the roles of the route's line in
    fabhub/policy.py (tests/test_authorization.py calls every route as every role), or public."""
    for route in api.router.routes:
        for method in route.methods:
            access = [
                d.call for d in route.dependant.dependencies if hasattr(d.call, "policy") or hasattr(d.call, "roles")
            ]
            assert access == [public if ROLES[(method, route.path)] is None else api.auth.caller], route.path


async def test_maintenance_over_http(api):
    client, c, h = api.client, api.center, api.headers
    async with c.pool.connection() as conn:
        hit = await book(conn, "cnc-01", c.org_id, c.customer.id, local(1, 9), local(1, 11))

    r = await client.post("/api/v1/maintenance", json=window(1, 10, 12, device_id="cnc-01", reason="spindle"))
    assert r.status_code == 401
    r = await client.post(
        "/api/v1/maintenance", json=window(1, 10, 12, device_id="cnc-01", reason="spindle"), headers=h[Role.customer]
    )
    assert r.status_code == 403
    r = await client.post(
        "/api/v1/maintenance", json=window(1, 10, 12, device_id="cnc-01", reason="spindle"), headers=h[Role.technician]
    )
    assert r.status_code == 409, r.text
    assert r.json()["bookings"] == [
        {
            "id": hit,
            "organization_id": c.org_id,
            "organization_name": "靖江精工机械有限公司",  # a conflict names the customer in the way
            "start": "2027-03-02T01:00:00Z",
            "end": "2027-03-02T03:00:00Z",
            "status": "confirmed",
        }
    ]
    assert "cancel_bookings" in r.json()["detail"]

    body = window(1, 10, 12, device_id="cnc-01", reason="spindle", cancel_bookings=True)
    r = await client.post("/api/v1/maintenance", json=body, headers=h[Role.technician])
    assert r.status_code == 201, r.text
    created = r.json()
    assert [b["id"] for b in created["cancelled_bookings"]] == [hit]
    assert created["device_name"] == c.catalogue.devices["cnc-01"].name

    r = await client.post("/api/v1/maintenance", json=body, headers=h[Role.admin])
    assert r.status_code == 409 and r.json()["maintenance"][0]["id"] == created["id"]

    params = {"from": local(1, 0).isoformat(), "to": local(2, 0).isoformat(), "device_id": "cnc-01"}
    r = await client.get("/api/v1/maintenance", params=params, headers=h[Role.finance])
    assert r.status_code == 200 and [w["id"] for w in r.json()["items"]] == [created["id"]]
    r = await client.get("/api/v1/maintenance", params=params, headers=h[Role.customer])
    assert r.status_code == 403
    r = await client.get("/api/v1/maintenance", headers=h[Role.technician])  # defaults: the next 31 days
    assert r.status_code == 200 and r.json()["total"] == 1

    r = await client.delete(f"/api/v1/maintenance/{created['id']}", headers=h[Role.finance])
    assert r.status_code == 403
    r = await client.delete(f"/api/v1/maintenance/{created['id']}", headers=h[Role.technician])
    assert r.status_code == 200 and r.json()["cancelled_at"] is not None
    r = await client.delete(f"/api/v1/maintenance/{created['id']}", headers=h[Role.technician])
    assert r.status_code == 409
    r = await client.delete("/api/v1/maintenance/99999", headers=h[Role.technician])
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("method", "url", "kwargs"),
    [
        ("post", "/api/v1/maintenance", {"json": window(1, 10, 12, device_id="CNC 01", reason="x")}),
        ("post", "/api/v1/maintenance", {"json": window(1, 10, 12, device_id="cnc-99", reason="x")}),
        ("post", "/api/v1/maintenance", {"json": window(1, 12, 10, device_id="cnc-01", reason="x")}),
        ("post", "/api/v1/maintenance", {"json": window(1, 10, 12, device_id="cnc-01", reason="")}),
        ("post", "/api/v1/maintenance", {"json": window(1, 10, 12, device_id="cnc-01", reason="x", extra=1)}),
        (
            "post",
            "/api/v1/maintenance",
            {"json": {"device_id": "cnc-01", "start": "2027-03-02T10:00", "end": "2027-03-02T12:00", "reason": "x"}},
        ),
        (
            "post",
            "/api/v1/maintenance",
            {"json": {"device_id": "cnc-01", "start": "9999-12-31T23:00Z", "end": "9999-12-31T23:30Z", "reason": "x"}},
        ),
        ("get", "/api/v1/maintenance", {"params": {"from": "2027-03-01T00:00"}}),
        ("get", "/api/v1/maintenance", {"params": {"from": "2027-03-01T00:00Z", "to": "2028-03-02T00:00Z"}}),
        ("get", "/api/v1/maintenance", {"params": {"from": "2027-03-02T00:00Z", "to": "2027-03-01T00:00Z"}}),
        ("get", "/api/v1/maintenance", {"params": {"from": "9999-12-31T23:59:59Z"}}),
        ("get", "/api/v1/maintenance", {"params": {"device_id": "../etc"}}),
        ("get", "/api/v1/maintenance", {"params": {"device_id": "cnc-99"}}),
        ("delete", "/api/v1/maintenance/0", {}),
        ("delete", f"/api/v1/maintenance/{2**63}", {}),
        ("delete", "/api/v1/maintenance/abc", {}),
        (
            "put",
            "/api/v1/opening-hours",
            {"json": {"intervals": [{"weekday": 8, "opens": "08:00", "closes": "12:00"}]}},
        ),
        ("put", "/api/v1/opening-hours", {"json": {"intervals": [{"weekday": 1, "opens": "x", "closes": "12:00"}]}}),
        ("put", "/api/v1/opening-hours", {"json": [{"weekday": 1, "opens": "08:00", "closes": "12:00"}]}),
        ("get", "/api/v1/closed-days", {"params": {"from": "2027-03-01", "to": "2029-03-01"}}),
        ("get", "/api/v1/closed-days", {"params": {"from": "9999-12-31"}}),
        ("put", "/api/v1/closed-days/2027-02-30", {"json": {"reason": "x"}}),
        ("put", "/api/v1/closed-days/9999-12-31", {"json": {"reason": "x"}}),
        ("put", "/api/v1/closed-days/2027-03-05", {"json": {"reason": "   "}}),
        ("delete", "/api/v1/closed-days/2027-03-05", {}),
        ("get", "/api/v1/closed-days", {"params": {"year": "2027", "from": "2027-03-01"}}),
        ("get", "/api/v1/working-days", {"params": {"year": "1999"}}),
        ("get", "/api/v1/working-days", {"params": {"year": "2027", "to": "2027-06-01"}}),
        ("get", "/api/v1/working-days", {"params": {"from": "2027-03-01", "to": "2029-03-01"}}),
        ("get", "/api/v1/working-days", {"params": {"year": "next"}}),
        ("get", "/api/v1/working-days", {"params": {"cursor": "bm90IG91cnM"}}),
        ("put", "/api/v1/working-days/2027-02-29", {"json": {"as_weekday": 1, "reason": "x"}}),
        ("put", "/api/v1/working-days/9999-12-25", {"json": {"as_weekday": 1, "reason": "x"}}),
        ("put", "/api/v1/working-days/2027-03-05", {"json": {"as_weekday": 1, "reason": "a Friday"}}),
        ("put", "/api/v1/working-days/2027-03-06", {"json": {"as_weekday": 8, "reason": "x"}}),
        ("put", "/api/v1/working-days/2027-03-06", {"json": {"as_weekday": 1, "reason": " "}}),
        ("put", "/api/v1/working-days/2027-03-06", {"json": {"reason": "no weekday"}}),
        ("put", "/api/v1/working-days/2027-03-06", {"json": {"as_weekday": 1, "reason": "x", "hours": "8-20"}}),
        ("delete", "/api/v1/working-days/2027-03-06", {}),
        ("delete", "/api/v1/working-days/someday", {}),
    ],
)
async def test_bad_input_gets_a_4xx_with_a_reason(api, method, url, kwargs):
    r = await getattr(api.client, method)(url, headers=api.headers[Role.admin], **kwargs)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.json()["detail"], r.text


async def test_opening_hours_and_closed_days_over_http(api):
    client, h = api.client, api.headers
    r = await client.get("/api/v1/opening-hours", headers=h[Role.customer])
    assert r.status_code == 200 and r.json()["zone"] == "Asia/Shanghai" and len(r.json()["intervals"]) == 6

    pattern = {
        "intervals": [
            {"weekday": 1, "opens": "08:00", "closes": "12:00"},
            {"weekday": 1, "opens": "11:00", "closes": "14:00"},
        ]
    }
    r = await client.put("/api/v1/opening-hours", json=pattern, headers=h[Role.admin])
    assert r.status_code == 422 and "overlaps" in r.json()["detail"]
    pattern = {"intervals": [{"weekday": d, "opens": "07:30", "closes": "24:00"} for d in range(1, 8)]}
    r = await client.put("/api/v1/opening-hours", json=pattern, headers=h[Role.technician])
    assert r.status_code == 403
    r = await client.put("/api/v1/opening-hours", json=pattern, headers=h[Role.admin])
    assert r.status_code == 200, r.text
    assert r.json()["intervals"] == pattern["intervals"] and r.json()["bookings_outside_hours"] == []

    r = await client.put("/api/v1/closed-days/2027-03-05", json={"reason": "劳动节"}, headers=h[Role.admin])
    assert r.status_code == 200 and r.json()["reason"] == "劳动节", r.text
    r = await client.get("/api/v1/closed-days", headers=h[Role.customer])  # default: from today, a year
    assert [(d["day"], d["reason"]) for d in r.json()["items"]] == [("2027-03-05", "劳动节")]
    r = await client.get("/api/v1/closed-days", params={"from": "2027-03-06"}, headers=h[Role.finance])
    assert r.json()["items"] == []
    r = await client.delete("/api/v1/closed-days/2027-03-05", headers=h[Role.technician])
    assert r.status_code == 403
    r = await client.delete("/api/v1/closed-days/2027-03-05", headers=h[Role.admin])
    assert r.status_code == 204
    r = await client.delete("/api/v1/closed-days/2027-03-05", headers=h[Role.admin])
    assert r.status_code == 404 and "not a closed day" in r.json()["detail"]


async def test_make_up_working_days_over_http(api):
    client, c, h = api.client, api.center, api.headers
    sunday, saturday = "2027-03-07", "2027-03-13"
    r = await client.put(
        f"/api/v1/working-days/{sunday}", json={"as_weekday": 1, "reason": "调休"}, headers=h[Role.technician]
    )
    assert r.status_code == 403
    r = await client.put(
        f"/api/v1/working-days/{sunday}", json={"as_weekday": 1, "reason": " 调休 "}, headers=h[Role.admin]
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"day": sunday, "as_weekday": 1, "reason": "调休", "bookings_outside_hours": []}
    r = await client.get("/api/v1/opening-hours", headers=h[Role.customer])  # the weekly pattern is untouched
    assert [i["weekday"] for i in r.json()["intervals"]] == [1, 2, 3, 4, 5, 6]

    # A day is a closed day or a make-up working day, never both; only a weekend day is made up.
    assert (
        await client.put(f"/api/v1/closed-days/{saturday}", json={"reason": "清明"}, headers=h[Role.admin])
    ).status_code == 200
    r = await client.put(
        f"/api/v1/working-days/{saturday}", json={"as_weekday": 2, "reason": "x"}, headers=h[Role.admin]
    )
    assert r.status_code == 422 and r.json()["detail"] == f"{saturday} is a closed day: remove it first"
    r = await client.put(f"/api/v1/closed-days/{sunday}", json={"reason": "x"}, headers=h[Role.admin])
    assert r.status_code == 422 and r.json()["detail"] == f"{sunday} is a make-up working day: remove it first"
    r = await client.put(
        "/api/v1/working-days/2027-03-08", json={"as_weekday": 1, "reason": "x"}, headers=h[Role.admin]
    )
    assert r.status_code == 422 and "2027-03-08 is not a Saturday or Sunday" in r.json()["detail"]
    for day in ("2027-09-26", "2027-10-09", "2028-01-29"):
        r = await client.put(
            f"/api/v1/working-days/{day}", json={"as_weekday": 5, "reason": "国庆节调休"}, headers=h[Role.admin]
        )
        assert r.status_code == 200, r.text

    # Anyone signed in reads the list, in pages, by year or from/to (default: a year from today).
    r = await client.get("/api/v1/working-days", params={"year": 2027, "limit": 2}, headers=h[Role.customer])
    first = r.json()
    assert [d["day"] for d in first["items"]] == [sunday, "2027-09-26"] and first["total"] == 3
    assert first["items"][0]["updated_at"] and first["items"][0]["as_weekday"] == 1  # zone: test_month_end_to_end
    params = {"year": 2027, "limit": 2, "cursor": first["next_cursor"]}
    rest = (await client.get("/api/v1/working-days", params=params, headers=h[Role.finance])).json()
    assert [d["day"] for d in rest["items"]] == ["2027-10-09"] and rest["next_cursor"] is None
    listed = (await client.get("/api/v1/working-days", headers=h[Role.technician])).json()
    assert [d["day"] for d in listed["items"]] == [sunday, "2027-09-26", "2027-10-09", "2028-01-29"]
    closed = (await client.get("/api/v1/closed-days", params={"year": 2027}, headers=h[Role.customer])).json()
    assert [d["day"] for d in closed["items"]] == [saturday]
    r = await client.get("/api/v1/working-days", params={"cursor": first["next_cursor"]}, headers=h[Role.admin])
    assert r.status_code == 200  # the same list's cursor, whatever its range
    r = await client.get("/api/v1/closed-days", params={"cursor": first["next_cursor"]}, headers=h[Role.admin])
    assert r.status_code == 422 and "cursor" in r.json()["detail"]

    # A booking on the Sunday, which then opens with a Saturday's shorter hours: listed, and it stays booked.
    async with c.pool.connection() as conn:
        late = await book(conn, "cnc-01", c.org_id, c.customer.id, local(6, 18), local(6, 19))
    since = (await client.get("/api/v1/working-days", params={"year": 2027}, headers=h[Role.admin])).json()
    since = max(d["updated_at"] for d in since["items"])
    r = await client.put(
        f"/api/v1/working-days/{sunday}", json={"as_weekday": 6, "reason": "调休"}, headers=h[Role.admin]
    )
    assert r.status_code == 200 and [b["id"] for b in r.json()["bookings_outside_hours"]] == [late]
    changed = await client.get("/api/v1/working-days", params={"updated_since": since}, headers=h[Role.admin])
    assert sunday in [d["day"] for d in changed.json()["items"]]

    assert (await client.delete(f"/api/v1/working-days/{sunday}", headers=h[Role.customer])).status_code == 403
    assert (await client.delete(f"/api/v1/working-days/{sunday}", headers=h[Role.admin])).status_code == 204
    r = await client.delete(f"/api/v1/working-days/{sunday}", headers=h[Role.admin])
    assert r.status_code == 404 and r.json()["detail"] == f"{sunday} is not a make-up working day"
    async with c.pool.connection() as conn:
        logged = await audit.entries(conn, entity="working_day", entity_id=sunday)
    assert [(e.action, e.actor) for e in reversed(logged)] == [
        ("create", c.admin.email),
        ("update", c.admin.email),
        ("delete", c.admin.email),
    ]
    assert logged[1].after == {"day": sunday, "as_weekday": 6, "reason": "调休"}


async def test_calendar_feed_url_rotates_and_serves_ical(api):
    client, c, h = api.client, api.center, api.headers
    other_org = await make_org(c.pool, name="泰州智造科技有限公司")
    other_user = await make_user(c.pool, Role.customer, other_org)
    async with c.pool.connection() as conn:
        mine = await book(conn, "cnc-01", c.org_id, c.customer.id, local(1, 9), local(1, 11))
        await book(conn, "cnc-01", other_org, other_user, local(2, 9), local(2, 11))

    r = await client.post("/api/v1/calendar/feed")
    assert r.status_code == 401
    r = await client.post("/api/v1/calendar/feed", headers=h[Role.customer])
    assert r.status_code == 200, r.text
    url = r.json()["url"]
    assert url.startswith("https://fab.example/api/v1/calendar/") and url.endswith(".ics")

    r = await client.get(url)  # no credentials: the URL is the credential
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/calendar; charset=utf-8"
    uids = [str(e["uid"]) for e in Calendar.from_ical(r.content).walk("VEVENT")]
    assert uids == [f"booking-{mine}@fabhub"]

    r = await client.post("/api/v1/calendar/feed", headers=h[Role.customer])
    new_url = r.json()["url"]
    assert new_url != url
    assert (await client.get(url)).status_code == 404  # the old URL stopped working
    assert (await client.get(new_url)).status_code == 200
    for bad in ("/api/v1/calendar/short.ics", "/api/v1/calendar/" + "x" * 43 + ".ics", "/api/v1/calendar/%00.ics"):
        r = await client.get(bad)
        assert r.status_code == 404 and r.json()["detail"] == "unknown calendar feed"
    async with c.pool.connection() as conn:
        entries = await audit.entries(conn, entity="app_user", entity_id=str(c.customer.id))
    assert [e.action for e in entries if e.action == "rotate_calendar_secret"] == ["rotate_calendar_secret"] * 2

    r = await client.post("/api/v1/calendar/feed", headers=h[Role.admin])
    staff = Calendar.from_ical((await client.get(r.json()["url"])).content)
    assert len(staff.walk("VEVENT")) == 2
