"""The authorization matrix, read from the app's one table of roles (fabhub/policy.py). The tests enumerate
the app's routes and check that each has exactly one line there and takes its roles from it (or is public
exactly where its line says so), then call every route as every role over HTTP: anonymous callers get 401,
roles outside the line 403, and a customer asking for another organization's objects gets the same 404 as
for objects that do not exist. Inside the answers a customer sees a machine's values, program names, parts
and state timeline only inside its organization's bookings, half-open [start, end): the last part calls every
telemetry, device, OEE and billing route a customer may call, with two organizations booked back to back."""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from accounts.model import Role
from fabhub.app import create_app
from fabhub.devices import load_devices
from fabhub.policy import PUBLIC, ROLES
from fabhub.settings import Settings
from telemetry import BatchWriter, Sample
from tests.accounts_rig import Clock, as_role, login
from tests.booking_rig import NOW, Customer, customer, local, slot
from tests.http import REPO, SECRET, SHIPPED_SECRETS, serve
from tests.samples import fixed_clock


def is_page(path: str) -> bool:
    return not path.startswith("/api/") and path not in ("/healthz", "/metrics")


def access_of(dependant) -> list:
    """The access dependencies of a route, depth first: auth.caller or sessions.visitor (they carry the
    policy they read) or public (it carries `roles = None`)."""
    found = []
    for dependency in dependant.dependencies:
        if hasattr(dependency.call, "policy") or hasattr(dependency.call, "roles"):
            found.append(dependency.call)
        found += access_of(dependency)
    return found


def app_routes() -> dict[tuple[str, str], list]:
    settings = Settings(secret_key=SECRET, run_jobs=False, run_gateway=True)
    devices = load_devices(REPO / "devices.yaml")
    app = create_app(settings, "postgresql://unused", devices, mqtt_url="mqtt://127.0.0.1:1", environ=SHIPPED_SECRETS)
    routes = {}
    for context in iter_route_contexts(app.routes):
        if isinstance(context.route, APIRoute):
            for method in context.methods:
                routes[(method, context.path)] = access_of(context.dependant)
    return routes


def test_every_route_has_one_line_in_the_policy_and_takes_its_roles_from_it():
    routes = app_routes()
    assert set(routes) == set(ROLES), "routes and fabhub/policy.py differ: give the route its line there"
    for key, found in routes.items():
        access = set(found)  # one dependency may appear twice (a route's and its sight's): it runs once
        assert len(access) == 1, f"{key} has {len(access)} access dependencies"
        [call] = access
        if ROLES[key] is PUBLIC:
            assert getattr(call, "roles", "") is None, f"{key} is public in the policy but asks for a login"
        else:
            assert getattr(call, "policy", None) is ROLES, f"{key} states its own roles instead of the policy's"


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
    # A system's API key is admitted as its role, like a person (never admin: a key cannot be one).
    for role in (Role.customer, Role.technician, Role.finance):
        scope = {"organization_id": owner.org_id} if role is Role.customer else {}
        body = {"name": f"{role} system", "role": role, **scope}
        made = await client.post("/api/v1/api-keys", json=body, headers=callers[Role.admin])
        callers[f"key:{role}"] = {"Authorization": f"Bearer {made.json()['key']}"}
    spare = await client.post(
        "/api/v1/api-keys", json={"name": "to revoke", "role": "finance"}, headers=callers["admin"]
    )
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
        "series_id": 1,
        "entry_id": 1,
        "registration_id": 1,
        "notification_id": 1,
        "payment_id": 1,
        "statement_id": 1,
        "row_id": 1,
        "key_id": spare.json()["id"],
        "webhook_id": 1,
    }
    wrong = []
    for (method, path), allowed in ROLES.items():
        if allowed is PUBLIC or is_page(path):
            continue
        url = path.format(**values)
        for caller, headers in callers.items():
            body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
            r = await client.request(method, url, headers=headers, **body)
            if caller == "anonymous":
                expected_ok = r.status_code == 401
            elif Role(caller.removeprefix("key:")) in allowed:
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


