"""The e-invoice hand-off: a hand-made March with an invoice, its credit note and another customer's invoice,
exported in the batch-issue layout and read back with openpyxl cell by cell (tax per row summing to each
document's VAT, red rows naming the blue invoice); the tax platform's number recorded back over HTTP (422, 404,
409, audited, the issued invoice untouched)."""

import io
from decimal import Decimal

import pytest
import yaml
from openpyxl import load_workbook
from pypdf import PdfReader

from accounts.model import Role
from accounts.organizations import update_organization
from common.errors import Conflict
from fabhub.devices import DeviceFile
from oee import einvoice
from oee.einvoice import COLUMNS, TECHNICAL_SERVICE, TITLES, EInvoiceSettings, Item, tax_shares
from tests.accounts_rig import as_role, make_org, make_user
from tests.http import serve
from tests.test_exports import JINGGONG, ZHIZAO, uscc_of
from tests.test_invoices import MARCH, NOW, REPO, book, center, finance, month_of, setup, t

TAX_NUMBER = "25327000000012345678"
BUYER = ("江苏省靖江市经济开发区新港大道 8 号", "0523-84812345", "中国工商银行靖江支行", "1108020109000012345")
ROBOT = Item(
    name="工业机器人应用技术服务", code="3040105000000000000", short_name="现代服务", specification="UR10e", unit="小时"
)
SETTINGS = EInvoiceSettings(classes={"robot": ROBOT})


def test_tax_per_row_sums_to_the_vat_computed_once():
    amounts = [Decimal("360.00"), Decimal("-180.00"), Decimal("120.00"), Decimal("-60.00"), Decimal("360.00")]
    amounts.append(Decimal("15.00"))
    shares = tax_shares(amounts, Decimal("34.81"), Decimal("0.06"))
    assert shares == [Decimal(x) for x in ("20.38", "-10.19", "6.79", "-3.40", "20.38", "0.85")]
    assert tax_shares([], Decimal("0.00"), Decimal("0.06")) == []
    # Three rows of 0.10 have 0.0057 each (0.01 rounded), 0.02 in all; the total's VAT 0.30 -> 0.02 too.
    assert tax_shares([Decimal("0.10")] * 3, Decimal("0.02"), Decimal("0.06")) == [Decimal("0.01"), Decimal("0.01"), 0]


def test_settings_refuse_a_bad_code_and_a_class_without_unit():
    with pytest.raises(ValueError, match="pattern"):
        Item(name="x", code="304010500000000000", short_name="现代服务", unit="小时")  # 18 digits
    with pytest.raises(ValueError, match="unit"):
        EInvoiceSettings(classes={"robot": ROBOT.model_copy(update={"unit": ""})})
    devices = center()
    assert devices.einvoice.usage.code == TECHNICAL_SERVICE
    raw = yaml.safe_load((REPO / "devices.yaml").read_text())
    with pytest.raises(ValueError, match="unknown device class"):
        DeviceFile.model_validate({**raw, "einvoice": {"classes": {"lathe": ROBOT.model_dump()}}})


async def a_month_with_a_credit_note(pool):
    """精工's March (test_invoices' worked month, 615.00, VAT 34.81) issued as FH2027-000001 and cancelled by
    FH2027-000002; 智造's cnc-02 3 h (540.00 less 270.00 subsidy, VAT 15.28) issued as FH2027-000003."""
    invoicing = await setup(pool, center())
    clerk = await finance(pool)
    jinggong = await make_org(pool, name=JINGGONG, programs=("jingjiang-sme",))
    zhizao = await make_org(pool, name=ZHIZAO, programs=("jingjiang-sme",))
    await month_of(pool, (jinggong, await make_user(pool, Role.customer, jinggong)))
    await book(
        pool, zhizao, await make_user(pool, Role.customer, zhizao), "cnc-02", t(9, 9), t(9, 12), "completed", "540"
    )
    async with pool.connection() as conn:
        first = await invoicing.draft(conn, jinggong, MARCH, "tests")
        await invoicing.issue(conn, first, clerk)
        note = await invoicing.credit(conn, first, clerk, "robot rate was wrong")
        other = await invoicing.draft(conn, zhizao, MARCH, "tests")
        await invoicing.issue(conn, other, clerk)
        tax_data = dict(zip(("invoice_address", "invoice_phone", "bank_name", "bank_account"), BUYER, strict=True))
        await update_organization(conn, jinggong, {"taxpayer_type": "general", **tax_data}, at=NOW, actor="tests")
        cur = await conn.execute("SELECT description FROM invoice_line ORDER BY invoice_id, position")
        descriptions = [d for (d,) in await cur.fetchall()]
    return clerk, first, note, other, jinggong, zhizao, descriptions


def read(data: bytes) -> list[list]:
    ws = load_workbook(io.BytesIO(data)).active
    return [[c.value for c in row] for row in ws.iter_rows()]


def exact(row: list) -> list:
    """Numbers as Decimal from their written digits (openpyxl reads them as float or int)."""
    return [Decimal(str(v)) if isinstance(v, float | int) else v for v in row]


