"""The authorization matrix. MATRIX is the policy: every route of the app, with the roles it admits. The
tests enumerate the app's routes, so a route added without a line here fails; they check that each route
declares exactly the roles of its line, then call every route as every role over HTTP: anonymous callers
get 401, roles outside the line 403, and a customer asking for another organization's objects gets the
same 404 as for objects that do not exist."""

import re

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from accounts.model import Role
from fabhub.app import create_app
from fabhub.devices import load_devices
from fabhub.settings import Settings
from tests.accounts_rig import Clock, as_role
from tests.booking_rig import NOW, customer, slot
from tests.http import REPO, SECRET, SHIPPED_SECRETS, serve

C, T, F, A = Role.customer, Role.technician, Role.finance, Role.admin
EVERYONE = frozenset({C, T, F, A})
STAFF = frozenset({T, F, A})
BOOKERS = frozenset({C, T, A})
OPERATORS = frozenset({T, A})
ADMIN = frozenset({A})
PUBLIC = None

MATRIX = {
    ("POST", "/api/v1/auth/token"): PUBLIC,
    ("GET", "/api/v1/me"): EVERYONE,
    ("POST", "/api/v1/me/password"): EVERYONE,
    # Organizations: customers see their own (others answer 404); admins manage them.
    ("GET", "/api/v1/organizations"): EVERYONE,
    ("POST", "/api/v1/organizations"): ADMIN,
    ("GET", "/api/v1/organizations/{organization_id}"): EVERYONE,
    ("PATCH", "/api/v1/organizations/{organization_id}"): ADMIN,
    # Users: staff read, admins manage; a customer sees only itself.
    ("GET", "/api/v1/users"): STAFF,
    ("POST", "/api/v1/users"): ADMIN,
    ("GET", "/api/v1/users/{user_id}"): EVERYONE,
    ("PATCH", "/api/v1/users/{user_id}"): ADMIN,
    ("GET", "/api/v1/users/{user_id}/qualifications"): EVERYONE,
    ("PUT", "/api/v1/users/{user_id}/qualifications/{device_class}"): OPERATORS,
    ("DELETE", "/api/v1/users/{user_id}/qualifications/{device_class}"): OPERATORS,
    ("GET", "/api/v1/audit"): frozenset({F, A}),
    # Booking: finance reads, customers and floor staff book; customers only for their organization.
    ("GET", "/api/v1/classes"): EVERYONE,
    ("GET", "/api/v1/availability"): EVERYONE,
    ("POST", "/api/v1/quotes"): BOOKERS,
    ("POST", "/api/v1/bookings"): BOOKERS,
    ("GET", "/api/v1/bookings"): EVERYONE,
    ("GET", "/api/v1/bookings/{booking_id}"): EVERYONE,
    ("POST", "/api/v1/bookings/{booking_id}/cancel"): BOOKERS,
    ("POST", "/api/v1/bookings/{booking_id}/check-in"): OPERATORS,  # the machine's state, else a technician
    ("POST", "/api/v1/bookings/{booking_id}/finish"): BOOKERS,
    # The floor: technicians manage maintenance; admins the center's hours.
    ("GET", "/api/v1/maintenance"): STAFF,
    ("POST", "/api/v1/maintenance"): OPERATORS,
    ("DELETE", "/api/v1/maintenance/{window_id}"): OPERATORS,
    ("GET", "/api/v1/opening-hours"): EVERYONE,
    ("PUT", "/api/v1/opening-hours"): ADMIN,
    ("GET", "/api/v1/closed-days"): EVERYONE,
    ("PUT", "/api/v1/closed-days/{day}"): ADMIN,
    ("DELETE", "/api/v1/closed-days/{day}"): ADMIN,
    ("POST", "/api/v1/calendar/feed"): EVERYONE,
    ("GET", "/api/v1/calendar/{secret}.ics"): PUBLIC,  # the secret in the URL is the credential
    # Live machine data is the center's, not a customer's: every signed-in user may watch it.
    ("GET", "/api/v1/telemetry/latest"): EVERYONE,
    ("GET", "/api/v1/telemetry/devices/{device_id}/signals"): EVERYONE,
    ("GET", "/api/v1/telemetry/devices/{device_id}/signals/{signal}"): EVERYONE,
    ("GET", "/api/v1/telemetry/devices/{device_id}/states"): EVERYONE,
    ("GET", "/api/v1/telemetry/quarantine"): EVERYONE,
    ("GET", "/api/v1/devices"): EVERYONE,
    ("GET", "/api/v1/devices/{device_id}"): EVERYONE,
    # OEE: a customer gets its own view (its bookings as the planned time), staff every device.
    ("GET", "/api/v1/oee"): EVERYONE,
    ("GET", "/api/v1/utilisation"): EVERYONE,
    ("GET", "/api/v1/oee/bookings/{booking_id}"): EVERYONE,
    # Down time is the center's own: staff read it, floor staff explain it; anyone may read the codes.
    ("GET", "/api/v1/downtime"): STAFF,
    ("GET", "/api/v1/downtime/codes"): EVERYONE,
    ("PUT", "/api/v1/downtime/{device_id}/{start}"): OPERATORS,
    ("DELETE", "/api/v1/downtime/{device_id}/{start}"): OPERATORS,
    ("GET", "/api/v1/losses/pareto"): STAFF,
    # Billing: finance and admins draft, issue and credit; customers read their own issued invoices.
    ("GET", "/api/v1/invoices"): EVERYONE,
    ("GET", "/api/v1/invoices/{invoice_id}"): EVERYONE,
    ("POST", "/api/v1/invoices/drafts"): frozenset({F, A}),
    ("POST", "/api/v1/invoices/{invoice_id}/issue"): frozenset({F, A}),
    ("POST", "/api/v1/invoices/{invoice_id}/credit-note"): frozenset({F, A}),
    ("GET", "/api/v1/usage"): EVERYONE,
    ("GET", "/api/v1/invoices/{invoice_id}.pdf"): EVERYONE,
    ("GET", "/api/v1/invoices/{invoice_id}/lines.{fmt}"): EVERYONE,
    ("GET", "/api/v1/usage.{fmt}"): frozenset({F, A}),
    ("GET", "/api/v1/subsidy-report.{fmt}"): frozenset({F, A}),
    # Web pages: the same roles through the session cookie; anonymous visitors are sent to the login form.
    ("GET", "/"): EVERYONE,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): PUBLIC,
    ("POST", "/language"): PUBLIC,
    ("GET", "/board"): OPERATORS,
    ("GET", "/board/tiles"): OPERATORS,
    ("GET", "/board/events"): OPERATORS,
    ("GET", "/book"): BOOKERS,
    ("POST", "/book/quote"): BOOKERS,
    ("POST", "/book"): BOOKERS,
    ("GET", "/my-bookings"): frozenset({C}),
    ("POST", "/my-bookings/{booking_id}/cancel"): frozenset({C}),
    ("POST", "/my-bookings/calendar-link"): frozenset({C}),
    ("GET", "/finance"): frozenset({F, A}),
    ("POST", "/finance/drafts"): frozenset({F, A}),
    ("POST", "/finance/invoices/{invoice_id}/issue"): frozenset({F, A}),
    ("POST", "/finance/invoices/{invoice_id}/credit-note"): frozenset({F, A}),
    ("GET", "/finance/invoices/{invoice_id}"): frozenset({F, A}),
    ("GET", "/management"): frozenset({F, A}),
    ("GET", "/machines/{device_id}"): OPERATORS,
    ("POST", "/machines/{device_id}/maintenance"): OPERATORS,
    ("POST", "/machines/{device_id}/downtime"): OPERATORS,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
}


