"""Accounts over HTTP, part one: logging in, tokens, login limits, and organizations with their credit codes
and the customer's view of them."""

import asyncio
from datetime import UTC, datetime

import jwt
import pytest

from accounts.model import Role
from tests.accounts_rig import PASSWORD, Clock, as_role, login, make_org, make_user
from tests.http import SECRET, serve

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ORGS = "/api/v1/organizations"


@pytest.fixture
def clock():
    return Clock(T0)


@pytest.fixture
async def api(db_url, clock):
    async with serve(db_url, clock=clock, login_failures_per_address=8) as client:
        yield client


async def failed_login(api, email, password="wrong password!"):
    return await api.post("/api/v1/auth/token", data={"username": email, "password": password})


# -- login and tokens --------------------------------------------------------------------------------------


async def test_login_gives_a_jwt_that_names_the_user(api, pool):
    org = await make_org(pool)
    user_id = await make_user(pool, Role.customer, org, email="Li.Wei@Example.com")
    r = await api.post("/api/v1/auth/token", data={"username": "li.wei@example.com", "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["sub"] == str(user_id)
    assert claims["exp"] == int(T0.timestamp()) + 15 * 60
    me = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json() == {
        "id": user_id,
        "email": "li.wei@example.com",
        "name": "Test customer",
        "role": "customer",
        "organization_id": org,
    }


async def test_wrong_password_and_unknown_email_are_the_same_401(api, pool):
    await make_user(pool, Role.technician, email="tech@example.com")
    wrong = await failed_login(api, "tech@example.com")
    nobody = await failed_login(api, "nobody@example.com")
    assert wrong.status_code == nobody.status_code == 401
    assert (
        wrong.json()
        == nobody.json()
        == {
            "type": "urn:fabhub:problem:unauthorized",
            "title": "Not authenticated",
            "status": 401,
            "detail": "wrong email or password",
        }
    )
    assert wrong.headers["content-type"] == "application/problem+json"
    assert (await api.get("/api/v1/me")).status_code == 401


async def test_token_expires_by_the_app_clock(api, pool, clock):
    await make_user(pool, Role.finance, email="fin@example.com")
    headers = await login(api, "fin@example.com")
    clock.advance(minutes=14, seconds=59)
    assert (await api.get("/api/v1/me", headers=headers)).status_code == 200
    clock.advance(seconds=1)
    r = await api.get("/api/v1/me", headers=headers)
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]


async def test_a_token_signed_with_another_key_is_refused(api, pool):
    user_id = await make_user(pool, Role.admin)
    claims = {"sub": str(user_id), "iss": "fabhub", "iat": T0, "exp": datetime(2030, 1, 1, tzinfo=UTC)}
    forged = jwt.encode(claims, "another-key-that-is-also-long-enough-000", algorithm="HS256")
    assert (await api.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})).status_code == 401


async def test_sixth_failure_locks_the_account_even_with_the_right_password(api, pool, clock):
    await make_user(pool, Role.customer, email="a@example.com")
    await make_user(pool, Role.customer, email="b@example.com")
    for _ in range(5):
        assert (await failed_login(api, "a@example.com")).status_code == 401
    locked = await failed_login(api, "a@example.com", PASSWORD)
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= 15 * 60 + 1
    assert "this account" in locked.json()["detail"]
    # another account from the same address is not locked out by a's failures ...
    await login(api, "b@example.com")
    # ... until the address reaches its own limit (8 here): 5 failures of a plus 3 of b
    for _ in range(3):
        assert (await failed_login(api, "b@example.com")).status_code == 401
    refused = await failed_login(api, "b@example.com", PASSWORD)
    assert refused.status_code == 429
    assert "your address" in refused.json()["detail"]
    # the failures age out of the window
    clock.advance(minutes=15, seconds=1)
    await login(api, "a@example.com")


