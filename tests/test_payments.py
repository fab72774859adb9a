"""Payments and receivables on a hand-made month: full, partial and reversed payments, the overpayment
refused, the status (overdue after the term), ageing buckets as of a day worked out by hand, the CSV, and a
bank statement (UTF-8 and GBK) with a matching, a partial and an unmatched row, reviewed by assigning and
dismissing; the same file twice records nothing twice; a bad file names its lines."""

import itertools
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from accounts.model import Role
from common.errors import Conflict
from oee.invoices import Invoicing
from oee.payments import Payments, payment_status
from oee.receivables import ageing, ageing_csv, totals
from tests.accounts_rig import as_role
from tests.http import serve
from tests.test_authorization import form_token
from tests.test_invoices import MARCH, NOW, book, center, customer, finance, setup, t

ZONE = ZoneInfo("Asia/Shanghai")
DAYS = itertools.count()


async def issued(pool, invoicing: Invoicing, clerk, when: datetime) -> tuple[int, str]:
    """A new customer's March, one no-show fee of 615.00 on a day of its own, drafted and issued at `when`."""
    org = await customer(pool)
    day = 10 + next(DAYS)
    await book(pool, *org, "cnc-02", t(day, 9), t(day, 11), "no_show", "360.00", subsidy=False, fee="615.00")
    at = Invoicing(invoicing.oee, invoicing.vat_rate, ZONE, lambda: when)
    async with pool.connection() as conn:
        invoice_id = await at.draft(conn, org[0], MARCH, "tests")
        assert invoice_id is not None
        return invoice_id, await at.issue(conn, invoice_id, clerk)


async def status(pool, invoice_id: int, today: date) -> str | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT kind, status, credited_by, total, issued_at FROM invoice WHERE id = %s", (invoice_id,)
        )
        kind, state, credited_by, total, issued_at = await cur.fetchone()
        paid = await Payments(ZONE, lambda: NOW).paid(conn, invoice_id)
    row = {"kind": kind, "status": state, "credited_by": credited_by, "total": total, "issued_at": issued_at}
    return payment_status(row, paid, today, 30, ZONE)


async def test_payments_status_and_ageing_by_hand(pool):
    invoicing = await setup(pool, center())
    clerk = await finance(pool)
    a, _ = await issued(pool, invoicing, clerk, NOW)  # issued 2027-04-01
    b, _ = await issued(pool, invoicing, clerk, datetime(2027, 5, 15, 10, tzinfo=ZONE))
    c, _ = await issued(pool, invoicing, clerk, datetime(2027, 6, 20, 10, tzinfo=ZONE))
    payments = Payments(ZONE, lambda: datetime(2027, 7, 1, tzinfo=ZONE))
    async with pool.connection() as conn:
        await payments.record(conn, a, Decimal("200.00"), date(2027, 4, 10), "bank_transfer", "FH2027-000001", clerk)
        wrong = await payments.record(conn, a, Decimal("100.00"), date(2027, 4, 11), "cash", "", clerk)
        await payments.reverse(conn, wrong, clerk, "recorded twice")
        with pytest.raises(Conflict, match="reversed already"):
            await payments.reverse(conn, wrong, clerk, "again")
        with pytest.raises(Conflict, match=r"open amount of 415\.00") as refused:
            await payments.record(conn, a, Decimal("415.01"), date(2027, 4, 12), "wechat", "", clerk)
        assert refused.value.extra == {"open_amount": "415.00"}
        await payments.record(conn, a, Decimal("15.00"), date(2027, 7, 10), "alipay", "after as_of", clerk)
        await payments.record(conn, b, Decimal("15.00"), date(2027, 5, 20), "wechat", "", clerk)
        await payments.record(conn, c, Decimal("615.00"), date(2027, 6, 30), "bank_transfer", "", clerk)
        cur = await conn.execute("SELECT action, entity, reason FROM audit_log WHERE entity = 'payment' ORDER BY id")
        assert [r[0] for r in await cur.fetchall()] == ["record", "record", "reverse", "record", "record", "record"]

    # Term 30 days: a is due 2027-05-01, overdue from 05-02; b not yet due on 05-20; c paid.
    assert await status(pool, a, date(2027, 5, 1)) == "partly_paid"
    assert await status(pool, a, date(2027, 5, 2)) == "overdue"
    assert await status(pool, b, date(2027, 5, 20)) == "partly_paid"
    assert await status(pool, c, date(2027, 7, 1)) == "paid"

    # As of 2027-07-05: a is 95 days old (open 615 - 200 = 415.00; the 07-10 payment not yet), b 51 days
    # (600.00), c paid. On 2027-06-19 c was not issued yet and a was 79 days old.
    async with pool.connection() as conn:
        rows = await ageing(conn, date(2027, 7, 5), ZONE)
        earlier = await ageing(conn, date(2027, 6, 19), ZONE)
    aged = [(r.days_0_30, r.days_31_60, r.days_61_90, r.days_over_90, r.total) for r in rows]
    zero = Decimal("0.00")
    assert aged == [
        (zero, zero, zero, Decimal("415.00"), Decimal("415.00")),
        (zero, Decimal("600.00"), zero, zero, Decimal("600.00")),
    ]
    assert totals(rows)["total"] == Decimal("1015.00")
    assert [(r.days_61_90, r.days_31_60) for r in earlier] == [(Decimal("415.00"), zero), (zero, Decimal("600.00"))]
    lines = ageing_csv(rows, date(2027, 7, 5)).decode("utf-8-sig").splitlines()
    assert lines[1] == "客户,发票数,0-30天,31-60天,61-90天,90天以上,合计"
    assert lines[-1] == "合计,2,0.00,600.00,0.00,415.00,1015.00"


