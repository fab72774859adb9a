"""A project or purchase-order reference: required per organization when it says so, kept on the booking and
carried to the invoice lines (description and their own column in the exports)."""

from __future__ import annotations

import csv
import io

from accounts.model import Role
from oee import exports
from tests.accounts_rig import as_role
from tests.booking_rig import NOW, customer, slot
from tests.http import serve
from tests.test_invoices import MARCH, book, center, setup, t
from tests.test_invoices import customer as invoice_customer


async def test_an_organization_that_requires_a_reference_gets_it_on_every_booking(db_url, pool):
    async with serve(db_url, clock=lambda: NOW) as client:
        c = await customer(pool, client)
        admin = await as_role(pool, client, Role.admin)
        r = await client.patch(f"/api/v1/organizations/{c.org_id}", json={"reference_required": True}, headers=admin)
        assert r.status_code == 200 and r.json()["reference_required"] is True
        r = await client.post("/api/v1/bookings", json=slot(1, 9, 10, device_id="cnc-01"), headers=c.headers)
        assert r.status_code == 422
        assert [p["rule"] for p in r.json()["problems"]] == ["reference"]
        body = slot(1, 9, 10, device_id="cnc-01", reference="PO-2027-0042")
        r = await client.post("/api/v1/bookings", json=body, headers=c.headers)
        assert r.status_code == 201, r.text
        assert r.json()["reference"] == "PO-2027-0042"
        for bad in ("", "x" * 101):
            r = await client.post("/api/v1/bookings", json={**body, "reference": bad}, headers=c.headers)
            assert r.status_code == 422


async def test_the_reference_reaches_the_invoice_lines_and_their_export(pool):
    invoicing = await setup(pool, center())
    org = await invoice_customer(pool)
    booking = await book(pool, *org, "cnc-01", t(4, 9), t(4, 11), "no_show", "360.00", fee="360.00")
    async with pool.connection() as conn:
        await conn.execute("UPDATE booking SET reference = 'PO-7' WHERE id = %s", (booking,))
        draft = await invoicing.draft(conn, org[0], MARCH, "tests")
        rows = list(
            csv.DictReader(io.StringIO((await exports.invoice_lines_csv(conn, draft, "en")).decode("utf-8-sig")))
        )
    [line] = rows
    assert line["reference"] == "PO-7" and line["description"].endswith("[PO-7]")