async def test_parallel_guesses_do_not_slip_past_the_limit(api, pool):
    await make_user(pool, Role.customer, email="d@example.com")
    answers = await asyncio.gather(*(failed_login(api, "d@example.com") for _ in range(20)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [401] * 5 + [429] * 15, codes


async def test_a_successful_login_clears_the_account_failures(api, pool):
    await make_user(pool, Role.customer, email="c@example.com")
    for _ in range(4):
        await failed_login(api, "c@example.com")
    await login(api, "c@example.com")
    for _ in range(4):
        assert (await failed_login(api, "c@example.com")).status_code == 401


async def test_deactivated_user_loses_access_at_once(api, pool):
    admin = await as_role(pool, api, Role.admin)
    user_id = await make_user(pool, Role.technician, email="leaver@example.com")
    headers = await login(api, "leaver@example.com")
    r = await api.patch(f"/api/v1/users/{user_id}", json={"active": False}, headers=admin)
    assert r.status_code == 200
    assert r.json()["active"] is False
    assert (await api.get("/api/v1/me", headers=headers)).status_code == 401
    assert (await failed_login(api, "leaver@example.com", PASSWORD)).status_code == 401


async def test_deactivated_organization_locks_its_customers_out(api, pool):
    admin = await as_role(pool, api, Role.admin)
    org = await make_org(pool)
    customer = await as_role(pool, api, Role.customer, org)
    assert (await api.patch(f"{ORGS}/{org}", json={"active": False}, headers=admin)).status_code == 200
    assert (await api.get("/api/v1/me", headers=customer)).status_code == 401
    assert (await api.patch(f"{ORGS}/{org}", json={"active": True}, headers=admin)).status_code == 200
    assert (await api.get("/api/v1/me", headers=customer)).status_code == 200


async def test_role_change_applies_to_the_existing_token(api, pool):
    admin = await as_role(pool, api, Role.admin)
    user_id = await make_user(pool, Role.technician, email="moving@example.com")
    headers = await login(api, "moving@example.com")
    assert (await api.get("/api/v1/audit", headers=headers)).status_code == 403
    r = await api.patch(f"/api/v1/users/{user_id}", json={"role": "finance"}, headers=admin)
    assert r.json()["role"] == "finance"
    assert (await api.get("/api/v1/me", headers=headers)).json()["role"] == "finance"
    assert (await api.get("/api/v1/audit", headers=headers)).status_code == 200
    assert (
        await api.put(f"/api/v1/users/{user_id}/qualifications/cnc", json={"expires_on": "2026-12-31"}, headers=headers)
    ).status_code == 403


async def test_change_own_password(api, pool, clock):
    await make_user(pool, Role.customer, email="pw@example.com")
    headers = await login(api, "pw@example.com")
    wrong = await api.post(
        "/api/v1/me/password",
        json={"current_password": "not it at all", "new_password": "n3w password"},
        headers=headers,
    )
    assert wrong.status_code == 400
    assert wrong.json()["detail"] == "current_password is wrong"
    weak = await api.post(
        "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "short"}, headers=headers
    )
    assert weak.status_code == 422
    assert "8 to 128 characters" in weak.text
    assert "short" not in weak.text
    clock.advance(seconds=1)  # tokens carry whole seconds: ones from the second of the change still count
    ok = await api.post(
        "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "n3w password"}, headers=headers
    )
    assert ok.status_code == 204
    assert (await failed_login(api, "pw@example.com", PASSWORD)).status_code == 401
    assert (await api.get("/api/v1/me", headers=headers)).status_code == 401  # tokens from before it are void
    await login(api, "pw@example.com", "n3w password")


async def test_guessing_the_current_password_counts_as_failed_logins(api, pool):
    await make_user(pool, Role.customer, email="stolen@example.com")
    headers = await login(api, "stolen@example.com")
    for _ in range(5):
        r = await api.post(
            "/api/v1/me/password",
            json={"current_password": "guess guess", "new_password": "taken over"},
            headers=headers,
        )
        assert r.status_code == 400
    r = await api.post(
        "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "taken over"}, headers=headers
    )
    assert r.status_code == 429
    assert "Retry-After" in r.headers


# -- organizations -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["91350100M000100Y43", "91110000600037341L", " 91350100m000100y43 "])
async def test_real_credit_codes_are_accepted(api, pool, code):
    admin = await as_role(pool, api, Role.admin)
    body = {"name": "福建测试有限公司", "uscc": code, "contact_email": "Boss@Example.com", "subsidy_programs": []}
    r = await api.post(ORGS, json=body, headers=admin)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["uscc"] == code.strip().upper()
    assert created["contact_email"] == "boss@example.com"
    assert (await api.get(f"{ORGS}/{created['id']}", headers=admin)).json() == created


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("91350100M000100Y44", "check character is 4, the first 17 characters give 3"),
        ("91350100M000100Y4", "has 18 characters, this one has 17"),
        ("91350100M000100Y433", "has 18 characters, this one has 19"),
        ("", "has 18 characters, this one has 0"),
        ("9135010OM000100Y43", "character(s) O cannot appear"),
        ("I1350100M000100Y43", "character(s) I cannot appear"),
        ("91350100S000100Y43", "character(s) S cannot appear"),
        ("91350100V000100Y43", "character(s) V cannot appear"),
        ("91350100Z000100Y43", "character(s) Z cannot appear"),
    ],
)
async def test_bad_credit_codes_get_422_with_the_reason(api, pool, code, reason):
    admin = await as_role(pool, api, Role.admin)
    r = await api.post(ORGS, json={"name": "坏代码公司", "uscc": code}, headers=admin)
    assert r.status_code == 422
    assert reason in r.json()["detail"]
    assert (await api.get(ORGS, headers=admin)).json()["items"] == []


