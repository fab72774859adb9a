"""Exports read back: invoice lines and the month's usage as CSV (csv module) and XLSX (openpyxl, and the raw
sheet XML for exact decimals), the PDF invoice's text extracted with pypdf (Chinese names included), and the
subsidy report per program and month with credit notes netted and the cap used year to date."""

import csv
import io
import re
import zipfile
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from accounts.model import Role
from common.errors import NotFound
from oee import exports
from tests.accounts_rig import make_org, make_user
from tests.test_invoices import MARCH, ZONE, book, center, finance, month_of, setup, t

CENTER = center().center.name  # 靖江市产业创新基地公共实训中心, from devices.yaml
PROGRAM = "jingjiang-sme"
FEBRUARY = date(2027, 2, 1)
JINGGONG = "靖江精工机械有限公司"
ZHIZAO = "江苏智造科技有限公司"


async def org_named(pool, name, programs=(PROGRAM,)):
    org_id = await make_org(pool, name=name, programs=programs)
    return org_id, await make_user(pool, Role.customer, org_id)


async def uscc_of(pool, org_id):
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT uscc FROM organization WHERE id = %s", (org_id,))
        return (await cur.fetchone())[0]


async def a_billed_quarter(pool):
    """精工: a February booking (issued, subsidy 90.00) and the month of test_invoices in March (615.00, subsidy
    240.00); 智造: one March booking on cnc-02, 3 h booked basis (540.00, subsidy 270.00). Nothing issued yet
    in March."""
    invoicing = await setup(pool, center())
    clerk = await finance(pool)
    jinggong, zhizao = await org_named(pool, JINGGONG), await org_named(pool, ZHIZAO)
    feb = datetime(2027, 2, 15, 9, tzinfo=ZONE)
    await book(pool, *jinggong, "cnc-01", feb, feb + timedelta(hours=1), "completed", "180.00")
    async with pool.connection() as conn:
        february = await invoicing.draft(conn, jinggong[0], FEBRUARY, "tests")
        await invoicing.issue(conn, february, clerk)  # FH2027-000001
    await month_of(pool, jinggong)
    await book(pool, *zhizao, "cnc-02", t(9, 9), t(9, 12), "completed", "540.00")
    async with pool.connection() as conn:
        drafts = {
            "jinggong": await invoicing.draft(conn, jinggong[0], MARCH, "tests"),
            "zhizao": await invoicing.draft(conn, zhizao[0], MARCH, "tests"),
        }
    return invoicing, clerk, jinggong[0], zhizao[0], drafts


