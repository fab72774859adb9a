"""Accounts over HTTP, part two: users, qualifications and the audit log, and who may do what with them."""

from datetime import UTC, datetime

import pytest

from accounts.model import Role
from tests.accounts_rig import PASSWORD, Clock, as_role, login, make_org, make_user
from tests.http import serve

# 23:00 on 2 March in the center's time zone (Asia/Shanghai), 15:00 UTC.
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
USERS = "/api/v1/users"


@pytest.fixture
def clock():
    return Clock(T0)


@pytest.fixture
async def api(db_url, clock):
    async with serve(db_url, clock=clock) as client:
        yield client


@pytest.fixture
async def admin(api, pool):
    return await as_role(pool, api, Role.admin)


def qualification_url(user_id, device_class="cnc"):
    return f"{USERS}/{user_id}/qualifications/{device_class}"


async def audit_of(api, headers, entity, entity_id):
    r = await api.get("/api/v1/audit", params={"entity": entity, "entity_id": str(entity_id)}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


# -- users -------------------------------------------------------------------------------------------------


async def test_admin_creates_customers_and_staff(api, pool, admin):
    org = await make_org(pool)
    r = await api.post(
        USERS,
        json={
            "email": " Wang.Fang@JJ-Machinery.cn ",
            "name": "王芳",
            "role": "customer",
            "organization_id": org,
            "password": "一二三四五六七八",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    user = r.json()
    assert {k: user[k] for k in ("email", "name", "role", "organization_id", "active")} == {
        "email": "wang.fang@jj-machinery.cn",
        "name": "王芳",
        "role": "customer",
        "organization_id": org,
        "active": True,
    }
    assert "password" not in r.text and "hash" not in r.text
    assert (await login(api, "WANG.FANG@jj-machinery.cn", "一二三四五六七八"))["Authorization"].startswith("Bearer ")
    tech = await api.post(
        USERS,
        json={"email": "t@example.com", "name": "Tech", "role": "technician", "password": PASSWORD},
        headers=admin,
    )
    assert tech.status_code == 201
    assert tech.json()["organization_id"] is None


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"organization_id": None}, 422, "a customer belongs to an organization"),
        ({"organization_id": 999_999}, 422, "organization 999999 does not exist"),
        ({"role": "finance"}, 422, "a finance works for the center and belongs to no organization"),
        ({"role": "boss", "organization_id": None}, 422, "Input should be"),
        ({"email": "Taken@Example.com"}, 409, "taken@example.com is in use"),
        ({"email": "no-at-sign.example.com"}, 422, "is not an email address"),
        ({"email": "a" * 250 + "@example.com"}, 422, "at most 254 characters"),
        ({"name": ""}, 422, "1 to 200 characters"),
        ({"password": "seven77"}, 422, "8 to 128 characters"),
        ({"password": " padded password "}, 422, "cannot start or end with spaces"),
        ({"organization_id": 0}, 422, "greater than 0"),
        ({"admin": True}, 422, "Extra inputs are not permitted"),
    ],
)
async def test_create_user_refusals(api, pool, admin, change, status, reason):
    org = await make_org(pool)
    await make_user(pool, Role.technician, email="taken@example.com")
    body = {"email": "new@example.com", "name": "New", "role": "customer", "organization_id": org, "password": PASSWORD}
    r = await api.post(USERS, json=body | change, headers=admin)
    assert r.status_code == status, r.text
    assert reason in r.text
    if "password" in change:
        assert change["password"] not in r.text
    emails = {u["email"] for u in (await api.get(USERS, headers=admin)).json()["items"]}
    assert "new@example.com" not in emails