STATEMENT = (
    "交易日期,金额,附言,付款人\r\n"
    "2027-04-05,615.00,货款 {a},靖江精工\r\n"  # matches a in full
    "2027/04/06,100.00,{b} 部分,泰州机械\r\n"  # matches b in part
    "2027-04-07,88.00,三月设备费,不明客户\r\n"  # names no invoice: for review
    "2027-04-08,900.00,{b},泰州机械\r\n"  # more than b's open amount: for review
)


async def test_bank_statement_import_and_review(db_url, pool):
    invoicing = await setup(pool, center())
    clerk = await finance(pool)
    a, number_a = await issued(pool, invoicing, clerk, NOW)
    b, number_b = await issued(pool, invoicing, clerk, NOW)
    c, _ = await issued(pool, invoicing, clerk, NOW)
    text = STATEMENT.format(a=number_a, b=number_b)
    async with serve(db_url, clock=lambda: NOW + timedelta(days=40), access_token_minutes=600) as client:
        money_desk = await as_role(pool, client, Role.finance)

        async def upload(data: bytes):
            files = {"file": ("statement.csv", data, "text/csv")}
            return await client.post("/api/v1/bank-statements", files=files, headers=money_desk)

        for encoding in ("gbk", "utf-8-sig"):
            r = await upload(text.encode(encoding))
            assert r.status_code == 201, r.text
            if encoding == "gbk":
                assert {k: v for k, v in r.json().items() if k != "id"} == {
                    "matched": 2, "unmatched": 2, "duplicates": 0
                }  # fmt: skip
                statement = r.json()["id"]
            else:  # the same rows again: nothing recorded twice
                assert {k: v for k, v in r.json().items() if k != "id"} == {
                    "matched": 0, "unmatched": 0, "duplicates": 4
                }  # fmt: skip

        rows = (await client.get(f"/api/v1/bank-statements/{statement}", headers=money_desk)).json()["items"]
        assert [(r["line"], r["status"], r["invoice_id"], r["payer"]) for r in rows] == [
            (2, "matched", a, "靖江精工"),
            (3, "matched", b, "泰州机械"),
            (4, "unmatched", None, "不明客户"),
            (5, "unmatched", None, "泰州机械"),
        ]
        paid_b = (await client.get(f"/api/v1/invoices/{b}/payments", headers=money_desk)).json()
        assert (paid_b["paid"], paid_b["open_amount"], paid_b["payment_status"]) == ("100.00", "515.00", "overdue")
        shown = (await client.get(f"/api/v1/invoices/{b}", headers=money_desk)).json()
        assert (shown["paid"], shown["open_amount"], shown["payment_status"]) == ("100.00", "515.00", "overdue")
        listed = (await client.get("/api/v1/invoices", headers=money_desk)).json()["items"]
        assert {i["id"]: i["payment_status"] for i in listed} == {a: "paid", b: "overdue", c: "overdue"}
        paid_a = (await client.get(f"/api/v1/invoices/{a}/payments", headers=money_desk)).json()
        assert (paid_a["open_amount"], paid_a["payment_status"]) == ("0.00", "paid")

        unknown, too_much = rows[2]["id"], rows[3]["id"]
        r = await client.post(
            f"/api/v1/bank-statements/rows/{too_much}/assign", json={"invoice_id": b}, headers=money_desk
        )
        assert r.status_code == 409 and r.json()["open_amount"] == "515.00"
        r = await client.post(
            f"/api/v1/bank-statements/rows/{unknown}/assign", json={"invoice_id": c}, headers=money_desk
        )
        assert r.status_code == 200, r.text
        r = await client.post(
            f"/api/v1/bank-statements/rows/{too_much}/dismiss", json={"reason": "客户多付，已退回"}, headers=money_desk
        )
        assert r.status_code == 200
        again = await client.post(
            f"/api/v1/bank-statements/rows/{too_much}/dismiss", json={"reason": "again"}, headers=money_desk
        )
        assert again.status_code == 409
        rows = (await client.get(f"/api/v1/bank-statements/{statement}", headers=money_desk)).json()["items"]
        assert [(r["status"], r["invoice_id"]) for r in rows][2:] == [("assigned", c), ("dismissed", None)]

        r = await client.get("/api/v1/receivables", params={"as_of": "2027-05-11"}, headers=money_desk)
        body = r.json()
        # b: 615 - 100 open, c: 615 - 88 open, both 40 days after issue; a is paid.
        assert [c["days_31_60"] for c in body["customers"]["items"]] == ["515.00", "527.00"]
        assert body["totals"]["total"] == "1042.00"
        csv_text = (
            await client.get("/api/v1/receivables.csv", params={"as_of": "2027-05-11"}, headers=money_desk)
        ).text
        assert csv_text.splitlines()[-1] == "合计,2,0.00,1042.00,0.00,0.00,1042.00"

        client.cookies.set("fabhub_session", money_desk["Authorization"].removeprefix("Bearer "))
        page = await client.get("/finance/receivables", params={"as_of": "2027-05-11"})
        assert page.status_code == 200 and "应收账款" in page.text and "¥1,042.00" in page.text
        csrf = await form_token(client)
        form = {"csrf": csrf, "amount": "15.00", "paid_on": "2027-05-10", "method": "cash", "reference": "收据 12"}
        r = await client.post(f"/finance/invoices/{b}/payments", data=form)
        assert r.status_code == 303
        shown = await client.get(r.headers["location"])
        assert (
            f"已记录付款 ¥15.00 到 {number_b}。" in shown.text and "收据 12" in shown.text and "¥500.00" in shown.text
        )
        r = await client.post(f"/finance/invoices/{b}/payments", data={**form, "amount": "500.01"})
        assert r.status_code == 409
        r = await client.post(f"/finance/invoices/{b}/payments", data={**form, "amount": "NaN"})
        assert r.status_code == 422 and "请填写大于 0 的金额" in r.text
        client.cookies.clear()

        bad = "date,amount,reference,payer\n2027-02-30,10.00,x,y\n2027-03-01,-5,x,y\n2027-03-01,1.005,x,y\n2027-03-02,5.00,x,y\n"
        r = await upload(bad.encode())
        assert r.status_code == 422
        problems = r.json()["problems"]
        assert [p.split(":")[0] for p in problems] == ["line 2", "line 3", "line 4"]
        r = await upload(b"when,amount\n2027-03-01,5\n")
        assert r.status_code == 422 and "line 1" in r.json()["detail"]
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM bank_row")
            assert (await cur.fetchone())[0] == 4  # the bad file imported nothing

        owner = await as_role(pool, client, Role.customer, None)
        assert (await client.get(f"/api/v1/invoices/{b}/payments", headers=owner)).status_code == 404