def read_csv(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM: Excel then reads UTF-8
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def read_xlsx(data: bytes, first_column: str):
    """The table under the heading lines: its header row found by the first column's title."""
    ws = load_workbook(io.BytesIO(data)).active
    rows = list(ws.iter_rows())
    start = next(i for i, row in enumerate(rows) if row[0].value == first_column)
    header = [c.value for c in rows[start]]
    return ws, [dict(zip(header, row, strict=True)) for row in rows[start + 1 :]]


def sheet_xml(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return z.read("xl/worksheets/sheet1.xml").decode()


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF-")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


async def test_invoice_lines_as_csv_and_xlsx(pool):
    invoicing, clerk, jinggong, _, drafts = await a_billed_quarter(pool)
    code = await uscc_of(pool, jinggong)
    async with pool.connection() as conn:
        draft_csv = await exports.invoice_lines_csv(conn, drafts["jinggong"], "en")
        await invoicing.issue(conn, drafts["jinggong"], clerk)
        issued_csv = await exports.invoice_lines_csv(conn, drafts["jinggong"], "en")
        issued_xlsx = await exports.invoice_lines_xlsx(conn, drafts["jinggong"], "en")
        with pytest.raises(NotFound):
            await exports.invoice_lines_csv(conn, 999_999, "en")

    assert {row["invoice"] for row in read_csv(draft_csv)} == {"DRAFT"}
    rows = read_csv(issued_csv)
    assert [(r["line"], r["kind"], r["quantity"], r["unit price (CNY)"], r["amount (CNY)"]) for r in rows] == [
        ("1", "usage", "2.0000", "180.00", "360.00"),
        ("2", "subsidy", "1.0000", "-180.00", "-180.00"),
        ("3", "usage", "1.0000", "120.00", "120.00"),
        ("4", "subsidy", "1.0000", "-60.00", "-60.00"),
        ("5", "no_show", "1.0000", "360.00", "360.00"),
        ("6", "late_cancellation", "1.0000", "15.00", "15.00"),
    ]
    assert {(r["invoice"], r["customer"], r["credit code"]) for r in rows} == {("FH2027-000002", JINGGONG, code)}
    assert "2027-03-02 09:00–11:00" in rows[0]["description"]
    assert rows[1]["description"].startswith("靖江市中小企业共享制造补贴")
    assert sum(Decimal(r["amount (CNY)"]) for r in rows) == Decimal("615.00")

    ws, xrows = read_xlsx(issued_xlsx, "invoice")
    assert JINGGONG in ws["A1"].value and "FH2027-000002" in ws["A1"].value
    assert [r["kind"].value for r in xrows] == [r["kind"] for r in rows]
    assert [r["customer"].value for r in xrows] == [JINGGONG] * 6
    for cell in (r["amount (CNY)"] for r in xrows):
        assert cell.data_type == "n" and cell.number_format == "0.00"
    assert [Decimal(str(r["amount (CNY)"].value)) for r in xrows] == [Decimal(r["amount (CNY)"]) for r in rows]
    # The sheet's XML holds the exact digits the database had (column L: the amounts).
    written = re.findall(r'<c r="L\d+"[^>]*><v>([^<]*)</v>', sheet_xml(issued_xlsx))
    assert [Decimal(v) for v in written] == [Decimal(r["amount (CNY)"]) for r in rows]


async def test_text_that_looks_like_a_formula_stays_text(pool):
    invoicing = await setup(pool, center())
    org = await org_named(pool, '=HYPERLINK("http://example.com","点这里")')
    await book(pool, *org, "cnc-01", t(2, 9), t(2, 10), "completed", "180.00")
    async with pool.connection() as conn:
        draft = await invoicing.draft(conn, org[0], MARCH, "tests")
        as_csv = await exports.invoice_lines_csv(conn, draft, "en")
        as_xlsx = await exports.invoice_lines_xlsx(conn, draft, "en")
    assert read_csv(as_csv)[0]["customer"] == '\'=HYPERLINK("http://example.com","点这里")'
    _, rows = read_xlsx(as_xlsx, "invoice")
    assert rows[0]["customer"].data_type == "s"
    assert rows[0]["customer"].value == '=HYPERLINK("http://example.com","点这里")'
    assert "<f>" not in sheet_xml(as_xlsx)


async def test_the_months_usage(pool):
    await a_billed_quarter(pool)
    async with pool.connection() as conn:
        as_csv = await exports.usage_csv(conn, MARCH, ZONE, "en")
        as_xlsx = await exports.usage_xlsx(conn, MARCH, ZONE, "en")
        february = await exports.usage_csv(conn, FEBRUARY, ZONE, "en")
        april = await exports.usage_csv(conn, date(2027, 4, 1), ZONE)
    start, end = "start (Asia/Shanghai)", "end (Asia/Shanghai)"
    rows = read_csv(as_csv)
    got = [
        (r["organization"], r["device"], r["status"], r[start], r[end], r["booked h"], r["running h"], r["setup h"],
         r["overrun h"], r["parts total"])
        for r in rows
    ]  # fmt: skip
    # The no-show and the late cancellation were not used, so they have no usage record.
    assert got == [
        (JINGGONG, got[0][1], "completed", "2027-03-02 09:00", "2027-03-02 11:00", "2.00", "2.00", "0.00", "0.25", "0"),
        (JINGGONG, got[1][1], "completed", "2027-03-03 09:00", "2027-03-03 11:00", "2.00", "0.50", "0.00", "0.00", "0"),
        (ZHIZAO, got[2][1], "completed", "2027-03-09 09:00", "2027-03-09 12:00", "3.00", "0.00", "0.00", "0.00", "0"),
    ]
    assert [r["class"] for r in rows] == ["cnc", "robot", "cnc"]
    # the robot's meter counted 3.5 kWh, all of it after the robot stopped running; cnc-01's meter was silent
    energy = [(r["energy kWh"], r["idle energy kWh"], r["CO2 kg"], r["grid factor kg CO2/kWh"]) for r in rows]
    assert energy[:2] == [("", "", "", ""), ("3.500", "3.500", "2.00", "0.5703")]  # 3.5 x 0.5703 = 1.996
    assert len(read_csv(february)) == 1 and read_csv(february)[0][start] == "2027-02-15 09:00"
    assert read_csv(april) == []

    ws, xrows = read_xlsx(as_xlsx, "booking")
    assert [r["organization"].value for r in xrows] == [JINGGONG, JINGGONG, ZHIZAO]
    first = xrows[0]
    assert first[start].value == datetime(2027, 3, 2, 9, 0) and first[start].number_format == "yyyy-mm-dd hh:mm"
    assert first["overrun h"].data_type == "n" and first["overrun h"].number_format == "0.00"
    assert Decimal(str(first["overrun h"].value)) == Decimal("0.25")
    assert "2027-03" in ws["A1"].value


async def test_pdf_invoice_renders_the_chinese_names(pool):
    invoicing, clerk, jinggong, _, drafts = await a_billed_quarter(pool)
    code = await uscc_of(pool, jinggong)
    async with pool.connection() as conn:
        draft_pdf = await exports.invoice_pdf(conn, drafts["jinggong"], CENTER, ZONE)
        await invoicing.issue(conn, drafts["jinggong"], clerk)
        issued_pdf = await exports.invoice_pdf(conn, drafts["jinggong"], CENTER, ZONE)
        note = await invoicing.credit(conn, drafts["jinggong"], clerk, "wrong rate on the robot")
        note_pdf = await exports.invoice_pdf(conn, note, CENTER, ZONE)

    draft = pdf_text(draft_pdf)
    for expected in (CENTER, JINGGONG, code, "DRAFT", "not issued", "2027-03", "靖江市中小企业共享制造补贴"):
        assert expected in draft, expected
    # 615.00 tax-inclusive, VAT 34.81 inside it (test_invoices works it out), 580.19 before VAT.
    for expected in ("615.00", "34.81", "580.19", "VAT 6 %", "include VAT", "-180.00", "360.00"):
        assert expected in draft, expected

    issued = pdf_text(issued_pdf)
    for expected in (CENTER, JINGGONG, code, "FH2027-000002", "2027-04-01", "615.00", "34.81", "580.19"):
        assert expected in issued, expected
    assert "DRAFT" not in issued

    credit = pdf_text(note_pdf)
    for expected in (CENTER, JINGGONG, "Credit note", "FH2027-000003", "FH2027-000002", "-615.00", "-34.81"):
        assert expected in credit, expected
    assert "wrong rate on the robot" in credit


async def test_pdf_without_the_font_fails_clearly(pool):
    _, _, _, _, drafts = await a_billed_quarter(pool)
    async with pool.connection() as conn:
        with pytest.raises(exports.FontMissing, match="fonts-wqy-zenhei"):
            await exports.invoice_pdf(conn, drafts["zhizao"], CENTER, ZONE, font=Path("/nonexistent/wqy-zenhei.ttc"))
        with pytest.raises(NotFound):
            await exports.invoice_pdf(conn, 999_999, CENTER, ZONE)


def report_rows(data: bytes) -> list[tuple[str, ...]]:
    return [tuple(row.values()) for row in read_csv(data)]


async def test_subsidy_report_per_program_and_month(pool):
    invoicing, clerk, jinggong, zhizao, drafts = await a_billed_quarter(pool)
    jg, zz = await uscc_of(pool, jinggong), await uscc_of(pool, zhizao)
    cap = "20000.00"

    async def report(program=PROGRAM, month=MARCH):
        async with pool.connection() as conn:
            return report_rows(await exports.subsidy_report(conn, program, month, ZONE, "en"))

    # Drafts are not reported: only the totals row, all zero.
    assert await report() == [("Total", "", "0", "0.00", "0.00", "", "0.00", "")]
    async with pool.connection() as conn:
        for draft in drafts.values():
            await invoicing.issue(conn, draft, clerk)
    # 精工: B1 360.00 and B2 120.00 at market value, half subsidized; February's 90.00 counts toward the cap.
    both = [
        (ZHIZAO, zz, "1", "540.00", "270.00", cap, "270.00", "19730.00"),
        (JINGGONG, jg, "2", "480.00", "240.00", cap, "330.00", "19670.00"),
        ("Total", "", "3", "1020.00", "510.00", "", "600.00", ""),
    ]
    assert sorted(await report()) == sorted(both)
    assert (await report())[-1][0] == "Total"
    async with pool.connection() as conn:
        xlsx = await exports.subsidy_report_xlsx(conn, PROGRAM, MARCH, ZONE, "en")
        alias = await exports.subsidy_report_csv(conn, PROGRAM, MARCH, ZONE, "en")
    assert report_rows(alias) == await report()
    ws, xrows = read_xlsx(xlsx, "customer")
    assert "靖江市中小企业共享制造补贴" in ws["A1"].value and "2027-03" in ws["A1"].value
    assert {r["customer"].value: Decimal(str(r["subsidy granted (CNY)"].value)) for r in xrows} == {
        ZHIZAO: Decimal("270.00"),
        JINGGONG: Decimal("240.00"),
        "Total": Decimal("510.00"),
    }
    assert all(r["market value (CNY)"].number_format == "0.00" for r in xrows)
    assert xrows[-1]["customer"].font.bold

    # February alone: 精工's one booking.
    assert await report(month=FEBRUARY) == [
        (JINGGONG, jg, "1", "180.00", "90.00", cap, "90.00", "19910.00"),
        ("Total", "", "1", "180.00", "90.00", "", "90.00", ""),
    ]
    # Another program had no bookings.
    assert await report(program="jiangsu-smart-manufacturing") == [("Total", "", "0", "0.00", "0.00", "", "0.00", "")]
    async with pool.connection() as conn:
        with pytest.raises(NotFound):
            await exports.subsidy_report(conn, "no-such-program", MARCH, ZONE, "en")

    # A credit note nets 精工's March out; the redraft is not issued yet, so its subsidy is not reported.
    async with pool.connection() as conn:
        await invoicing.credit(conn, drafts["jinggong"], clerk, "wrong rate")
        redraft = await invoicing.draft(conn, jinggong, MARCH, "tests")
    assert sorted(await report()) == sorted(
        [
            (ZHIZAO, zz, "1", "540.00", "270.00", cap, "270.00", "19730.00"),
            (JINGGONG, jg, "0", "0.00", "0.00", cap, "90.00", "19910.00"),
            ("Total", "", "1", "540.00", "270.00", "", "360.00", ""),
        ]
    )
    # Issued again: the month's figures are what they were, nothing counted twice.
    async with pool.connection() as conn:
        await invoicing.issue(conn, redraft, clerk)
    assert sorted(await report()) == sorted(both)
    # The report's subsidy equals the ledger of the month's issued documents.
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT sum(s.amount) FROM subsidy_ledger s JOIN invoice_line l ON l.id = s.invoice_line_id"
            " JOIN invoice i ON i.id = l.invoice_id WHERE i.month = %s AND i.status = 'issued'",
            (MARCH,),
        )
        assert (await cur.fetchone())[0] == Decimal("510.00")


async def test_the_sheets_are_chinese_unless_english_is_asked_for(pool):
    await a_billed_quarter(pool)
    async with pool.connection() as conn:
        drafts = await conn.execute("SELECT id FROM invoice WHERE status = 'draft' ORDER BY id")
        draft = (await drafts.fetchone())[0]
        lines = read_csv(await exports.invoice_lines_csv(conn, draft))
        usage = read_csv(await exports.usage_csv(conn, MARCH, ZONE))
        xlsx = await exports.usage_xlsx(conn, MARCH, ZONE)
    assert list(lines[0])[:3] == ["发票编号", "客户", "统一社会信用代码"]
    assert {line["发票编号"] for line in lines} == {"草稿"}
    assert [line["类别"] for line in lines][:2] == ["使用费", "补贴"]
    assert "开始（Asia/Shanghai）" in usage[0] and usage[0]["状态"] == "已完成"
    ws, _ = read_xlsx(xlsx, "预约编号")
    assert ws["A1"].value == "2027-03 各预约使用记录" and ws.title == "使用记录"
