"""The e-invoice hand-off (数电发票): issued invoices and credit notes in the layout of the 电子税务局's batch-issue
(批量开具) sheet that finance uploads to the tax bureau's platform, and the platform's invoice number recorded
back on the FabHub document.

The sheet's columns are defined once, in COLUMNS. One row per invoice line; rows of one document share its
发票流水号 (the FabHub number). FabHub amounts are tax-inclusive (是否含税 = 是) and the VAT is computed once on
the invoice total (oee.charges.vat_of), so each row's tax is its amount's share of that VAT, rounded half-up to the
fen, and the last row of a document takes the rounding difference: the rows' tax then sums to the invoice's VAT
exactly. A subsidy is a discount row (折扣行) of the usage it reduces. A credit note's rows are red (红字): negative
quantity, amount and tax at the positive unit price, each naming the blue invoice it cancels (蓝字发票号码): the tax
platform's number when recorded, else the FabHub number, which the 备注 column then says."""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field, model_validator

from accounts import audit
from accounts.model import Principal
from common.errors import Conflict, Invalid, NotFound
from common.rows import dict_rows, unique_or_conflict
from oee.charges import money
from oee.exports import MONEY, QUANTITY, Column, Sheet, to_xlsx
from oee.sqlfiles import QUERIES

TAX_NUMBER = re.compile(r"^[0-9]{20}$")  # 数电发票号码: 20 digits
CLASSIFICATION_CODE = r"^[0-9]{19}$"  # 商品和服务税收分类编码: 19 digits, the leaf of the code table
FEES = ("late_cancellation", "no_show")


class Item(BaseModel):
    """What a line is called on the tax invoice. The platform prints `*简称*名称`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=90)
    code: str = Field(pattern=CLASSIFICATION_CODE, description="商品和服务税收分类编码, 19 digits")
    short_name: str = Field(min_length=1, max_length=20, pattern=r"^[^*]+$", description="税收分类简称, without *")
    specification: str = Field("", max_length=40)
    unit: str = Field("", max_length=20)


# 3040105000000000000: 现代服务 (304) > 研发和技术服务 (30401) > 专业技术服务, the 6 % VAT services branch of the
# national 商品和服务税收分类编码表; public training-center machine time sold with a technician's support is a
# technical service there. A center whose tax office classifies it otherwise sets its own in devices.yaml.
TECHNICAL_SERVICE = "3040105000000000000"


class EInvoiceSettings(BaseModel):
    """devices.yaml's `einvoice:` section: the items per device class, the fees' item, the invoice type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    invoice_type: Annotated[str, Field(pattern=r"^(普通发票|增值税专用发票)$")] = "普通发票"
    usage: Item = Item(name="设备使用技术服务", code=TECHNICAL_SERVICE, short_name="现代服务", unit="小时")
    classes: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")], Item] = {}
    fees: Item = Item(name="预约违约服务费", code=TECHNICAL_SERVICE, short_name="现代服务", unit="次")

    @model_validator(mode="after")
    def _units(self) -> EInvoiceSettings:
        for where, item in [("usage", self.usage), *self.classes.items()]:
            if not item.unit:
                raise ValueError(f"the item of {where} needs its unit (小时): its quantity is hours")
        return self

    def item(self, kind: str, class_id: str | None) -> Item:
        if kind in FEES:
            return self.fees
        return self.classes.get(class_id or "", self.usage)


COLUMNS = [
    Column("发票流水号", width=16),
    Column("发票类型", width=14),
    Column("是否含税", width=8),
    Column("购买方名称", width=28),
    Column("购买方纳税人识别号", width=20),
    Column("购买方地址", width=28),
    Column("购买方电话", width=14),
    Column("购买方开户银行", width=20),
    Column("购买方银行账号", width=22),
    Column("项目名称", width=24),
    Column("商品和服务税收分类编码", width=21),
    Column("商品服务简称", width=12),
    Column("规格型号", width=12),
    Column("单位", width=6),
    Column("数量", QUANTITY, 10),
    Column("单价", MONEY, 12),
    Column("金额", MONEY, 12),
    Column("税率", "0%", 6),
    Column("税额", MONEY, 12),
    Column("发票行性质", width=10),
    Column("蓝字发票号码", width=22),
    Column("备注", width=48),
]
TITLES = [c.title for c in COLUMNS]