async def test_who_may_see_and_manage_users(api, pool, admin):
    org_a, org_b = await make_org(pool), await make_org(pool)
    a1 = await make_user(pool, Role.customer, org_a, email="a1@example.com")
    a2 = await make_user(pool, Role.customer, org_a)
    b1 = await make_user(pool, Role.customer, org_b)
    customer = await login(api, "a1@example.com")
    # a customer sees itself only, and others look missing rather than forbidden
    assert (await api.get(f"{USERS}/{a1}", headers=customer)).json()["email"] == "a1@example.com"
    for other in (a2, b1, 999_999):
        r = await api.get(f"{USERS}/{other}", headers=customer)
        assert r.status_code == 404
        assert r.json()["detail"] == f"no user {other}" and r.json()["status"] == 404
    assert (await api.get(USERS, headers=customer)).status_code == 403
    body = {"email": "x@example.com", "name": "X", "role": "technician", "password": PASSWORD}
    for role in (Role.customer, Role.technician, Role.finance):
        headers = customer if role is Role.customer else await as_role(pool, api, role)
        assert (await api.post(USERS, json=body, headers=headers)).status_code == 403
        assert (await api.patch(f"{USERS}/{a2}", json={"name": "Y"}, headers=headers)).status_code == 403
    # staff list everyone, or one organization's people
    for role in (Role.technician, Role.finance):
        headers = await as_role(pool, api, role)
        assert (await api.get(f"{USERS}/{b1}", headers=headers)).status_code == 200
        listed = (await api.get(USERS, params={"organization_id": org_a}, headers=headers)).json()["items"]
        assert [u["id"] for u in listed] == [a1, a2]
    # the admin, three customers, and a technician and a finance user from each loop above
    assert (await api.get(USERS, headers=admin)).json()["total"] == 8


async def test_patch_user(api, pool, admin):
    org = await make_org(pool)
    user_id = await make_user(pool, Role.customer, org, email="old@example.com")
    r = await api.patch(f"{USERS}/{user_id}", json={"name": "新名字", "email": "New@Example.com"}, headers=admin)
    assert r.status_code == 200
    assert (r.json()["name"], r.json()["email"]) == ("新名字", "new@example.com")
    # to staff: the organization must go in the same request
    refused = await api.patch(f"{USERS}/{user_id}", json={"role": "technician"}, headers=admin)
    assert refused.status_code == 422
    promoted = await api.patch(
        f"{USERS}/{user_id}", json={"role": "technician", "organization_id": None}, headers=admin
    )
    assert (promoted.json()["role"], promoted.json()["organization_id"]) == ("technician", None)
    # a new password replaces the old one
    assert (
        await api.patch(f"{USERS}/{user_id}", json={"password": "brand new pass"}, headers=admin)
    ).status_code == 200
    await login(api, "new@example.com", "brand new pass")
    r = await api.post("/api/v1/auth/token", data={"username": "new@example.com", "password": PASSWORD})
    assert r.status_code == 401
    assert (await api.patch(f"{USERS}/{user_id}", json={"active": None}, headers=admin)).status_code == 422
    assert (await api.patch(f"{USERS}/999999", json={"name": "Z"}, headers=admin)).status_code == 404


async def test_an_admin_cannot_lock_itself_out(api, pool):
    admin_id = await make_user(pool, Role.admin, email="root@example.com")
    headers = await login(api, "root@example.com")
    for change in ({"active": False}, {"role": "finance"}):
        r = await api.patch(f"{USERS}/{admin_id}", json=change, headers=headers)
        assert r.status_code == 422
        assert "your own admin access" in r.json()["detail"]
    assert (await api.get("/api/v1/me", headers=headers)).json()["role"] == "admin"
    assert (await api.patch(f"{USERS}/{admin_id}", json={"name": "Root"}, headers=headers)).status_code == 200


# -- qualifications ----------------------------------------------------------------------------------------


async def test_technician_grants_and_the_customer_sees_it(api, pool):
    customer_id = await make_user(pool, Role.customer, email="op@example.com")
    tech_id = await make_user(pool, Role.technician, email="tech@example.com")
    tech = await login(api, "tech@example.com")
    r = await api.put(qualification_url(customer_id), json={"expires_on": "2026-09-30"}, headers=tech)
    assert r.status_code == 200, r.text
    granted = {
        "device_class": "cnc",
        "expires_on": "2026-09-30",
        "granted_by": tech_id,
        "granted_at": "2026-03-02T23:00:00+08:00",
        "expired": False,
    }
    assert r.json() == granted
    customer = await login(api, "op@example.com")
    assert (await api.get(f"{USERS}/{customer_id}/qualifications", headers=customer)).json() == [granted]
    # renewal replaces the expiry
    r = await api.put(qualification_url(customer_id), json={"expires_on": "2027-03-31"}, headers=tech)
    listed = (await api.get(f"{USERS}/{customer_id}/qualifications", headers=tech)).json()
    assert [(q["device_class"], q["expires_on"]) for q in listed] == [("cnc", "2027-03-31")]