async def test_the_month_read_back_cell_by_cell(pool):
    clerk, first, _, _, jinggong, zhizao, descriptions = await a_month_with_a_credit_note(pool)
    async with pool.connection() as conn:
        before = read(await einvoice.month_xlsx(conn, MARCH, SETTINGS))
        await einvoice.record_tax_number(conn, first, TAX_NUMBER, clerk, NOW)
        rows = read(await einvoice.month_xlsx(conn, MARCH, SETTINGS))
    # Before the blue invoice's platform number is recorded, a red row names its FabHub number and says so.
    blue_number, note = before[7][TITLES.index("蓝字发票号码")], before[7][TITLES.index("备注")]
    assert blue_number == "FH2027-000001" and "未登记" in note and "FH2027-000001" in note

    assert rows[0] == [c.title for c in COLUMNS] == [
        "发票流水号", "发票类型", "是否含税", "购买方名称", "购买方纳税人识别号", "购买方地址", "购买方电话",
        "购买方开户银行", "购买方银行账号", "项目名称", "商品和服务税收分类编码",
        "商品服务简称", "规格型号", "单位", "数量", "单价", "金额", "税率", "税额", "发票行性质", "蓝字发票号码", "备注",
    ]  # fmt: skip
    j, z = await uscc_of(pool, jinggong), await uscc_of(pool, zhizao)
    usage = ("设备使用技术服务", TECHNICAL_SERVICE, "现代服务", None)
    robot = ("工业机器人应用技术服务", "3040105000000000000", "现代服务", "UR10e")
    fee = ("预约违约服务费", TECHNICAL_SERVICE, "现代服务", None)
    D = Decimal

    def row(number, buyer, code, item, unit, qty, price, amount, tax, kind, original, note):
        tax_data = BUYER if buyer == JINGGONG else (None,) * 4
        return [number, "普通发票", "是", buyer, code, *tax_data, *item, unit, qty, price, D(amount), D("0.06"), D(tax), kind,
                original, note]  # fmt: skip

    blue = [
        ("FH2027-000001", usage, "小时", D(2), D(180), "360.00", "20.38", "正常行"),
        ("FH2027-000001", usage, None, None, None, "-180.00", "-10.19", "折扣行"),
        ("FH2027-000001", robot, "小时", D(1), D(120), "120.00", "6.79", "正常行"),
        ("FH2027-000001", robot, None, None, None, "-60.00", "-3.40", "折扣行"),
        ("FH2027-000001", fee, "次", D(1), D(360), "360.00", "20.38", "正常行"),
        ("FH2027-000001", fee, "次", D(1), D(15), "15.00", "0.85", "正常行"),  # the rounding: 34.81 - 33.96
    ]
    expected = [row(n, JINGGONG, j, i, u, q, p, a, x, k, None, d) for (n, i, u, q, p, a, x, k), d in
                zip(blue, descriptions[:6], strict=True)]  # fmt: skip
    for (_, i, u, q, p, a, x, k), d in zip(blue, descriptions[6:12], strict=True):
        red_q = None if q is None else -q
        expected.append(row("FH2027-000002", JINGGONG, j, i, u, red_q, p, f"-{a}".replace("--", ""),
                            f"-{x}".replace("--", ""), k, TAX_NUMBER, d))  # fmt: skip
    expected += [
        row(
            "FH2027-000003", ZHIZAO, z, usage, "小时", D(3), D(180), "540.00", "30.57", "正常行", None, descriptions[12]
        ),
        row("FH2027-000003", ZHIZAO, z, usage, None, None, None, "-270.00", "-15.29", "折扣行", None, descriptions[13]),
    ]
    assert [exact(r) for r in rows[1:]] == expected
    # Each document's rows sum to its VAT: 34.81, -34.81 and 15.28 (270.00 x 0.06 / 1.06).
    for number, vat in (("FH2027-000001", "34.81"), ("FH2027-000002", "-34.81"), ("FH2027-000003", "15.28")):
        assert sum(exact(r)[TITLES.index("税额")] for r in rows[1:] if r[0] == number) == D(vat)
    assert descriptions[6].startswith("Credit: ")


