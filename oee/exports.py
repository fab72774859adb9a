"""What finance sends out: invoice lines and the month's usage as CSV and XLSX, a PDF per invoice with the
center's and the customer's Chinese names, and the monthly subsidy report per program for the funding body.

Each function takes a connection and returns the file's bytes; the caller owns authorization. Money stays
Decimal from the database to the file: CSV cells are the decimal strings, XLSX cells numbers written from
Decimal (their XML holds the exact digits) with the number format 0.00. CSV is UTF-8 with a byte order mark,
so Excel opens the Chinese names correctly. Text that a spreadsheet would take for a formula stays text.
"""

from __future__ import annotations

import asyncio
import csv
import io
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from psycopg import AsyncConnection
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from accounts.tax_data import TAXPAYER_TYPES
from common.errors import NotFound
from common.rows import dict_rows
from oee.charges import money
from oee.invoices import first_of_month, next_month
from oee.sqlfiles import QUERIES

# Debian's fonts-wqy-zenhei (scripts/system-deps.sh installs it): a TrueType collection reportlab can embed.
CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
MONEY = "0.00"
HOURS = "0.00"
QUANTITY = "0.00##"
COUNT = "0"
WHEN = "yyyy-mm-dd hh:mm"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class FontMissing(RuntimeError):
    """The CJK font for PDFs is not installed: Chinese names would come out as empty boxes."""


# --- tables: one description, written as CSV or XLSX ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    number_format: str | None = None  # None: text
    width: int = 12


@dataclass(slots=True)
class Sheet:
    name: str
    heading: list[str]  # lines above the table, XLSX only (CSV stays one plain table)
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    total_row: bool = False  # the last row is a totals row (bold in XLSX)