PAGE_VALUES = {
    "booking_id": 1,
    "invoice_id": 1,
    "device_id": "cnc-01",
    "organization_id": 1,
    "user_id": 1,
    "device_class": "cnc",
    "day": "2027-03-10",
    "entry_id": 1,
    "action": "withdraw",
    "notification_id": 1,
    "registration_id": 1,
    "chart": "energy",
    "key_id": 1,
    "webhook_id": 1,
    "statement_id": 1,
    "row_id": 1,
}


async def test_every_page_as_every_role(center):
    """Pages take the session cookie; a visitor without one is sent to log in (303), a role outside the line
    gets 403, and a form post carries its CSRF token, so only the role decides."""
    client, pool = center
    callers = {"anonymous": {}}
    for role in Role:
        token = (await as_role(pool, client, role))["Authorization"].removeprefix("Bearer ")
        callers[role] = {"fabhub_session": token}
    wrong = []
    for (method, path), allowed in ROLES.items():
        if allowed is PUBLIC or not is_page(path):
            continue
        for caller, cookies in callers.items():
            client.cookies.clear()
            client.cookies.update(cookies)
            form = {"data": {"csrf": await form_token(client)}} if method == "POST" else {}
            url = path.format(**PAGE_VALUES)
            async with client.stream(method, url, **form) as r:
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
    assert (await client.get("/api/v1/bookings", params=window, headers=other.headers)).json()["items"] == []
    sneaky = {**window, "organization_id": owner.org_id}
    assert (await client.get("/api/v1/bookings", params=sneaky, headers=other.headers)).json()["items"] == []
    mine = (await client.get("/api/v1/bookings", params=window, headers=owner.headers)).json()["items"]
    assert [b["id"] for b in mine] == [booking["id"]]
    # A customer cannot book for someone else, not even a colleague of another organization.
    r = await client.post(
        "/api/v1/bookings", json=slot(2, 9, 10, device_id="cnc-01", user_id=owner.user_id), headers=other.headers
    )
    assert r.status_code == 403
    # And the booking is still there, untouched.
    r = await client.get(f"/api/v1/bookings/{booking['id']}", headers=owner.headers)
    assert r.json()["status"] == "confirmed"


# -- what a customer sees inside the answers ---------------------------------------------------------------
#
# Tuesday 2 March 2027: organization A has cnc-01 from 10:00 to 12:00, B from 12:00 to 14:00, and A has
# cnc-02 from 14:00 to 16:00. cnc-01 reports from 09:00 to 15:00, including a sample exactly at 12:00 (B's)
# and one a microsecond before (A's). The clock stands at 15:00.

DAY = 1
TICK = timedelta(microseconds=1)
C = Role.customer
# Routes with machine data or money in their answers; the customer-readable ones each have a check below.
PRIVATE = ("/api/v1/telemetry", "/api/v1/devices", "/api/v1/oee", "/api/v1/utilisation", "/api/v1/downtime")
PRIVATE += ("/api/v1/losses", "/api/v1/usage", "/api/v1/invoices", "/api/v1/subsidy-report")


def t(hour: float, minutes: float = 0) -> datetime:
    return local(DAY, hour) + timedelta(minutes=minutes)


SPINDLE = [Sample(t(9, 10 * i), "cnc-01", "spindle_speed", 10.0 * i) for i in range(37)]  # value: minutes since 9
SPINDLE.append(Sample(t(12) - TICK, "cnc-01", "spindle_speed", 179.5))
PROGRAMS = [
    (t(9, 55), "CENTER-WARMUP"),
    (t(10), "A-BRACKET"),
    (t(11, 30), "A-FLANGE"),
    (t(12), "B-SECRET-GEAR"),
    (t(14) - TICK, "B-LAST"),
    (t(14), "AFTER-B"),
]
STATES = [(t(9), "idle"), (t(10, 5), "running"), (t(11, 50), "idle"), (t(12), "running"), (t(13, 30), "idle")]
STATES.append((t(14, 30), "down"))
CNC_02 = [
    Sample(t(13), "cnc-02", "state", "idle"),
    Sample(t(13, 50), "cnc-02", "program", "CENTER-TEST"),  # before A's slot there: not A's to read
    Sample(t(14, 10), "cnc-02", "spindle_speed", 1410.0),
]
WINDOW = {"from": t(9).isoformat(), "to": t(15).isoformat()}
DAY_WINDOW = {"from": t(0).isoformat(), "to": t(24).isoformat(), "device": "cnc-01", "group": "total"}