async def test_duplicate_code_unknown_program_and_bad_fields(api, pool):
    admin = await as_role(pool, api, Role.admin)
    first = await api.post(
        ORGS, json={"name": "A", "uscc": "91350100M000100Y43", "subsidy_programs": ["jingjiang-sme"]}, headers=admin
    )
    assert first.json()["subsidy_programs"] == ["jingjiang-sme"]
    again = await api.post(ORGS, json={"name": "B", "uscc": "91350100m000100y43"}, headers=admin)
    assert again.status_code == 409
    assert "91350100M000100Y43" in again.json()["detail"]
    program = await api.post(
        ORGS, json={"name": "C", "uscc": "91110000600037341L", "subsidy_programs": ["free-money"]}, headers=admin
    )
    assert program.status_code == 422
    assert "free-money" in program.json()["detail"]
    for body, reason in [
        ({"name": "  ", "uscc": "91110000600037341L"}, "1 to 200 characters"),
        ({"name": "D", "uscc": "91110000600037341L", "contact_email": "not-an-email"}, "not an email address"),
        ({"name": "D", "uscc": "91110000600037341L", "colour": "red"}, "Extra inputs are not permitted"),
        ({"name": "D"}, "Field required"),
    ]:
        r = await api.post(ORGS, json=body, headers=admin)
        assert r.status_code == 422, body
        assert reason in r.text
    assert [o["name"] for o in (await api.get(ORGS, headers=admin)).json()["items"]] == ["A"]


async def test_only_admins_create_and_change_organizations(api, pool):
    org = await make_org(pool, name="Own")
    body = {"name": "X", "uscc": "91110000600037341L"}
    for role in (Role.customer, Role.technician, Role.finance):
        headers = await as_role(pool, api, role, org if role is Role.customer else None)
        assert (await api.post(ORGS, json=body, headers=headers)).status_code == 403
        assert (await api.patch(f"{ORGS}/{org}", json={"name": "Y"}, headers=headers)).status_code == 403
    assert (await api.post(ORGS, json=body)).status_code == 401
    admin = await as_role(pool, api, Role.admin)
    assert [o["name"] for o in (await api.get(ORGS, headers=admin)).json()["items"]] == ["Own"]


async def test_customers_see_only_their_own_organization(api, pool):
    mine = await make_org(pool, name="Mine")
    other = await make_org(pool, name="Other")
    customer = await as_role(pool, api, Role.customer, mine)
    listed = (await api.get(ORGS, headers=customer)).json()["items"]
    assert [o["id"] for o in listed] == [mine]
    assert (await api.get(f"{ORGS}/{mine}", headers=customer)).json()["name"] == "Mine"
    hidden = await api.get(f"{ORGS}/{other}", headers=customer)
    missing = await api.get(f"{ORGS}/{other + 1000}", headers=customer)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"] == f"no organization {other}"
    assert missing.json()["detail"] == f"no organization {other + 1000}"
    technician = await as_role(pool, api, Role.technician)
    assert {o["id"] for o in (await api.get(ORGS, headers=technician)).json()["items"]} == {mine, other}
    assert (await api.get(f"{ORGS}/{other}", headers=technician)).status_code == 200