def tax_shares(amounts: list[Decimal], vat: Decimal, rate: Decimal) -> list[Decimal]:
    """Each amount's tax (amount x rate / (1 + rate), half-up to the fen), the last one taking what makes the
    sum the document's VAT, which was computed once on its total."""
    if not amounts:
        return []
    shares = [money(a * rate / (1 + rate)) for a in amounts[:-1]]
    return [*shares, vat - sum(shares, Decimal("0.00"))]


def _row(line: dict[str, Any], settings: EInvoiceSettings, tax: Decimal) -> list[Any]:
    item = settings.item(line["kind"], line["class_id"])
    red = line["document_kind"] == "credit_note"
    discount = line["kind"] == "subsidy"
    quantity = None if discount else (-line["quantity"] if red else line["quantity"])
    unit_price = None if discount else abs(line["unit_price"])
    original, note = None, line["description"]
    if red:
        original = line["original_tax_number"] or line["original_fabhub_number"]
        if line["original_tax_number"] is None:
            note += f"（蓝字发票税务平台号码未登记，此处为 FabHub 编号 {original}）"
    return [
        line["number"],
        settings.invoice_type,
        "是",
        line["buyer"],
        line["uscc"],
        *(line[name] or None for name in ("invoice_address", "invoice_phone", "bank_name", "bank_account")),
        item.name,
        item.code,
        item.short_name,
        item.specification or None,  # an empty cell, not an empty string
        None if discount else item.unit,
        quantity,
        unit_price,
        money(line["amount"]),
        line["vat_rate"],
        tax,
        "折扣行" if discount else "正常行",
        original,
        note,
    ]


async def month_sheet(conn: AsyncConnection, month: date, settings: EInvoiceSettings) -> Sheet:
    lines = await dict_rows(conn, QUERIES.einvoice_lines.sql, {"month": month})
    sheet = Sheet(f"数电发票 {month:%Y-%m}", [], COLUMNS)
    by_document: dict[int, list[dict[str, Any]]] = {}
    for line in lines:
        by_document.setdefault(line["invoice_id"], []).append(line)
    for document in by_document.values():
        first = document[0]
        taxes = tax_shares([money(x["amount"]) for x in document], first["vat"], first["vat_rate"])
        sheet.rows += [_row(line, settings, tax) for line, tax in zip(document, taxes, strict=True)]
    return sheet


async def month_xlsx(conn: AsyncConnection, month: date, settings: EInvoiceSettings) -> bytes:
    """The month's issued invoices and credit notes (by invoice month) as the batch-issue sheet."""
    return await asyncio.to_thread(to_xlsx, await month_sheet(conn, month, settings))


async def record_tax_number(
    conn: AsyncConnection, invoice_id: int, number: str, principal: Principal, at: datetime
) -> dict[str, Any]:
    """Records (or corrects) the platform's number of an issued document, audited with before and after. The
    invoice row itself is untouched: it is final once issued."""
    if not TAX_NUMBER.match(number):
        raise Invalid("a 数电发票号码 has 20 digits")
    async with conn.transaction():
        found = await dict_rows(conn, QUERIES.lock_invoice.sql, {"id": invoice_id})
        if not found:
            raise NotFound(f"no invoice {invoice_id}")
        if found[0]["status"] != "issued":
            raise Conflict("a draft has no tax invoice yet: issue it first")
        before = await QUERIES.tax_number_of(conn, invoice_id=invoice_id)
        async with unique_or_conflict(conn, f"the tax invoice number {number} is recorded on another invoice"):
            await QUERIES.put_tax_number(conn, invoice_id=invoice_id, number=number, at=at, by=principal.id)
        await audit.record(
            conn,
            at,
            principal,
            "record tax number",
            "invoice",
            invoice_id,
            before={"number": before[0]} if before else None,
            after={"number": number},
        )
    return {"id": invoice_id, "tax_number": number, "recorded_at": at}
