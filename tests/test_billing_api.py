"""Invoices over HTTP: finance drafts, issues and credits; a customer sees only its organization's issued
invoices; money travels as decimal strings."""

import csv
import io

from accounts.model import Role
from tests.accounts_rig import as_role, login, make_user
from tests.http import serve
from tests.test_invoices import MARCH, NOW, center, customer, month_of, setup


async def test_draft_issue_and_read_as_each_role(db_url, pool):
    await setup(pool, center())
    org = await customer(pool)
    await month_of(pool, org)
    other = await customer(pool)
    async with serve(db_url, clock=lambda: NOW, access_token_minutes=600) as client:
        finance = await as_role(pool, client, Role.finance)
        email = "owner@example.com"
        await make_user(pool, Role.customer, org[0], email)
        owner = await login(client, email)
        stranger = await as_role(pool, client, Role.customer, other[0])

        r = await client.post("/api/v1/invoices/drafts", json={"month": "2027-05"}, headers=finance)
        assert r.status_code == 422 and "not over yet" in r.json()["detail"]
        r = await client.post("/api/v1/invoices/drafts", json={"month": MARCH.strftime("%Y-%m")}, headers=finance)
        assert r.status_code == 200, r.text
        [invoice_id] = r.json()["invoices"]
        assert (
            await client.post("/api/v1/invoices/drafts", json={"month": "2027-03"}, headers=owner)
        ).status_code == 403

        # A draft is the center's work in progress: the customer does not see it yet.
        assert (await client.get(f"/api/v1/invoices/{invoice_id}", headers=owner)).status_code == 404
        body = (await client.get(f"/api/v1/invoices/{invoice_id}", headers=finance)).json()
        assert body["status"] == "draft" and body["total"] == "615.00" and body["vat"] == "34.81"
        assert [line["amount"] for line in body["lines"]][:2] == ["360.00", "-180.00"]

        r = await client.post(f"/api/v1/invoices/{invoice_id}/issue", headers=finance)
        assert r.json() == {"id": invoice_id, "number": "FH2027-000001"}
        assert (await client.post(f"/api/v1/invoices/{invoice_id}/issue", headers=finance)).status_code == 409
        mine = await client.get("/api/v1/invoices", params={"month": "2027-03"}, headers=owner)
        assert [i["number"] for i in mine.json()["items"]] == ["FH2027-000001"]
        assert (await client.get(f"/api/v1/invoices/{invoice_id}", headers=stranger)).status_code == 404
        assert (await client.get("/api/v1/invoices", headers=stranger)).json()["items"] == []
        usage = (await client.get("/api/v1/usage", params={"month": "2027-03"}, headers=owner)).json()["items"]
        assert [u["running_s"] for u in usage] == [7200.0, 1800.0]
        assert (await client.get("/api/v1/usage", params={"month": "2027-03"}, headers=stranger)).json()["items"] == []

        r = await client.post(f"/api/v1/invoices/{invoice_id}/credit-note", json={"reason": "x"}, headers=finance)
        assert r.status_code == 422
        r = await client.post(
            f"/api/v1/invoices/{invoice_id}/credit-note", json={"reason": "robot rate was wrong"}, headers=finance
        )
        note = r.json()["credit_note"]
        credit = (await client.get(f"/api/v1/invoices/{note}", headers=owner)).json()
        assert credit["kind"] == "credit_note" and credit["total"] == "-615.00" and credit["number"] == "FH2027-000002"


async def test_exports_as_finance_and_as_the_customer(db_url, pool):
    await setup(pool, center())
    org = await customer(pool)
    await month_of(pool, org)
    async with serve(db_url, clock=lambda: NOW, access_token_minutes=600) as client:
        finance = await as_role(pool, client, Role.finance)
        email = "reader@example.com"
        await make_user(pool, Role.customer, org[0], email)
        owner = await login(client, email)
        [invoice_id] = (
            await client.post("/api/v1/invoices/drafts", json={"month": "2027-03"}, headers=finance)
        ).json()["invoices"]
        await client.post(f"/api/v1/invoices/{invoice_id}/issue", headers=finance)
        pdf = await client.get(f"/api/v1/invoices/{invoice_id}.pdf", headers=owner)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        lines = await client.get(f"/api/v1/invoices/{invoice_id}/lines.csv", headers=owner)
        assert lines.status_code == 200
        # Chinese unless English is asked for.
        amounts = [row["金额（元）"] for row in csv.DictReader(io.StringIO(lines.content.decode("utf-8-sig")))]
        assert amounts == ["360.00", "-180.00", "120.00", "-60.00", "360.00", "15.00"]
        xlsx = await client.get(f"/api/v1/invoices/{invoice_id}/lines.xlsx", headers=finance)
        assert xlsx.content[:2] == b"PK"
        assert (await client.get("/api/v1/usage.csv", params={"month": "2027-03"}, headers=owner)).status_code == 403
        usage = await client.get("/api/v1/usage.xlsx", params={"month": "2027-03"}, headers=finance)
        assert usage.status_code == 200 and usage.content[:2] == b"PK"
        report = await client.get(
            "/api/v1/subsidy-report.csv", params={"month": "2027-03", "program": "jingjiang-sme"}, headers=finance
        )
        assert report.status_code == 200 and "240.00" in report.text
        unknown = await client.get(
            "/api/v1/subsidy-report.csv", params={"month": "2027-03", "program": "nope"}, headers=finance
        )
        assert unknown.status_code == 404