@dataclass
class Tenants:
    client: object
    pool: object
    clock: Clock
    a: Customer
    b: Customer
    staff: dict[str, str]
    bookings: dict[str, int]

    async def get(self, who: dict[str, str], path: str, status: int = 200, **params) -> object:
        r = await self.client.get(path, params=params, headers=who)
        assert r.status_code == status, (path, r.status_code, r.text[:300])
        if not r.headers.get("content-type", "").startswith("application/json"):
            return r
        body = r.json()
        # A page's rows: who sees what is the question here, paging has tests of its own.
        return body["items"] if isinstance(body, dict) and "next_cursor" in body else body

    async def log_in_again(self) -> None:
        """After the clock moved past the tokens' lifetime."""
        self.a.headers = await login(self.client, self.a.email)
        self.b.headers = await login(self.client, self.b.email)
        self.staff = await as_role(self.pool, self.client, Role.technician)


@pytest.fixture
async def tenants(db_url, pool, mosquitto):
    clock = Clock(NOW)
    async with serve(
        db_url, mqtt_url=mosquitto.url, clock=clock, run_gateway=True, access_token_minutes=24 * 60
    ) as client:
        a, b = await customer(pool, client), await customer(pool, client)
        bookings = {}
        for name, who, device, start, end in (
            ("a", a, "cnc-01", 10, 12),
            ("b", b, "cnc-01", 12, 14),
            ("a2", a, "cnc-02", 14, 16),
        ):
            r = await client.post("/api/v1/bookings", json=slot(DAY, start, end, device_id=device), headers=who.headers)
            assert r.status_code == 201, r.text
            bookings[name] = r.json()["id"]
        samples = [*SPINDLE, *CNC_02]
        samples += [Sample(at, "cnc-01", "program", text) for at, text in PROGRAMS]
        samples += [Sample(at, "cnc-01", "state", state) for at, state in STATES]
        assert (await BatchWriter(pool, clock=fixed_clock(t(16))).write_batch(samples)).quarantined == 0
        clock.now = t(15)
        tenants = Tenants(client, pool, clock, a, b, {}, bookings)
        await tenants.log_in_again()
        yield tenants


def times(rows: list[dict], key: str = "time") -> list[datetime]:
    return [datetime.fromisoformat(r[key]) for r in rows]


def spans(rows: list[dict]) -> list[tuple[str, datetime, datetime]]:
    return [(r["state"], datetime.fromisoformat(r["start"]), datetime.fromisoformat(r["end"])) for r in rows]


async def latest(z: Tenants) -> None:
    """At 15:00 nobody holds cnc-01 and A holds cnc-02 since 14:00: every state for everyone, A the values of
    cnc-02 taken since 14:00, B nothing."""
    path = "/api/v1/telemetry/latest"
    staff, mine, theirs = [await z.get(who, path) for who in (z.staff, z.a.headers, z.b.headers)]

    def values(body: dict) -> set[tuple]:
        return {(r["device_id"], r["signal"], r["value"]) for r in body["numeric"] + body["text"]}

    assert {("cnc-01", "spindle_speed", 360.0), ("cnc-01", "program", "AFTER-B")} <= values(staff)
    assert {("cnc-02", "spindle_speed", 1410.0), ("cnc-02", "program", "CENTER-TEST")} <= values(staff)
    assert values(mine) == {("cnc-02", "spindle_speed", 1410.0)}
    assert values(theirs) == set()
    for body in (mine, theirs):
        assert {s["device_id"] for s in body["states"]} == {s["device_id"] for s in staff["states"]}
    one = await z.get(z.a.headers, path, device="cnc-01")
    assert one["numeric"] == one["text"] == [] and [s["device_id"] for s in one["states"]] == ["cnc-01"]


async def signals(z: Tenants) -> None:
    """A device's signal names are the machine's, not a customer's."""
    path = "/api/v1/telemetry/devices/cnc-01/signals"
    staff = await z.get(z.staff, path)
    assert {s["signal"] for s in staff} >= {"spindle_speed", "program"}
    assert await z.get(z.a.headers, path) == await z.get(z.b.headers, path) == staff