def _text(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def csv_cell(value: Any) -> str:
    """A cell as CSV text; text a spreadsheet would take for a formula stays text."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, str):
        return _text(value)
    return str(value)


Lang = Literal["zh-CN", "en"]
# The sheets in Chinese (the default: finance hands them on to Chinese offices), English on request.
TITLES_ZH = {
    "invoice": "发票编号", "customer": "客户", "credit code": "统一社会信用代码", "line": "行号", "booking": "预约编号",
    "reference": "项目/采购单号", "kind": "类别", "description": "项目", "quantity": "数量", "unit": "单位",
    "unit price (CNY)": "单价（元）", "amount (CNY)": "金额（元）", "organization": "客户", "device": "设备",
    "class": "设备类别", "status": "状态", "start": "开始", "end": "结束", "booked h": "预约时长（小时）",
    "running h": "运行时长（小时）", "setup h": "调试时长（小时）", "overrun h": "超时时长（小时）",
    "offline h": "离线时长（小时）", "parts total": "产量", "parts good": "良品", "energy kWh": "电能（kWh）",
    "idle energy kWh": "非运行电能（kWh）", "CO2 kg": "二氧化碳排放（kg）",
    "grid factor kg CO2/kWh": "电网排放因子（kg CO2/kWh）",
    "bookings": "预约数", "market value (CNY)": "市场价（元）", "subsidy granted (CNY)": "补贴金额（元）",
    "annual cap (CNY)": "年度上限（元）", "cap used year to date (CNY)": "本年已用额度（元）",
    "cap left (CNY)": "剩余额度（元）", "Lines": "明细", "Usage": "使用记录", "Subsidy": "补贴报表",
}  # fmt: skip
# Words in cells of the columns that hold codes (kind, status) or markers (a draft, the totals row).
VALUES_ZH = {
    "usage": "使用费", "subsidy": "补贴", "late_cancellation": "逾期取消费", "no_show": "爽约费", "credit": "冲销",
    "completed": "已完成", "in_progress": "进行中", "cancelled": "已取消", "confirmed": "已确认", "DRAFT": "草稿",
    "Total": "合计",
}  # fmt: skip
CODED = frozenset({"kind", "status", "invoice", "customer"})


def _title_zh(title: str) -> str:
    base, _, zone = title.partition(" (")
    if zone and base in TITLES_ZH and title not in TITLES_ZH:  # "start (Asia/Shanghai)"
        return f"{TITLES_ZH[base]}（{zone.rstrip(')')}）"
    return TITLES_ZH.get(title, title)


def _in(lang: Lang, sheet: Sheet, heading_zh: list[str]) -> Sheet:
    """The sheet as built (English), or in Chinese: titles, heading and coded cells."""
    if lang == "en":
        return sheet
    coded = [c.title in CODED for c in sheet.columns]
    rows = [
        [VALUES_ZH.get(v, v) if isinstance(v, str) and is_coded else v for v, is_coded in zip(row, coded, strict=True)]
        for row in sheet.rows
    ]
    columns = [Column(_title_zh(c.title), c.number_format, c.width) for c in sheet.columns]
    return Sheet(TITLES_ZH.get(sheet.name, sheet.name), heading_zh, columns, rows, sheet.total_row)


def to_csv(sheet: Sheet) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow([c.title for c in sheet.columns])
    for row in sheet.rows:
        writer.writerow([csv_cell(v) for v in row])
    return out.getvalue().encode("utf-8-sig")


def _display_width(value: Any) -> int:
    text = csv_cell(value)
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _check_exact(value: Decimal) -> None:
    """openpyxl writes a number's digits with "%.16g", which gives back a Decimal's exact digits only up to
    15 significant ones. numeric(12,2) money has at most 12, so this never fires; it keeps the promise."""
    if len(value.as_tuple().digits) > 15:
        raise ValueError(f"{value} has more than 15 significant digits: XLSX cannot hold it exactly")


def to_xlsx(sheet: Sheet) -> bytes:
    book = Workbook()
    ws = book.active
    assert isinstance(ws, Worksheet)  # a new workbook's one sheet
    ws.title = sheet.name[:31]
    bold = Font(bold=True)
    row_no = 1
    for line in sheet.heading:
        ws.cell(row=row_no, column=1, value=ILLEGAL_CHARACTERS_RE.sub("", line)).font = bold
        row_no += 1
    if sheet.heading:
        row_no += 1
    header = row_no
    for col, column in enumerate(sheet.columns, 1):
        cell = ws.cell(row=header, column=col, value=column.title)
        cell.font = bold
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    widths = [max(column.width, _display_width(column.title) // 2 + 2) for column in sheet.columns]
    for r, values in enumerate(sheet.rows, header + 1):
        last = sheet.total_row and r == header + len(sheet.rows)
        for col, (column, value) in enumerate(zip(sheet.columns, values, strict=True), 1):
            if isinstance(value, str):
                cell = ws.cell(row=r, column=col, value=ILLEGAL_CHARACTERS_RE.sub("", value))
                cell.data_type = "s"  # never a formula, whatever the text starts with
            else:
                if isinstance(value, Decimal):
                    _check_exact(value)
                cell = ws.cell(row=r, column=col, value=value)
                if value is not None and column.number_format is not None:
                    cell.number_format = column.number_format
            if last:
                cell.font = bold
            widths[col - 1] = max(widths[col - 1], min(_display_width(value) + 2, 60))
    for col, width in enumerate(widths, 1):
        ws.column_dimensions[get_column_letter(col)].width = width
    ws.freeze_panes = ws.cell(row=header + 1, column=1).coordinate
    last_row = header + len(sheet.rows) - (1 if sheet.total_row else 0)
    ws.auto_filter.ref = f"A{header}:{get_column_letter(len(sheet.columns))}{max(last_row, header)}"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _local(value: datetime, zone: ZoneInfo) -> datetime:
    """Naive local time: what a spreadsheet shows (openpyxl refuses aware datetimes)."""
    return value.astimezone(zone).replace(tzinfo=None)


async def _one(conn: AsyncConnection, sql: str, params: dict[str, Any]) -> dict[str, Any] | None:
    rows = await dict_rows(conn, sql, params)
    return rows[0] if rows else None


# --- invoice lines ----------------------------------------------------------------------------------------

LINE_COLUMNS = [
    Column("invoice", width=16),
    Column("customer", width=28),
    Column("credit code", width=20),
    Column("line", COUNT, 6),
    Column("booking", COUNT, 9),
    Column("reference", width=20),
    Column("kind", width=14),
    Column("description", width=48),
    Column("quantity", QUANTITY, 10),
    Column("unit", width=8),
    Column("unit price (CNY)", MONEY, 12),
    Column("amount (CNY)", MONEY, 12),
]


def _document_label(invoice: dict[str, Any]) -> str:
    return invoice["number"] if invoice["status"] == "issued" else "DRAFT"


async def _invoice(conn: AsyncConnection, invoice_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    invoice = await _one(conn, QUERIES.export_invoice.sql, {"id": invoice_id})
    if invoice is None:
        raise NotFound(f"no invoice {invoice_id}")
    lines = await dict_rows(conn, QUERIES.invoice_lines.sql, {"invoice_id": invoice_id})
    return invoice, lines


async def _lines_sheet(conn: AsyncConnection, invoice_id: int, lang: Lang) -> Sheet:
    invoice, lines = await _invoice(conn, invoice_id)
    label = _document_label(invoice)
    kind = "Credit note" if invoice["kind"] == "credit_note" else "Invoice"
    zh_kind, zh_label = ("冲销单" if invoice["kind"] == "credit_note" else "结算单"), VALUES_ZH.get(label, label)
    heading_zh = [f"{zh_kind} {zh_label} — {invoice['customer']} — {invoice['month']:%Y-%m}", "金额单位：元，含增值税"]
    sheet = Sheet(
        "Lines",
        [f"{kind} {label} — {invoice['customer']} — {invoice['month']:%Y-%m}", "Amounts in CNY, VAT included"],
        LINE_COLUMNS,
    )
    for line in lines:
        sheet.rows.append(
            [
                label,
                invoice["customer"],
                invoice["uscc"],
                line["position"],
                line["booking_id"],
                line["reference"] or "",
                line["kind"],
                line["description"],
                line["quantity"],
                line["unit"],
                money(line["unit_price"]),
                money(line["amount"]),
            ]
        )
    return _in(lang, sheet, heading_zh)


async def invoice_lines_csv(conn: AsyncConnection, invoice_id: int, lang: Lang = "zh-CN") -> bytes:
    """The lines of one invoice or credit note ("DRAFT" in the invoice column until it is issued)."""
    return to_csv(await _lines_sheet(conn, invoice_id, lang))


async def invoice_lines_xlsx(conn: AsyncConnection, invoice_id: int, lang: Lang = "zh-CN") -> bytes:
    return await asyncio.to_thread(to_xlsx, await _lines_sheet(conn, invoice_id, lang))


# --- the month's usage ------------------------------------------------------------------------------------

USAGE_COLUMNS = [
    Column("booking", COUNT, 9),
    Column("organization", width=28),
    Column("credit code", width=20),
    Column("device", width=18),
    Column("class", width=9),
    Column("status", width=11),
    Column("start", WHEN, 17),
    Column("end", WHEN, 17),
    Column("reference", width=20),
    Column("booked h", HOURS, 9),
    Column("running h", HOURS, 9),
    Column("setup h", HOURS, 9),
    Column("overrun h", HOURS, 9),
    Column("offline h", HOURS, 9),
    Column("parts total", COUNT, 9),
    Column("parts good", COUNT, 9),
    Column("energy kWh", "0.000", 10),
    Column("idle energy kWh", "0.000", 10),
    Column("CO2 kg", "0.00", 9),
    Column("grid factor kg CO2/kWh", "0.0000", 10),
]


def _month_window(month: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    month = first_of_month(month)
    return datetime.combine(month, time(), zone), datetime.combine(next_month(month), time(), zone)


async def _usage_sheet(conn: AsyncConnection, month: date, zone: ZoneInfo, lang: Lang) -> Sheet:
    since, until = _month_window(month, zone)
    heading_zh = [f"{since:%Y-%m} 各预约使用记录", f"当月开始的预约；时间为 {zone.key} 时间"]
    sheet = Sheet(
        "Usage",
        [f"Usage per booking, {since:%Y-%m}", f"Bookings starting in the month; times in {zone.key}"],
        [
            Column(f"{c.title} ({zone.key})", c.number_format, c.width) if c.title in ("start", "end") else c
            for c in USAGE_COLUMNS
        ],
    )
    for row in await dict_rows(conn, QUERIES.export_usage.sql, {"since": since, "until": until}):
        sheet.rows.append(
            [
                row["booking_id"],
                row["organization"],
                row["uscc"],
                row["device"],
                row["class_id"],
                row["status"],
                _local(row["start"], zone),
                _local(row["end"], zone),
                row["reference"] or "",
                row["booked_h"],
                row["running_h"],
                row["setup_h"],
                row["overrun_h"],
                row["offline_h"],
                row["parts_total"],
                row["parts_good"],
                row["energy_kwh"],
                row["idle_energy_kwh"],
                row["co2_kg"],
                row["carbon_factor"],
            ]
        )
    return _in(lang, sheet, heading_zh)


async def usage_csv(conn: AsyncConnection, month: date, zone: ZoneInfo, lang: Lang = "zh-CN") -> bytes:
    """The usage record of each booking starting in `month` (the center's calendar), in local times."""
    return to_csv(await _usage_sheet(conn, month, zone, lang))


async def usage_xlsx(conn: AsyncConnection, month: date, zone: ZoneInfo, lang: Lang = "zh-CN") -> bytes:
    return await asyncio.to_thread(to_xlsx, await _usage_sheet(conn, month, zone, lang))


# --- the subsidy report -----------------------------------------------------------------------------------

SUBSIDY_COLUMNS = [
    Column("customer", width=28),
    Column("credit code", width=20),
    Column("bookings", COUNT, 9),
    Column("market value (CNY)", MONEY, 14),
    Column("subsidy granted (CNY)", MONEY, 14),
    Column("annual cap (CNY)", MONEY, 14),
    Column("cap used year to date (CNY)", MONEY, 14),
    Column("cap left (CNY)", MONEY, 14),
]


async def _subsidy_sheet(conn: AsyncConnection, program_id: str, month: date, lang: Lang) -> Sheet:
    month = first_of_month(month)
    program = await _one(conn, QUERIES.export_program.sql, {"id": program_id})
    if program is None:
        raise NotFound(f"no subsidy program {program_id!r}")
    cap = money(program["annual_cap"])
    share = format((program["share"] * 100).normalize(), "f")
    sheet = Sheet(
        "Subsidy",
        [
            f"Subsidy report: {program['name']} ({program['id']}), {month:%Y-%m}",
            f"{share} % of the market price; annual cap {cap} CNY per customer",
            "Issued invoices of the month, credit notes netted; amounts in CNY, VAT included",
        ],
        SUBSIDY_COLUMNS,
        total_row=True,
    )
    rows = await dict_rows(
        conn, QUERIES.export_subsidy_report.sql, {"program_id": program_id, "month": month, "year": month.year}
    )
    bookings, market, granted, used = 0, Decimal("0.00"), Decimal("0.00"), Decimal("0.00")
    for row in rows:
        sheet.rows.append(
            [
                row["customer"],
                row["uscc"],
                row["bookings"],
                money(row["market_value"]),
                money(row["granted"]),
                cap,
                money(row["cap_used"]),
                money(cap - row["cap_used"]),
            ]
        )
        bookings += row["bookings"]
        market += row["market_value"]
        granted += row["granted"]
        used += row["cap_used"]
    sheet.rows.append(["Total", None, bookings, money(market), money(granted), None, money(used), None])
    heading_zh = [
        f"补贴报表：{program['name']}（{program['id']}），{month:%Y-%m}",
        f"按市场价的 {share}% 补贴；每家客户年度上限 {cap} 元",
        "当月已开具的结算单，已扣除冲销；金额单位：元，含增值税",
    ]
    return _in(lang, sheet, heading_zh)


async def subsidy_report(
    conn: AsyncConnection, program_id: str, month: date, zone: ZoneInfo, lang: Lang = "zh-CN"
) -> bytes:
    """The program's report for the funding body as CSV: per customer, the bookings quoted under the program
    on the month's issued invoices, their market value, the subsidy granted (credit notes netted), the annual
    cap and how much of it the year has used up to this month; a totals row last.

    The figures follow invoice months, so `zone` does not change them; it is taken for a signature like the
    other exports'."""
    return to_csv(await _subsidy_sheet(conn, program_id, month, lang))


subsidy_report_csv = subsidy_report


async def subsidy_report_xlsx(
    conn: AsyncConnection, program_id: str, month: date, zone: ZoneInfo, lang: Lang = "zh-CN"
) -> bytes:
    return await asyncio.to_thread(to_xlsx, await _subsidy_sheet(conn, program_id, month, lang))


# --- the PDF invoice --------------------------------------------------------------------------------------

_font_lock = threading.Lock()  # reportlab's font registry and subsetting state are process-wide
_fonts: dict[Path, str] = {}


def cjk_font(path: Path = CJK_FONT) -> str:
    """Registers the TrueType collection's first face with reportlab (once) and returns its name."""
    with _font_lock:
        if path in _fonts:
            return _fonts[path]
        if not path.is_file():
            raise FontMissing(
                f"the CJK font {path} is missing, so Chinese names cannot be rendered in PDFs: install Debian's "
                "fonts-wqy-zenhei (`apt-get install fonts-wqy-zenhei`, or `bash scripts/system-deps.sh`)"
            )
        name = f"CJK-{path.stem}"
        pdfmetrics.registerFont(TTFont(name, str(path), subfontIndex=0))
        _fonts[path] = name
        return name


def _cny(amount: Decimal) -> str:
    return f"{money(amount):,.2f}"


def _quantity(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _percent(rate: Decimal) -> str:
    return format((rate * 100).normalize(), "f") + " %"


def _render_pdf(
    invoice: dict[str, Any], lines: Sequence[dict[str, Any]], center_name: str, zone: ZoneInfo, font_path: Path
) -> bytes:
    font = cjk_font(font_path)
    draft = invoice["status"] != "issued"
    credit_note = invoice["kind"] == "credit_note"
    number = "DRAFT 草稿" if draft else invoice["number"]
    title = "Credit note 冲销单" if credit_note else "Invoice 结算单"

    def style(name: str, size: float, **extra: Any) -> ParagraphStyle:
        return ParagraphStyle(name, fontName=font, fontSize=size, leading=size * 1.35, wordWrap="CJK", **extra)

    body, small = style("body", 9), style("small", 8, textColor=colors.grey)

    def p(text: Any, st: ParagraphStyle = body) -> Paragraph:
        return Paragraph(escape(str(text)), st)

    issued = f"{invoice['issued_at'].astimezone(zone):%Y-%m-%d}" if invoice["issued_at"] else "not issued 未开具"
    facts = [
        ["Customer 客户", p(invoice["customer"], style("customer", 11))],
        ["Credit code 统一社会信用代码", invoice["uscc"]],
    ]
    contact = " · ".join(v for v in (invoice["contact_name"], invoice["contact_phone"], invoice["contact_email"]) if v)
    if contact:
        facts.append(["Contact 联系人", p(contact)])
    facts += buyer_tax_facts(invoice, p)
    facts += [
        ["Number 编号", number],
        ["Issue date 开具日期", issued],
        ["Period 账期", f"{invoice['month']:%Y-%m}"],
    ]
    if invoice["tax_number"]:
        facts.append(["Tax invoice no. 数电发票号码", invoice["tax_number"]])
    if credit_note:
        facts.append(["Cancels invoice 冲销发票", invoice["credits_number"] or ""])
        if invoice["reason"]:
            facts.append(["Reason 原因", p(invoice["reason"])])
    if invoice["credited_by_number"]:
        facts.append(["Cancelled by 已被冲销", invoice["credited_by_number"]])
    facts_table = Table(facts, colWidths=[52 * mm, 122 * mm])
    facts_table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), font, 9),
                ("TEXTCOLOR", (0, 0), (0, -1), colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )

    rows: list[list[Any]] = [["#", "Description 项目", "Qty 数量", "Unit 单位", "Unit price 单价", "Amount 金额"]]
    for line in lines:
        rows.append(
            [
                str(line["position"]),
                p(line["description"]),
                _quantity(line["quantity"]),
                line["unit"],
                _cny(line["unit_price"]),
                _cny(line["amount"]),
            ]
        )
    lines_table = Table(rows, colWidths=[8 * mm, 82 * mm, 16 * mm, 16 * mm, 25 * mm, 27 * mm], repeatRows=1)
    lines_table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), font, 9),
                ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.9, 0.9, 0.9)),
                ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
                ("LINEBELOW", (0, 1), (-1, -1), 0.25, colors.lightgrey),
                ("ALIGN", (2, 0), (2, -1), "RIGHT"),
                ("ALIGN", (4, 0), (-1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )

    total, vat = invoice["total"], invoice["vat"]
    rate = _percent(invoice["vat_rate"])
    totals = Table(
        [
            ["Subtotal excl. VAT 不含税金额", _cny(total - vat)],
            [f"VAT {rate} 增值税", _cny(vat)],
            ["Total incl. VAT 价税合计 (CNY)", _cny(total)],
        ],
        colWidths=[60 * mm, 30 * mm],
        hAlign="RIGHT",
    )
    totals.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), font, 9),
                ("FONT", (0, 2), (-1, 2), font, 11),
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                ("LINEABOVE", (0, 2), (-1, 2), 0.6, colors.black),
            ]
        )
    )
    note = (
        f"All amounts are in CNY and include VAT at {rate}. The VAT is computed once on the invoice total and "
        f"rounded half-up to the fen. 以上金额均为含税价（增值税税率 {rate}），单位：人民币元。"
    )
    story = [
        p(center_name, style("center", 15)),
        Spacer(0, 2 * mm),
        p(title, style("title", 12)),
        Spacer(0, 4 * mm),
        facts_table,
        Spacer(0, 6 * mm),
        lines_table,
        Spacer(0, 4 * mm),
        totals,
        Spacer(0, 6 * mm),
        p(note, small),
    ]
    if draft:
        warning = style("draft", 10, textColor=colors.red)
        story.insert(3, p("DRAFT: not valid for payment 草稿，不可作为付款凭证", warning))

    label = f"{center_name} · {number}"

    def decorate(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        if draft:
            canvas.setFont(font, 96)
            canvas.setFillColor(colors.Color(0.85, 0.85, 0.85, alpha=0.5))
            canvas.translate(A4[0] / 2, A4[1] / 2)
            canvas.rotate(45)
            canvas.drawCentredString(0, 0, "DRAFT")
            canvas.rotate(-45)
            canvas.translate(-A4[0] / 2, -A4[1] / 2)
        footer(canvas, doc, font, label)
        canvas.restoreState()

    return build_a4(story, decorate, title=f"{title} {number}", author=center_name, subject=invoice["customer"])


def buyer_tax_facts(invoice: dict[str, Any], p: Callable[[Any], Paragraph]) -> list[list[Any]]:
    """The buyer's tax data as its tax invoices print it; a field not given is left out."""
    facts: list[list[Any]] = []
    if invoice["taxpayer_type"]:
        facts.append(
            ["Taxpayer type 纳税人类型", f"{TAXPAYER_TYPES[invoice['taxpayer_type']]} ({invoice['taxpayer_type']})"]
        )
    address = " ".join(v for v in (invoice["invoice_address"], invoice["invoice_phone"]) if v)
    if address:
        facts.append(["Address, phone 地址、电话", p(address)])
    bank = " ".join(v for v in (invoice["bank_name"], invoice["bank_account"]) if v)
    if bank:
        facts.append(["Bank, account 开户行及账号", p(bank)])
    return facts


def footer(canvas: Any, doc: Any, font: str, label: str) -> None:
    """The page's footer: what the document is on the left, the page number on the right."""
    canvas.setFont(font, 7.5)
    canvas.setFillColor(colors.grey)
    canvas.drawString(18 * mm, 10 * mm, label)
    canvas.drawRightString(A4[0] - 18 * mm, 10 * mm, f"{doc.page}")


def build_a4(story: list[Any], decorate: Callable[[Any, Any], None], *, title: str, author: str, subject: str) -> bytes:
    """An A4 document with 18 mm margins, `decorate` drawing on every page, built under the font lock."""
    out = io.BytesIO()
    document = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=title,
        author=author,
        subject=subject,
    )
    with _font_lock:
        document.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return out.getvalue()


async def invoice_pdf(
    conn: AsyncConnection, invoice_id: int, center_name: str, zone: ZoneInfo, *, font: Path = CJK_FONT
) -> bytes:
    """The invoice (or credit note) as a PDF for the customer: the center's and the customer's names in
    Chinese, the credit code, number and issue date (a draft says DRAFT, across the page too), the lines,
    subtotal, VAT with its rate and the tax-inclusive total. Raises FontMissing without the CJK font."""
    invoice, lines = await _invoice(conn, invoice_id)
    return await asyncio.to_thread(_render_pdf, invoice, lines, center_name, zone, font)
