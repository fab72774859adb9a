"""Lists answer in pages over the real app: every row exactly once however the pages are cut, rows written
while a client pages never shift a page, `updated_since` finds the changes, and a cursor that is not the
list's own is a 422."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from accounts.model import Role
from tests.accounts_rig import as_role, make_org
from tests.booking_rig import NOW, customer, local, slot
from tests.http import serve


async def every_page(client: httpx.AsyncClient, path: str, headers: dict, **params) -> tuple[list[dict], set[int]]:
    """All items, following next_cursor; the totals each page stated."""
    items, totals, cursor = [], set(), None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        r = await client.get(path, params=query, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        assert set(page) == {"items", "total", "next_cursor"}
        items += page["items"]
        totals.add(page["total"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items, totals


async def test_organizations_page_by_name_each_once_and_new_rows_do_not_shift_pages(db_url, pool):
    names = [f"企业{i:02d}" for i in range(23)]
    for name in names:
        await make_org(pool, name)
    async with serve(db_url) as client:
        admin = await as_role(pool, client, Role.admin)
        first = (await client.get("/api/v1/organizations", params={"limit": 5}, headers=admin)).json()
        assert [o["name"] for o in first["items"]] == sorted(names)[:5] and first["total"] == 23
        # Written while the client pages: one sorting before the cursor, one after it.
        await make_org(pool, "企业00a")
        await make_org(pool, "企业99")
        rest, _ = await every_page(client, "/api/v1/organizations", admin, limit=5, cursor=first["next_cursor"])
        seen = [o["name"] for o in first["items"] + rest]
        assert seen == sorted(names)[:5] + sorted(names)[5:] + ["企业99"]
        everything, totals = await every_page(client, "/api/v1/organizations", admin, limit=7)
        assert totals == {25} and len({o["id"] for o in everything}) == 25


async def test_updated_since_finds_the_changed_rows_only(db_url, pool):
    ids = [await make_org(pool, f"公司{i}") for i in range(4)]
    async with serve(db_url) as client:
        admin = await as_role(pool, client, Role.admin)
        listed = (await client.get("/api/v1/organizations", headers=admin)).json()["items"]
        logged = (await client.get("/api/v1/audit", params={"limit": 1}, headers=admin)).json()["items"]
        stamps = [o["updated_at"] for o in listed] + [logged[0]["at"]]
        newest = max(datetime.fromisoformat(s) for s in stamps)
        r = await client.patch(f"/api/v1/organizations/{ids[2]}", json={"name": "公司二（改名）"}, headers=admin)
        assert r.status_code == 200
        since = (newest + timedelta(microseconds=1)).isoformat()
        changed = (await client.get("/api/v1/organizations", params={"updated_since": since}, headers=admin)).json()
        assert [o["id"] for o in changed["items"]] == [ids[2]] and changed["total"] == 1
        assert datetime.fromisoformat(changed["items"][0]["updated_at"]) > newest
        # The audit log's time is its sync column: the rename is there, nothing before it.
        audit = (await client.get("/api/v1/audit", params={"updated_since": since}, headers=admin)).json()
        assert [(e["entity"], e["entity_id"], e["action"]) for e in audit["items"]] == [
            ("organization", str(ids[2]), "update")
        ]


async def test_bookings_page_in_start_order_for_the_customer_only(db_url, pool):
    async with serve(db_url, clock=lambda: NOW) as client:
        mine = await customer(pool, client)
        other = await customer(pool, client)
        for day in (1, 2, 3, 4, 7, 8, 9):  # weekdays
            for who in (mine, other):
                r = await client.post(
                    "/api/v1/bookings",
                    json=slot(day, 9 if who is mine else 13, 11 if who is mine else 15, device_id="printer-01"),
                    headers=who.headers,
                )
                assert r.status_code == 201, r.text
        window = {"from": local(0, 0).isoformat(), "to": local(10, 0).isoformat(), "limit": 3}
        found, totals = await every_page(client, "/api/v1/bookings", mine.headers, **window)
        assert totals == {7}
        assert [b["start"] for b in found] == sorted(b["start"] for b in found)
        assert {b["organization_id"] for b in found} == {mine.org_id}


@pytest.mark.parametrize(
    "cursor",
    [
        "not-base64-json",
        base64.urlsafe_b64encode(b'["users",[5]]').decode().rstrip("="),  # another list's
        base64.urlsafe_b64encode(b'["organizations",[5, "x"]]').decode().rstrip("="),  # types swapped
        base64.urlsafe_b64encode(b'["organizations",["a"]]').decode().rstrip("="),  # too short
        base64.urlsafe_b64encode(json.dumps(["organizations", ["a", 2**70]]).encode()).decode(),
    ],
)
async def test_a_foreign_or_tampered_cursor_is_a_422_with_the_reason(db_url, pool, cursor):
    async with serve(db_url) as client:
        admin = await as_role(pool, client, Role.admin)
        r = await client.get("/api/v1/organizations", params={"cursor": cursor}, headers=admin)
        assert r.status_code == 422, r.text
        assert "cursor" in r.json()["detail"]


async def test_paging_parameters_are_checked(db_url, pool):
    async with serve(db_url) as client:
        admin = await as_role(pool, client, Role.admin)
        for params in ({"limit": 0}, {"limit": 501}, {"updated_since": "2026-12-04T10:00:00"}):
            r = await client.get("/api/v1/users", params=params, headers=admin)
            assert r.status_code == 422, (params, r.text)
        since = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
        r = await client.get("/api/v1/downtime", params={"updated_since": since}, headers=admin)
        assert r.status_code == 422 and "computed" in r.json()["detail"]