async def test_customers_and_finance_may_not_grant(api, pool):
    customer_id = await make_user(pool, Role.customer, email="self@example.com")
    for headers in (await login(api, "self@example.com"), await as_role(pool, api, Role.finance)):
        r = await api.put(qualification_url(customer_id), json={"expires_on": "2026-12-31"}, headers=headers)
        assert r.status_code == 403
        assert "technician" in r.json()["detail"]
        r = await api.delete(qualification_url(customer_id), headers=headers)
        assert r.status_code == 403
    admin = await as_role(pool, api, Role.admin)
    assert (await api.get(f"{USERS}/{customer_id}/qualifications", headers=admin)).json() == []


async def test_grant_refusals(api, pool):
    tech = await as_role(pool, api, Role.technician)
    customer_id = await make_user(pool, Role.customer)
    for url, body, status, reason in [
        (qualification_url(customer_id, "lathe"), {"expires_on": "2026-12-31"}, 404, "unknown device class 'lathe'"),
        (qualification_url(999_999), {"expires_on": "2026-12-31"}, 404, "no user 999999"),
        (qualification_url(customer_id), {"expires_on": "2026-03-01"}, 422, "in the past: today is 2026-03-02"),
        (qualification_url(customer_id), {"expires_on": "next year"}, 422, "valid date"),
        (qualification_url(customer_id), {}, 422, "Field required"),
        (qualification_url(customer_id, "c" * 65), {"expires_on": "2026-12-31"}, 422, "should match pattern"),
    ]:
        r = await api.put(url, json=body, headers=tech)
        assert r.status_code == status, url
        assert reason in r.text
    assert (await api.get(f"{USERS}/{customer_id}/qualifications", headers=tech)).json() == []
    # granting on the last day is fine: a qualification holds through its expires_on day
    assert (await api.put(qualification_url(customer_id), json={"expires_on": "2026-03-02"}, headers=tech)).is_success


async def test_expired_follows_the_center_calendar(api, pool, clock):
    await make_user(pool, Role.technician, email="tech@example.com")
    tech = await login(api, "tech@example.com")
    customer_id = await make_user(pool, Role.customer)
    await api.put(qualification_url(customer_id, "robot"), json={"expires_on": "2026-03-02"}, headers=tech)
    await api.put(qualification_url(customer_id, "printer"), json={"expires_on": "2026-03-03"}, headers=tech)

    async def expired():
        headers = await login(api, "tech@example.com")  # the clock jumps past the token's expiry
        held = (await api.get(f"{USERS}/{customer_id}/qualifications", headers=headers)).json()
        return {q["device_class"]: q["expired"] for q in held}

    assert await expired() == {"printer": False, "robot": False}
    clock.advance(hours=1)  # 16:00 UTC is still 2 March in London but already 3 March at the center
    assert await expired() == {"printer": False, "robot": True}
    clock.advance(days=1)
    assert await expired() == {"printer": True, "robot": True}


async def test_revoke(api, pool):
    tech = await as_role(pool, api, Role.technician)
    customer_id = await make_user(pool, Role.customer)
    await api.put(qualification_url(customer_id), json={"expires_on": "2026-12-31"}, headers=tech)
    r = await api.delete(qualification_url(customer_id), params={"reason": "crashed the spindle"}, headers=tech)
    assert r.status_code == 204
    assert (await api.get(f"{USERS}/{customer_id}/qualifications", headers=tech)).json() == []
    again = await api.delete(qualification_url(customer_id), headers=tech)
    assert again.status_code == 404
    assert "holds no qualification for 'cnc'" in again.json()["detail"]


async def test_qualifications_of_others_look_missing_to_customers(api, pool):
    org = await make_org(pool)
    me = await make_user(pool, Role.customer, org, email="me@example.com")
    colleague = await make_user(pool, Role.customer, org)
    headers = await login(api, "me@example.com")
    assert (await api.get(f"{USERS}/{me}/qualifications", headers=headers)).status_code == 200
    r = await api.get(f"{USERS}/{colleague}/qualifications", headers=headers)
    assert r.status_code == 404
    assert r.json()["detail"] == f"no user {colleague}" and r.json()["status"] == 404


# -- audit -------------------------------------------------------------------------------------------------