def is_page(path: str) -> bool:
    return not path.startswith("/api/") and path not in ("/healthz", "/metrics")


def declared_roles(dependant) -> list:
    found = []
    for dependency in dependant.dependencies:
        if hasattr(dependency.call, "roles"):
            found.append(dependency.call.roles)
        found += declared_roles(dependency)
    return found


def app_routes() -> dict[tuple[str, str], list]:
    settings = Settings(secret_key=SECRET, run_jobs=False, run_gateway=True)
    devices = load_devices(REPO / "devices.yaml")
    app = create_app(settings, "postgresql://unused", devices, mqtt_url="mqtt://127.0.0.1:1", environ=SHIPPED_SECRETS)
    routes = {}
    for context in iter_route_contexts(app.routes):
        if isinstance(context.route, APIRoute):
            for method in context.methods:
                routes[(method, context.path)] = declared_roles(context.dependant)
    return routes


def test_every_route_declares_exactly_the_roles_of_the_matrix():
    routes = app_routes()
    assert set(routes) == set(MATRIX), "routes and matrix differ: add the route to MATRIX with its roles"
    for key, declared in routes.items():
        assert len(declared) == 1, f"{key} declares its roles {len(declared)} times"
        assert declared[0] == MATRIX[key], f"{key} admits {declared[0]}, the matrix says {MATRIX[key]}"