async def test_patch_organization_is_partial_and_validated(api, pool):
    admin = await as_role(pool, api, Role.admin)
    org = await make_org(pool, name="Old name", uscc="91350100M000100Y43", programs=["jingjiang-sme"])
    await make_org(pool, name="Neighbour", uscc="91110000600037341L")
    r = await api.patch(f"{ORGS}/{org}", json={"name": "New name", "contact_phone": "0523-8888"}, headers=admin)
    assert r.status_code == 200
    body = r.json()
    assert (body["name"], body["contact_phone"], body["uscc"]) == ("New name", "0523-8888", "91350100M000100Y43")
    assert body["subsidy_programs"] == ["jingjiang-sme"]
    for patch, status, reason in [
        ({"uscc": "91110000600037341L"}, 409, "belongs to another organization"),
        ({"uscc": "91350100M000100Y44"}, 422, "check character"),
        ({"subsidy_programs": ["nope"]}, 422, "unknown subsidy program(s): nope"),
        ({"name": None}, 422, "name cannot be null"),
        ({"active": "maybe"}, 422, "valid boolean"),
    ]:
        r = await api.patch(f"{ORGS}/{org}", json=patch, headers=admin)
        assert r.status_code == status, patch
        assert reason in r.text
    assert (await api.get(f"{ORGS}/{org}", headers=admin)).json() == body
    assert (await api.patch(f"{ORGS}/{org + 99}", json={"name": "Z"}, headers=admin)).status_code == 404


@pytest.mark.parametrize("bad", ["0", "-1", "abc", str(2**63), "9" * 30])
async def test_bad_ids_are_422_not_500(api, pool, bad):
    admin = await as_role(pool, api, Role.admin)
    for path in (f"{ORGS}/{bad}", f"/api/v1/users/{bad}", f"/api/v1/users/{bad}/qualifications"):
        assert (await api.get(path, headers=admin)).status_code == 422, path


async def test_nul_and_control_characters_are_refused_not_a_500(api, pool):
    admin = await as_role(pool, api, Role.admin)
    user_id = await make_user(pool, Role.customer)
    code = "91350100M000100Y43"
    for method, path, kwargs, reason in [
        ("POST", ORGS, {"json": {"name": "A\u0000B", "uscc": code}}, "cannot contain control characters"),
        ("POST", ORGS, {"json": {"name": "A", "uscc": code, "contact_phone": "1\n2"}}, "control characters"),
        (
            "POST",
            ORGS,
            {"json": {"name": "A", "uscc": code, "subsidy_programs": ["x\u0000"]}},
            "unknown subsidy program",
        ),
        ("PATCH", f"/api/v1/users/{user_id}", {"json": {"email": "a\u0000@example.com"}}, "not an email address"),
        ("GET", "/api/v1/audit", {"params": {"entity_id": "1\u0000"}}, "should match pattern"),
        ("DELETE", f"/api/v1/users/{user_id}/qualifications/cnc%00", {}, "should match pattern"),
    ]:
        r = await api.request(method, path, headers=admin, **kwargs)
        assert r.status_code == 422, (path, r.text)
        assert reason in r.text
    r = await api.post("/api/v1/auth/token", data={"username": "a\u0000@example.com", "password": PASSWORD})
    assert r.status_code == 401


# -- the client's address behind proxies -------------------------------------------------------------------

TOKEN = "/api/v1/auth/token"


async def page_login(api, email, headers):
    """A login through the web page's form, with the CSRF token of the anonymous form."""
    import re

    form = (await api.get("/login")).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    data = {"csrf": csrf, "email": email, "password": "wrong password!"}
    return await api.post("/login", data=data, headers=headers)


