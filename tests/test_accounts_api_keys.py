"""API keys for systems over HTTP: made by an admin and shown once, kept as a digest, used as a bearer with the
key's role and organization (a customer key refused on another organization's data), revoked, expired,
malformed, rate-limited, their last use recorded, and audited."""

import hashlib
import re
from datetime import timedelta

import pytest

from accounts.auth import expire_logins
from accounts.model import Role
from tests.accounts_rig import Clock, as_role, make_org
from tests.booking_rig import NOW, customer, slot
from tests.http import serve
from tests.test_web_admin import log_in, problems

KEYS = "/api/v1/api-keys"


@pytest.fixture
def clock():
    return Clock(NOW)


@pytest.fixture
async def api(db_url, clock):
    async with serve(db_url, clock=clock) as client:
        yield client


@pytest.fixture
async def admin(api, pool):
    return await as_role(pool, api, Role.admin)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def make_key(api, admin, **body) -> dict:
    r = await api.post(KEYS, json={"name": "ERP", "role": "finance", **body}, headers=admin)
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_key_is_shown_once_and_stored_as_a_digest(api, pool, admin):
    made = await make_key(api, admin, name="用友 U8")
    key = made["key"]
    assert key.startswith(f"fhk_{made['id']}_")
    secret = key.split("_", 2)[2]
    assert made["role"] == "finance" and made["organization_id"] is None and made["revoked_at"] is None
    listed = (await api.get(KEYS, headers=admin)).json()
    assert [k["id"] for k in listed["items"]] == [made["id"]]
    assert "key" not in listed["items"][0]
    assert secret not in str(listed)
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT k.*, u.* FROM api_key k JOIN app_user u ON u.id = k.user_id")
        row = await cur.fetchone()
    assert secret not in str(row)
    assert hashlib.sha256(secret.encode()).hexdigest() in row
    me = await api.get("/api/v1/me", headers=bearer(key))
    assert me.status_code == 200
    assert me.json() | {"id": 0} == {
        "id": 0,
        "email": f"api-key-{made['id']}@fabhub.invalid",
        "name": "用友 U8",
        "role": "finance",
        "organization_id": None,
    }


async def test_a_customer_key_reads_its_organization_and_is_refused_on_another(api, pool, admin, clock):
    ours, theirs = await customer(pool, api), await customer(pool, api)
    own = await api.post("/api/v1/bookings", json=slot(1, 9, 11, device_id="cnc-01"), headers=ours.headers)
    other = await api.post("/api/v1/bookings", json=slot(1, 9, 11, device_id="robot-01"), headers=theirs.headers)
    assert own.status_code == other.status_code == 201
    key = bearer((await make_key(api, admin, role="customer", organization_id=ours.org_id))["key"])

    window = {"from": slot(0, 0, 0)["start"], "to": slot(10, 0, 0)["start"]}
    listed = await api.get("/api/v1/bookings", params=window, headers=key)
    assert [b["id"] for b in listed.json()["items"]] == [own.json()["id"]]
    sneaky = await api.get("/api/v1/bookings", params={**window, "organization_id": theirs.org_id}, headers=key)
    assert sneaky.json()["items"] == []
    assert (await api.get(f"/api/v1/bookings/{own.json()['id']}", headers=key)).status_code == 200
    refused = await api.get(f"/api/v1/bookings/{other.json()['id']}", headers=key)
    assert refused.status_code == 404
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await api.get(f"/api/v1/organizations/{theirs.org_id}", headers=key)).status_code == 404
    assert (await api.get(f"/api/v1/organizations/{ours.org_id}", headers=key)).status_code == 200
    # A customer key administers nothing, not even keys.
    assert (await api.post(KEYS, json={"name": "x", "role": "finance"}, headers=key)).status_code == 403

    # The month is over and both organizations are invoiced: the key sees its own invoice only.
    async with pool.connection() as conn:
        await conn.execute("UPDATE booking SET status = 'completed', finished_at = upper(during)")
    clock.now = NOW + timedelta(days=32)
    finance = await as_role(pool, api, Role.finance)
    issued = {}
    for org in (ours.org_id, theirs.org_id):
        r = await api.post(
            "/api/v1/invoices/drafts", json={"month": "2027-03", "organization_id": org}, headers=finance
        )
        [issued[org]] = r.json()["invoices"]
        assert (await api.post(f"/api/v1/invoices/{issued[org]}/issue", headers=finance)).status_code == 200
    invoices = await api.get("/api/v1/invoices", headers=key)
    assert [i["id"] for i in invoices.json()["items"]] == [issued[ours.org_id]]
    assert (await api.get(f"/api/v1/invoices/{issued[ours.org_id]}", headers=key)).status_code == 200
    assert (await api.get(f"/api/v1/invoices/{issued[theirs.org_id]}", headers=key)).status_code == 404
    by_org = await api.get("/api/v1/invoices", params={"organization_id": theirs.org_id}, headers=key)
    assert by_org.status_code == 404