@pytest.fixture
async def center(db_url, pool, mosquitto):
    async with serve(
        db_url, mqtt_url=mosquitto.url, clock=Clock(NOW), run_gateway=True, access_token_minutes=600
    ) as client:
        yield client, pool


async def test_every_route_as_every_role(center):
    client, pool = center
    owner = await customer(pool, client)
    booking = (
        await client.post("/api/v1/bookings", json=slot(1, 9, 10, device_id="cnc-01"), headers=owner.headers)
    ).json()
    callers = {"anonymous": {}, **{role: await as_role(pool, client, role) for role in Role}}
    values = {
        "organization_id": owner.org_id,
        "user_id": owner.user_id,
        "booking_id": booking["id"],
        "window_id": 1,
        "device_class": "cnc",
        "device_id": "cnc-01",
        "signal": "spindle_speed",
        "day": "2027-03-10",
        "start": "2027-03-10T01:00:00Z",
        "secret": "not-a-real-secret-0123456789abcdefghijklmno",
        "invoice_id": 1,
        "fmt": "csv",
    }
    wrong = []
    for (method, path), allowed in MATRIX.items():
        if allowed is PUBLIC or is_page(path):
            continue
        url = path.format(**values)
        for caller, headers in callers.items():
            body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
            r = await client.request(method, url, headers=headers, **body)
            if caller == "anonymous":
                expected_ok = r.status_code == 401
            elif Role(caller) in allowed:
                expected_ok = r.status_code not in (401, 403)
            else:
                expected_ok = r.status_code == 403
            if not expected_ok:
                wrong.append(f"{method} {path} as {caller}: {r.status_code} {r.text[:120]}")
    assert not wrong, "\n".join(wrong)


async def form_token(client) -> str:
    """The CSRF token the pages would put in a form for the client's current cookies."""
    page = (await client.get("/login")).text
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


async def test_every_page_as_every_role(center):
    """Pages take the session cookie; a visitor without one is sent to log in (303), a role outside the line
    gets 403, and a form post carries its CSRF token, so only the role decides."""
    client, pool = center
    callers = {"anonymous": {}}
    for role in Role:
        token = (await as_role(pool, client, role))["Authorization"].removeprefix("Bearer ")
        callers[role] = {"fabhub_session": token}
    wrong = []
    for (method, path), allowed in MATRIX.items():
        if allowed is PUBLIC or not is_page(path):
            continue
        for caller, cookies in callers.items():
            client.cookies.clear()
            client.cookies.update(cookies)
            form = {"data": {"csrf": await form_token(client)}} if method == "POST" else {}
            async with client.stream(method, path.format(booking_id=1, invoice_id=1, device_id="cnc-01"), **form) as r:
                status, location = r.status_code, r.headers.get("location", "")
            if caller == "anonymous":
                expected_ok = status == 303 and location.startswith("/login?next=")
            elif Role(caller) in allowed:
                expected_ok = status not in (401, 403) and not location.startswith("/login")
            else:
                expected_ok = status == 403
            if not expected_ok:
                wrong.append(f"{method} {path} as {caller}: {status} {location}")
    client.cookies.clear()
    assert not wrong, "\n".join(wrong)