async def test_a_spoofed_forwarded_for_does_not_escape_the_address_limit(db_url, pool):
    """No proxy is trusted (the default): X-Forwarded-For is the client's own word, and counts for nothing."""
    await make_user(pool, Role.customer, email="e@example.com")
    async with serve(db_url, login_failures_per_address=3, login_failures_per_account=100) as api:
        auth = await as_role(pool, api, Role.customer)  # nor the scheme it claims, for the URLs the app writes
        r = await api.post("/api/v1/calendar/feed", headers={**auth, "X-Forwarded-Proto": "https"})
        assert r.json()["url"].startswith("http://127.0.0.1:")
        for i in range(3):
            spoofed = {"X-Forwarded-For": f"203.0.113.{i}"}
            r = await api.post(TOKEN, data={"username": "e@example.com", "password": "nope!"}, headers=spoofed)
            assert r.status_code == 401
        for spoofed in ({"X-Forwarded-For": "198.51.100.7"}, {"X-Forwarded-For": "127.0.0.1, 10.0.0.1"}, {}):
            r = await api.post(TOKEN, data={"username": "e@example.com", "password": PASSWORD}, headers=spoofed)
            assert r.status_code == 429 and "your address" in r.json()["detail"], spoofed
        r = await page_login(api, "e@example.com", {"X-Forwarded-For": "198.51.100.8"})  # the same rule
        assert r.status_code == 429


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(db_url, pool):
    """The test client connects from 127.0.0.1: as a trusted proxy, its X-Forwarded-For names the client,
    the right-most entry that is not a trusted proxy itself; what the client wrote further left is ignored."""
    await make_user(pool, Role.customer, email="f@example.com")
    settings = {"login_failures_per_address": 3, "login_failures_per_account": 100}
    async with serve(db_url, trusted_proxies="127.0.0.1, 10.0.0.0/8", **settings) as api:
        client = {"X-Forwarded-For": "203.0.113.9"}
        for _ in range(3):
            r = await api.post(TOKEN, data={"username": "f@example.com", "password": "nope!"}, headers=client)
            assert r.status_code == 401
        # the client again, through a second proxy of ours, or claiming to be someone else further left
        for same in ("203.0.113.9, 10.1.2.3", "198.51.100.1, 203.0.113.9", "198.51.100.1,203.0.113.9, 10.0.0.7"):
            r = await api.post(
                TOKEN, data={"username": "f@example.com", "password": PASSWORD}, headers={"X-Forwarded-For": same}
            )
            assert r.status_code == 429 and "your address" in r.json()["detail"], same
        r = await page_login(api, "f@example.com", client)
        assert r.status_code == 429
        # another client behind the same proxy, and the proxy's own host, have their own counts
        for other in ({"X-Forwarded-For": "203.0.113.10"}, {}):
            r = await api.post(TOKEN, data={"username": "f@example.com", "password": PASSWORD}, headers=other)
            assert r.status_code == 200, other
        # the scheme the proxy saw, for the URLs the app writes
        auth = await as_role(pool, api, Role.customer)
        r = await api.post("/api/v1/calendar/feed", headers={**auth, "X-Forwarded-Proto": "https"})
        assert r.json()["url"].startswith("https://")


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.1", ["198.51.100.1"], "203.0.113.1"),  # not a proxy of ours: its header is ignored
        ("10.0.0.1", [], "10.0.0.1"),
        ("10.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.1", ["1.1.1.1, 198.51.100.1"], "198.51.100.1"),
        ("10.0.0.1", ["198.51.100.1, 10.0.0.2"], "198.51.100.1"),
        ("10.0.0.1", ["198.51.100.1", "10.0.0.2"], "198.51.100.1"),  # the header given twice
        ("10.0.0.1", ["10.0.0.3, 10.0.0.2"], "10.0.0.3"),  # proxies all the way: the farthest
        ("10.0.0.1", ["unknown, 10.0.0.2"], "10.0.0.2"),  # garbage where the client should be: the proxy
        ("10.0.0.1", ["198.51.100.1:4711"], "198.51.100.1"),
        ("10.0.0.1", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("::ffff:10.0.0.1", ["198.51.100.1"], "198.51.100.1"),  # IPv4 peer on a dual-stack socket
        (None, ["198.51.100.1"], None),
    ],
)
def test_client_address_rule(peer, forwarded, client):
    from common.proxies import client_address, parse_networks

    assert client_address(peer, forwarded, parse_networks("10.0.0.0/8")) == client


def test_trusted_proxies_setting_is_checked():
    from pydantic import ValidationError

    from fabhub.settings import Settings

    assert [str(n) for n in Settings(trusted_proxies="10.0.0.1, 192.168.0.0/16,::1").trusted_networks] == [
        "10.0.0.1/32",
        "192.168.0.0/16",
        "::1/128",
    ]
    assert Settings().trusted_networks == ()
    with pytest.raises(ValidationError, match=r"'proxy\.example' is not an IP address or network"):
        Settings(trusted_proxies="10.0.0.1, proxy.example")