async def test_roles_and_scopes_a_key_may_have(api, pool, admin):
    org = await make_org(pool)
    cases = [
        {"role": "admin"},
        {"role": "customer"},
        {"role": "finance", "organization_id": org},
        {"role": "customer", "organization_id": 2**62},
        {"role": "finance", "expires_at": (NOW - timedelta(minutes=1)).isoformat()},
        {"role": "finance", "name": " "},
    ]
    for case in cases:
        r = await api.post(KEYS, json={"name": "ERP", **case}, headers=admin)
        assert r.status_code == 422, (case, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    staff = await as_role(pool, api, Role.finance)
    assert (await api.post(KEYS, json={"name": "ERP", "role": "finance"}, headers=staff)).status_code == 403
    assert (await api.get(KEYS, headers=staff)).status_code == 403


async def test_revoked_expired_and_malformed_keys_are_401_with_a_reason(api, admin, clock):
    revoked = await make_key(api, admin)
    r = await api.post(f"{KEYS}/{revoked['id']}/revoke", headers=admin)
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    assert (await api.post(f"{KEYS}/{revoked['id']}/revoke", headers=admin)).json() == r.json()
    assert (await api.post(f"{KEYS}/{2**62}/revoke", headers=admin)).status_code == 404
    expiring = await make_key(api, admin, expires_at=(NOW + timedelta(hours=1)).isoformat())
    assert (await api.get("/api/v1/me", headers=bearer(expiring["key"]))).status_code == 200
    clock.advance(hours=1)
    secret = revoked["key"].split("_", 2)[2]
    cases = {
        revoked["key"]: "this API key was revoked",
        expiring["key"]: "this API key has expired",
        f"fhk_{revoked['id']}_{'A' * 43}": "unknown API key",
        f"fhk_{2**40}_{secret}": "unknown API key",
        "fhk_": "malformed API key: it reads fhk_<id>_<secret>",
        f"fhk_0_{secret}": "malformed API key: it reads fhk_<id>_<secret>",
        f"fhk_{'9' * 30}_{secret}": "malformed API key: it reads fhk_<id>_<secret>",
        f"fhk_1_{secret}%00": "malformed API key: it reads fhk_<id>_<secret>",
    }
    for key, reason in cases.items():
        r = await api.get("/api/v1/me", headers=bearer(key))
        assert r.status_code == 401, key
        assert r.json()["detail"] == reason
        assert r.headers["WWW-Authenticate"] == "Bearer"


async def test_a_key_is_rate_limited_per_minute(db_url, pool, clock):
    async with serve(db_url, clock=clock, api_key_rate_per_min=5) as api:
        admin = await as_role(pool, api, Role.admin)
        key = bearer((await make_key(api, admin))["key"])
        for _ in range(5):
            assert (await api.get("/api/v1/me", headers=key)).status_code == 200
        limited = await api.get("/api/v1/me", headers=key)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert limited.headers["content-type"] == "application/problem+json"
        # Another key has its own count.
        assert (await api.get("/api/v1/me", headers=bearer((await make_key(api, admin))["key"]))).status_code == 200
        clock.advance(minutes=1)
        assert (await api.get("/api/v1/me", headers=key)).status_code == 200


async def test_last_use_is_recorded_at_most_once_a_minute(api, admin, clock):
    made = await make_key(api, admin)

    async def last_used():
        [listed] = [k for k in (await api.get(KEYS, headers=admin)).json()["items"] if k["id"] == made["id"]]
        return listed["last_used_at"]

    assert await last_used() is None
    await api.get("/api/v1/me", headers=bearer(made["key"]))
    first = await last_used()
    assert first is not None
    clock.advance(seconds=30)
    await api.get("/api/v1/me", headers=bearer(made["key"]))
    assert await last_used() == first
    clock.advance(seconds=31)
    await api.get("/api/v1/me", headers=bearer(made["key"]))
    assert await last_used() != first


async def test_creating_and_revoking_keys_is_audited(api, admin):
    made = await make_key(api, admin, name="MES")
    await api.post(f"{KEYS}/{made['id']}/revoke", headers=admin)
    r = await api.get("/api/v1/audit", params={"entity": "api_key", "entity_id": str(made["id"])}, headers=admin)
    entries = r.json()["items"]
    assert [e["action"] for e in entries] == ["revoke", "create"]
    assert entries[1]["after"]["name"] == "MES"
    assert made["key"].split("_", 2)[2] not in r.text
    assert entries[0]["before"]["revoked_at"] is None and entries[0]["after"]["revoked_at"] is not None


async def test_openapi_documents_the_key_as_a_bearer(api):
    spec = (await api.get("/openapi.json")).json()
    [scheme] = spec["components"]["securitySchemes"].values()
    assert "fhk_<id>_<secret>" in scheme["description"]
    create = spec["paths"][KEYS]["post"]
    assert create["summary"] == "Create an API key (shown once)"


async def test_the_admin_page_makes_shows_once_and_revokes_a_key(api, pool, clock):
    org = await make_org(pool, name="泰州智造有限公司")
    csrf = await log_in(api, pool, Role.admin, "keys-admin@center.example")
    refused = await api.post("/admin/api-keys", data={"csrf": csrf, "name": "ERP", "role": "customer"})
    assert refused.status_code == 422
    assert problems(refused.text) == ["客户须属于一个单位：请选择其单位。"]
    form = {"csrf": csrf, "name": "用友 ERP", "role": "customer", "organization_id": str(org), "expires_on": ""}
    made = await api.post("/admin/api-keys", data=form)
    assert made.status_code == 201
    key = re.search(r'<code data-test="key">(fhk_[^<]+)</code>', made.text).group(1)
    assert "请立即复制" in made.text
    assert (await api.get("/api/v1/me", headers=bearer(key))).json()["organization_id"] == org
    listed = await api.get("/admin/api-keys")
    assert "用友 ERP" in listed.text and "泰州智造有限公司" in listed.text and "最近使用" in listed.text
    assert key not in listed.text and key.split("_", 2)[2] not in listed.text
    key_id = key.split("_")[1]
    revoked = await api.post(f"/admin/api-keys/{key_id}/revoke", data={"csrf": csrf})
    assert revoked.status_code == 303 and revoked.headers["location"] == "/admin/api-keys?revoked=1"
    assert "密钥已撤销" in (await api.get("/admin/api-keys?revoked=1")).text
    assert (await api.get("/api/v1/me", headers=bearer(key))).status_code == 401
    assert (await api.post("/admin/api-keys/99999/revoke", data={"csrf": csrf})).status_code == 404
    api.cookies.clear()


async def test_past_minutes_counts_are_removed_by_the_login_job(api, pool, admin, clock):
    key = bearer((await make_key(api, admin))["key"])
    await api.get("/api/v1/me", headers=key)
    async with pool.connection() as conn:
        assert (await expire_logins(conn, clock(), timedelta(minutes=15)))["api_key_windows"] == 0
        assert (await expire_logins(conn, clock() + timedelta(minutes=2), timedelta(minutes=15)))[
            "api_key_windows"
        ] == 1