async def signal_range(z: Tenants) -> None:
    """Raw samples, texts and buckets: each organization exactly its own slot; 12:00:00 is B's."""
    path = "/api/v1/telemetry/devices/cnc-01/signals/{}"
    a_times = [t(10, 10 * i) for i in range(12)] + [t(12) - TICK]
    b_times = [t(12, 10 * i) for i in range(12)]
    for who, expected in (
        (z.a.headers, a_times),
        (z.b.headers, b_times),
        (z.staff, [s.time for s in SPINDLE if s.time < t(15)]),
    ):
        body = await z.get(who, path.format("spindle_speed"), **WINDOW)
        assert sorted(times(body["points"])) == sorted(expected) and not body["truncated"]
    texts = {
        who: [p["value"] for p in (await z.get(h, path.format("program"), **WINDOW))["points"]]
        for who, h in (("a", z.a.headers), ("b", z.b.headers), ("staff", z.staff))
    }
    assert texts == {
        "a": ["A-BRACKET", "A-FLANGE"],
        "b": ["B-SECRET-GEAR", "B-LAST"],
        "staff": [text for _, text in PROGRAMS],
    }
    outside = await z.get(z.a.headers, path.format("program"), **{"from": t(12).isoformat(), "to": t(14).isoformat()})
    assert outside["points"] == [] and not outside["truncated"]
    hourly = {**WINDOW, "bucket": "1h"}

    def buckets(body: dict) -> list[tuple]:
        return [
            (datetime.fromisoformat(r["bucket"]), r["count"], r["min"], r["max"], r["last"]) for r in body["buckets"]
        ]

    assert buckets(await z.get(z.a.headers, path.format("spindle_speed"), **hourly)) == [
        (t(10), 6, 60.0, 110.0, 110.0),
        (t(11), 7, 120.0, 179.5, 179.5),
    ]
    assert buckets(await z.get(z.b.headers, path.format("spindle_speed"), **hourly)) == [
        (t(12), 6, 180.0, 230.0, 230.0),
        (t(13), 6, 240.0, 290.0, 290.0),
    ]
    assert len((await z.get(z.staff, path.format("spindle_speed"), **hourly))["buckets"]) == 6


async def states(z: Tenants) -> None:
    path = "/api/v1/telemetry/devices/cnc-01/states"
    assert spans(await z.get(z.a.headers, path, **WINDOW)) == [
        ("idle", t(10), t(10, 5)),
        ("running", t(10, 5), t(11, 50)),
        ("idle", t(11, 50), t(12)),
    ]
    assert spans(await z.get(z.b.headers, path, **WINDOW)) == [
        ("running", t(12), t(13, 30)),
        ("idle", t(13, 30), t(14)),
    ]
    assert spans(await z.get(z.staff, path, **WINDOW)) == [
        ("idle", t(9), t(10, 5)),
        ("running", t(10, 5), t(11, 50)),
        ("idle", t(11, 50), t(12)),
        ("running", t(12), t(13, 30)),
        ("idle", t(13, 30), t(14, 30)),
        ("down", t(14, 30), t(15)),
    ]


STAFF_ONLY = ("last_sample", "samples", "quarantined", "reconnects", "last_error", "errors")


async def devices(z: Tenants) -> None:
    """Connection and state of every device for everyone; traffic, errors and the spool for staff."""
    staff = await z.get(z.staff, "/api/v1/devices")
    assert isinstance(staff["spool_depth"], int) and all(isinstance(d["samples"], int) for d in staff["devices"])
    for who in (z.a.headers, z.b.headers):
        body = await z.get(who, "/api/v1/devices")
        assert [d["device_id"] for d in body["devices"]] == [d["device_id"] for d in staff["devices"]]
        assert body["spool_depth"] is body["spool_dropped"] is body["writer_pending"] is None
        for device in body["devices"]:
            assert device["connection"] and all(device[k] is None for k in STAFF_ONLY), device


async def one_device(z: Tenants) -> None:
    staff = await z.get(z.staff, "/api/v1/devices/cnc-01")
    mine = await z.get(z.a.headers, "/api/v1/devices/cnc-01")
    assert isinstance(staff["samples"], int) and all(mine[k] is None for k in STAFF_ONLY)
    assert {k: mine[k] for k in ("device_id", "connection", "state")} == {
        k: staff[k] for k in ("device_id", "connection", "state")
    }