async def test_forms_need_their_token_and_the_session_cookie_cannot_write_the_api(center):
    """A page form without its token, with another's token, or with one planted as a cookie is refused (403,
    never 500); the session cookie reads the API but cannot change anything there."""
    client, pool = center
    token = (await as_role(pool, client, Role.customer))["Authorization"].removeprefix("Bearer ")
    client.cookies.clear()
    client.cookies.set("fabhub_session", token)
    good = await form_token(client)
    planted = "p" * 43
    client.cookies.set("fabhub_csrf", planted)  # a neighbour's cookie and a form to match it
    for data in ({}, {"csrf": "x" * 64}, {"csrf": planted}, {"csrf": "é"}, {"csrf": good[:-1]}):
        r = await client.post("/my-bookings/calendar-link", data=data)
        assert r.status_code == 403 and "表单已过期" in r.text, (data, r.status_code)
    assert (await client.post("/my-bookings/calendar-link", data={"csrf": good})).status_code == 200
    assert (await client.get("/api/v1/me")).status_code == 200
    assert (await client.post("/api/v1/calendar/feed")).status_code == 401
    assert (await client.post("/api/v1/bookings", json=slot(1, 9, 10, device_id="cnc-01"))).status_code == 401
    client.cookies.clear()


async def test_another_organizations_objects_look_missing(center):
    client, pool = center
    owner = await customer(pool, client)
    other = await customer(pool, client)
    booking = (
        await client.post("/api/v1/bookings", json=slot(1, 9, 10, device_id="cnc-01"), headers=owner.headers)
    ).json()
    missing = 9_000_000_000

    async def same_answer(method, template, real, **kw):
        theirs = await client.request(method, template.format(real), headers=other.headers, **kw)
        none = await client.request(method, template.format(missing), headers=other.headers, **kw)
        assert theirs.status_code == none.status_code == 404, (template, theirs.text, none.text)
        assert theirs.json()["detail"].replace(str(real), "N") == none.json()["detail"].replace(str(missing), "N")

    await same_answer("GET", "/api/v1/bookings/{}", booking["id"])
    for action in ("cancel", "finish"):
        await same_answer("POST", "/api/v1/bookings/{}/" + action, booking["id"])
    await same_answer("GET", "/api/v1/organizations/{}", owner.org_id)
    await same_answer("GET", "/api/v1/users/{}", owner.user_id)
    await same_answer("GET", "/api/v1/users/{}/qualifications", owner.user_id)
    window = {"from": slot(0, 0, 0)["start"], "to": slot(10, 0, 0)["start"]}
    assert (await client.get("/api/v1/bookings", params=window, headers=other.headers)).json() == []
    sneaky = {**window, "organization_id": owner.org_id}
    assert (await client.get("/api/v1/bookings", params=sneaky, headers=other.headers)).json() == []
    mine = (await client.get("/api/v1/bookings", params=window, headers=owner.headers)).json()
    assert [b["id"] for b in mine] == [booking["id"]]
    # A customer cannot book for someone else, not even a colleague of another organization.
    r = await client.post(
        "/api/v1/bookings", json=slot(2, 9, 10, device_id="cnc-01", user_id=owner.user_id), headers=other.headers
    )
    assert r.status_code == 403
    # And the booking is still there, untouched.
    r = await client.get(f"/api/v1/bookings/{booking['id']}", headers=owner.headers)
    assert r.json()["status"] == "confirmed"