async def test_organization_changes_are_audited(api, pool, admin):
    me = (await api.get("/api/v1/me", headers=admin)).json()
    r = await api.post(
        ORGS := "/api/v1/organizations", json={"name": "Before", "uscc": "91350100M000100Y43"}, headers=admin
    )
    org = r.json()["id"]
    await api.patch(f"{ORGS}/{org}", json={"name": "After"}, headers=admin)
    await api.patch(f"{ORGS}/{org}", json={"name": "After"}, headers=admin)  # no change, no entry
    update, create = await audit_of(api, admin, "organization", org)
    assert (create["action"], create["before"], create["after"]["name"]) == ("create", None, "Before")
    assert (update["action"], update["before"]["name"], update["after"]["name"]) == ("update", "Before", "After")
    assert (update["actor"], update["actor_id"]) == (me["email"], me["id"])
    assert update["at"] == "2026-03-02T23:00:00+08:00"  # 15:00 UTC, in the center's zone
    assert update["after"]["uscc"] == "91350100M000100Y43"


async def test_user_changes_are_audited_without_secrets(api, pool, admin):
    org = await make_org(pool)
    body = {
        "email": "a@example.com",
        "name": "A",
        "role": "customer",
        "organization_id": org,
        "password": "secret pass 1",
    }
    user_id = (await api.post(USERS, json=body, headers=admin)).json()["id"]
    await api.patch(f"{USERS}/{user_id}", json={"active": False, "password": "secret pass 2"}, headers=admin)
    entries = await audit_of(api, admin, "user", user_id)
    assert [e["action"] for e in entries] == ["update", "password", "create"]
    update, password, create = entries
    assert (update["before"]["active"], update["after"]["active"]) == (True, False)
    assert (password["before"], password["after"]) == (None, None)
    assert create["after"]["email"] == "a@example.com"
    everything = (await api.get("/api/v1/audit", headers=admin)).text
    assert "secret pass" not in everything
    assert "argon2" not in everything
    assert "password_hash" not in everything


async def test_qualification_changes_are_audited_under_the_user(api, pool):
    tech_id = await make_user(pool, Role.technician, email="tech@example.com")
    tech = await login(api, "tech@example.com")
    customer_id = await make_user(pool, Role.customer)
    await api.put(qualification_url(customer_id), json={"expires_on": "2026-06-30"}, headers=tech)
    await api.put(qualification_url(customer_id), json={"expires_on": "2026-12-31"}, headers=tech)
    await api.delete(qualification_url(customer_id), params={"reason": "left the company"}, headers=tech)
    finance = await as_role(pool, api, Role.finance)
    revoke, renew, grant = await audit_of(api, finance, "qualification", customer_id)
    assert (grant["action"], grant["before"], grant["after"]["expires_on"]) == ("grant", None, "2026-06-30")
    assert (renew["before"]["expires_on"], renew["after"]["expires_on"]) == ("2026-06-30", "2026-12-31")
    assert renew["after"]["granted_by"] == tech_id
    assert (revoke["action"], revoke["before"]["device_class"], revoke["after"]) == ("revoke", "cnc", None)
    assert revoke["reason"] == "left the company"
    assert {e["actor_id"] for e in (grant, renew, revoke)} == {tech_id}


async def test_audit_pages_and_roles(api, pool, admin):
    for i in range(5):
        await make_org(pool, name=f"Org {i}")
    first = (await api.get("/api/v1/audit", params={"entity": "organization", "limit": 2}, headers=admin)).json()
    assert [e["after"]["name"] for e in first["items"]] == ["Org 4", "Org 3"] and first["total"] == 5
    names = []
    cursor = first["next_cursor"]
    while cursor is not None:
        params = {"entity": "organization", "limit": 2, "cursor": cursor}
        page = (await api.get("/api/v1/audit", params=params, headers=admin)).json()
        names += [e["after"]["name"] for e in page["items"]]
        cursor = page["next_cursor"]
    assert names == ["Org 2", "Org 1", "Org 0"]
    for params in ({"limit": 0}, {"limit": 501}, {"cursor": "x"}, {"entity": "x" * 65}):
        assert (await api.get("/api/v1/audit", params=params, headers=admin)).status_code == 422
    for role in (Role.customer, Role.technician):
        assert (await api.get("/api/v1/audit", headers=await as_role(pool, api, role))).status_code == 403