async def oee(z: Tenants) -> None:
    """A customer's OEE is its own bookings' time: A ran 10:05-11:50, B 12:00-13:30."""

    def running(body: list[dict]) -> float:
        [row] = body
        return row["running_s"]

    assert running(await z.get(z.a.headers, "/api/v1/oee", **DAY_WINDOW)) == 105 * 60
    assert running(await z.get(z.b.headers, "/api/v1/oee", **DAY_WINDOW)) == 90 * 60
    assert running(await z.get(z.staff, "/api/v1/oee", **DAY_WINDOW)) == 195 * 60
    await z.get(z.a.headers, "/api/v1/oee", 404, **DAY_WINDOW, organization_id=z.b.org_id)


async def utilisation(z: Tenants) -> None:
    [row] = await z.get(z.a.headers, "/api/v1/utilisation", **DAY_WINDOW)
    assert (row["booked_s"], row["running_s"]) == (7200, 105 * 60)
    await z.get(z.a.headers, "/api/v1/utilisation", 404, **DAY_WINDOW, organization_id=z.b.org_id)


async def booking_oee(z: Tenants) -> None:
    [mine] = await z.get(z.a.headers, f"/api/v1/oee/bookings/{z.bookings['a']}")
    assert mine["running_s"] == 105 * 60
    await z.get(z.a.headers, f"/api/v1/oee/bookings/{z.bookings['b']}", 404)


async def downtime_codes(z: Tenants) -> None:
    """The reason codes are the center's list, the same for everyone."""
    assert await z.get(z.a.headers, "/api/v1/downtime/codes") == await z.get(z.staff, "/api/v1/downtime/codes")


MACHINES = {
    ("GET", "/api/v1/telemetry/latest"): latest,
    ("GET", "/api/v1/telemetry/devices/{device_id}/signals"): signals,
    ("GET", "/api/v1/telemetry/devices/{device_id}/signals/{signal}"): signal_range,
    ("GET", "/api/v1/telemetry/devices/{device_id}/states"): states,
    ("GET", "/api/v1/devices"): devices,
    ("GET", "/api/v1/devices/{device_id}"): one_device,
    ("GET", "/api/v1/oee"): oee,
    ("GET", "/api/v1/utilisation"): utilisation,
    ("GET", "/api/v1/oee/bookings/{booking_id}"): booking_oee,
    ("GET", "/api/v1/downtime/codes"): downtime_codes,
}


async def bill_b(z: Tenants) -> int:
    """March is over and B's booking completed: finance drafts and issues B's invoice."""
    async with z.pool.connection() as conn:
        await conn.execute(
            "UPDATE booking SET status = 'completed', finished_at = upper(during) WHERE id = ANY(%s)",
            [[z.bookings["a"], z.bookings["b"], z.bookings["a2"]]],
        )
    z.clock.now = datetime(2027, 4, 2, 9, 0, tzinfo=NOW.tzinfo)
    await z.log_in_again()
    finance = await as_role(z.pool, z.client, Role.finance)
    r = await z.client.post(
        "/api/v1/invoices/drafts", json={"month": "2027-03", "organization_id": z.b.org_id}, headers=finance
    )
    assert r.status_code == 200, r.text
    [invoice_id] = r.json()["invoices"]
    r = await z.client.post(f"/api/v1/invoices/{invoice_id}/issue", headers=finance)
    assert r.status_code == 200, r.text
    return invoice_id


async def invoices(z: Tenants, invoice_id: int) -> None:
    assert [i["id"] for i in await z.get(z.b.headers, "/api/v1/invoices")] == [invoice_id]
    assert await z.get(z.a.headers, "/api/v1/invoices") == []
    await z.get(z.a.headers, "/api/v1/invoices", 404, organization_id=z.b.org_id)


async def one_invoice(z: Tenants, invoice_id: int) -> None:
    await z.get(z.b.headers, f"/api/v1/invoices/{invoice_id}")
    await z.get(z.a.headers, f"/api/v1/invoices/{invoice_id}", 404)