async def test_tax_number_over_http(db_url, pool):
    _, first, note, _, jinggong, _, _ = await a_month_with_a_credit_note(pool)
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT to_jsonb(i) FROM invoice i WHERE id = %s", (first,))
        invoice_before = (await cur.fetchone())[0]
    async with serve(db_url, clock=lambda: NOW, access_token_minutes=600) as client:
        staff = await as_role(pool, client, Role.finance)
        owner = await as_role(pool, client, Role.customer, jinggong)
        put = f"/api/v1/invoices/{first}/tax-number"
        for bad in ("2532700000001234567", "2532700000001234567X", " "):
            r = await client.put(put, json={"number": bad}, headers=staff)
            assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), bad
        assert (await client.put(put, json={"number": TAX_NUMBER, "x": 1}, headers=staff)).status_code == 422
        assert (await client.put(put, json={"number": TAX_NUMBER}, headers=owner)).status_code == 403
        missing = await client.put("/api/v1/invoices/999999/tax-number", json={"number": TAX_NUMBER}, headers=staff)
        assert missing.status_code == 404

        r = await client.put(put, json={"number": TAX_NUMBER}, headers=staff)
        assert r.status_code == 200 and r.json()["tax_number"] == TAX_NUMBER, r.text
        corrected = TAX_NUMBER[:-1] + "9"
        assert (await client.put(put, json={"number": corrected}, headers=staff)).status_code == 200
        taken = await client.put(f"/api/v1/invoices/{note}/tax-number", json={"number": corrected}, headers=staff)
        assert taken.status_code == 409 and corrected in taken.json()["detail"]

        assert (await client.get(f"/api/v1/invoices/{first}", headers=owner)).json()["tax_number"] == corrected
        assert (await client.get(f"/api/v1/invoices/{note}", headers=staff)).json()["tax_number"] is None
        pdf = await client.get(f"/api/v1/invoices/{first}.pdf", headers=owner)
        text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
        assert "数电发票号码" in text and corrected in text
        audit = (await client.get("/api/v1/audit", params={"entity": "invoice"}, headers=await as_role(
            pool, client, Role.admin))).json()["items"]  # fmt: skip
        recorded = [e for e in audit if e["action"] == "record tax number"]
        assert [(e["before"], e["after"]) for e in recorded] == [
            ({"number": TAX_NUMBER}, {"number": corrected}),
            (None, {"number": TAX_NUMBER}),
        ]

        sheet = await client.get("/api/v1/einvoice.xlsx", params={"month": "2027-03"}, headers=staff)
        assert sheet.status_code == 200 and sheet.content[:2] == b"PK"
        assert "einvoice-2027-03.xlsx" in sheet.headers["content-disposition"]
        assert (
            await client.get("/api/v1/einvoice.xlsx", params={"month": "2027-03"}, headers=owner)
        ).status_code == 403
        assert (
            await client.get("/api/v1/einvoice.xlsx", params={"month": "2027-13"}, headers=staff)
        ).status_code == 422
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT to_jsonb(i) FROM invoice i WHERE id = %s", (first,))
        assert (await cur.fetchone())[0] == invoice_before  # the issued invoice itself never changed


async def test_a_draft_has_no_tax_number(pool):
    invoicing = await setup(pool, center())
    clerk = await finance(pool)
    org = await make_org(pool, programs=("jingjiang-sme",))
    await book(pool, org, await make_user(pool, Role.customer, org), "cnc-02", t(9, 9), t(9, 12), "completed", "540")
    async with pool.connection() as conn:
        draft = await invoicing.draft(conn, org, MARCH, "tests")
        with pytest.raises(Conflict, match="issue it first"):
            await einvoice.record_tax_number(conn, draft, TAX_NUMBER, clerk, NOW)


async def test_buyer_tax_data_validated_and_on_the_pdf(db_url, pool):
    invoicing = await setup(pool, center())
    clerk = await finance(pool)
    org = await make_org(pool, name=JINGGONG, programs=("jingjiang-sme",))
    await book(pool, org, await make_user(pool, Role.customer, org), "cnc-02", t(9, 9), t(9, 12), "completed", "540")
    async with pool.connection() as conn:
        invoice_id = await invoicing.draft(conn, org, MARCH, "tests")
        await invoicing.issue(conn, invoice_id, clerk)
    async with serve(db_url, clock=lambda: NOW, access_token_minutes=600) as client:
        admin = await as_role(pool, client, Role.admin)
        path = f"/api/v1/organizations/{org}"
        for bad, reason in (
            ({"invoice_phone": "0523-8481234x"}, "digits, dashes and spaces"),
            ({"bank_account": "622202"}, "8 to 32 digits"),
            ({"bank_account": "6222 0212 34AB"}, "8 to 32 digits"),
            ({"taxpayer_type": "一般纳税人"}, "taxpayer_type"),
            ({"invoice_address": "地" * 201}, "invoice_address"),
        ):
            r = await client.patch(path, json=bad, headers=admin)
            assert r.status_code == 422 and reason in r.text, (bad, r.text)
        changes = {
            "taxpayer_type": "general",
            "invoice_address": BUYER[0],
            "invoice_phone": BUYER[1],
            "bank_name": BUYER[2],
            "bank_account": "1108 0201 0900 0012 345",  # typed in groups: stored as digits
        }
        r = await client.patch(path, json=changes, headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["bank_account"] == BUYER[3] and r.json()["taxpayer_type"] == "general"
        owner = await as_role(pool, client, Role.customer, org)
        pdf = await client.get(f"/api/v1/invoices/{invoice_id}.pdf", headers=owner)
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages).replace("\n", "")
    for shown in ("一般纳税人", "0523-84812345", "中国工商银行靖江支行", BUYER[3], "新港大道"):
        assert shown in text, shown