async def invoice_pdf(z: Tenants, invoice_id: int) -> None:
    await z.get(z.b.headers, f"/api/v1/invoices/{invoice_id}.pdf")
    await z.get(z.a.headers, f"/api/v1/invoices/{invoice_id}.pdf", 404)


async def invoice_lines(z: Tenants, invoice_id: int) -> None:
    await z.get(z.b.headers, f"/api/v1/invoices/{invoice_id}/lines.csv")
    await z.get(z.a.headers, f"/api/v1/invoices/{invoice_id}/lines.csv", 404)


async def invoice_payments(z: Tenants, invoice_id: int) -> None:
    await z.get(z.b.headers, f"/api/v1/invoices/{invoice_id}/payments")
    await z.get(z.a.headers, f"/api/v1/invoices/{invoice_id}/payments", 404)


async def usage(z: Tenants, invoice_id: int) -> None:
    """B's measured usage is its slot's: 90 minutes running, none of A's."""
    rows = await z.get(z.b.headers, "/api/v1/usage", month="2027-03")
    assert [(u["booking_id"], u["running_s"]) for u in rows] == [(z.bookings["b"], 90 * 60)]
    assert await z.get(z.a.headers, "/api/v1/usage", month="2027-03") == []
    await z.get(z.a.headers, "/api/v1/usage", 404, month="2027-03", organization_id=z.b.org_id)


MONEY = {
    ("GET", "/api/v1/invoices"): invoices,
    ("GET", "/api/v1/invoices/{invoice_id}"): one_invoice,
    ("GET", "/api/v1/invoices/{invoice_id}.pdf"): invoice_pdf,
    ("GET", "/api/v1/invoices/{invoice_id}/lines.{fmt}"): invoice_lines,
    ("GET", "/api/v1/invoices/{invoice_id}/payments"): invoice_payments,
    ("GET", "/api/v1/usage"): usage,
}


async def test_customers_see_machine_data_only_in_their_own_bookings(tenants):
    """Every route with machine data or money in its answer that a customer may call (the policy's lines) is
    called as A, as B and as staff; a new such route fails here until it has its check."""
    readable = {key for key, roles in ROLES.items() if roles and C in roles and key[1].startswith(PRIVATE)}
    assert readable == set(MACHINES) | set(MONEY), "give the new route a privacy check here"
    for check in MACHINES.values():
        await check(tenants)
    invoice_id = await bill_b(tenants)
    for check in MONEY.values():
        await check(tenants, invoice_id)


async def test_a_no_shows_slot_booked_again_is_the_new_bookers(db_url, pool):
    """A does not come; B books the rest of A's slot and runs the machine: A's OEE and telemetry hold none of
    B's time (a no-show frees its slot, so it holds no telemetry either)."""
    clock = Clock(NOW)
    async with serve(db_url, clock=clock, access_token_minutes=24 * 60) as client:
        a, b = await customer(pool, client), await customer(pool, client)
        r = await client.post("/api/v1/bookings", json=slot(DAY, 10, 12, device_id="cnc-01"), headers=a.headers)
        mine = r.json()["id"]
        async with pool.connection() as conn:
            await conn.execute("UPDATE booking SET status = 'no_show', fee = 0 WHERE id = %s", [mine])
        r = await client.post("/api/v1/bookings", json=slot(DAY, 10.5, 12, device_id="cnc-01"), headers=b.headers)
        assert r.status_code == 201, r.text
        states = [Sample(t(10), "cnc-01", "state", "running"), Sample(t(12), "cnc-01", "state", "idle")]
        await BatchWriter(pool, clock=fixed_clock(t(16))).write_batch(
            [*states, Sample(t(11), "cnc-01", "program", "B-SECRET")]
        )
        clock.now = t(13)
        a.headers = await login(client, a.email)
        [row] = (await client.get(f"/api/v1/oee/bookings/{mine}", headers=a.headers)).json()
        assert row["running_s"] == 30 * 60  # 10:00-10:30, before B's booking
        [row] = (await client.get("/api/v1/oee", params=DAY_WINDOW, headers=a.headers)).json()
        assert row["running_s"] == 30 * 60
        r = await client.get("/api/v1/telemetry/devices/cnc-01/signals/program", params=WINDOW, headers=a.headers)
        assert r.json()["points"] == []
