"""HTTP routes for usage and invoices. Finance and admins draft, issue and credit; customers read their own
organization's issued invoices and usage. An issued invoice has no route that changes it: corrections are
credit notes."""

from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Response
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from accounts.auth import Authenticator
from accounts.model import Principal
from common.errors import NotFound
from common.http import ID, RowId, Text
from common.paging import Key, Listing, Page, Paging, fetch_page
from common.times import Stamp
from oee import einvoice, exports
from oee.einvoice import EInvoiceSettings
from oee.invoices import ZERO, Invoicing, document_filters, documents, lines_of, next_month, parse_month
from oee.payments import PaymentStatus, payment_status
from oee.sqlfiles import QUERIES

MONTH = r"^(20[0-9]{2}|21[0-9]{2})-(0[1-9]|1[0-2])$"
INVOICES = Listing(
    "invoices", (Key("month", "date", descending=True), Key("organization_name", "text"), Key("id", "int"))
)
USAGE = Listing("usage", (Key("start", "time"), Key("booking_id", "int")))
OrgId = Annotated[int | None, Query(gt=0, le=2**63 - 1)]
Month = Annotated[str, Query(pattern=MONTH, description="YYYY-MM in the center's calendar")]


class LineOut(BaseModel):
    id: int
    position: int
    booking_id: int | None
    kind: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal
    subsidy_program: str | None
    reference: str | None = Field(description="the booking's project or purchase-order reference")


class InvoiceOut(BaseModel):
    """Money as decimal strings (CNY, tax-inclusive), never binary floats."""

    id: int
    kind: str
    organization_id: int
    organization_name: str
    month: date
    status: str
    number: str | None
    total: Decimal
    vat: Decimal
    vat_rate: Decimal
    credits: int | None
    credited_by: int | None
    reason: str | None
    created_at: Stamp
    issued_at: Stamp | None
    updated_at: Stamp
    tax_number: str | None = Field(description="the tax platform's 数电发票号码, once finance has recorded it")
    currency: str = "CNY"
    paid: Decimal = Field(description="payments that stand (not reversed)")
    open_amount: Decimal | None = Field(None, description="what is still owed; null on drafts and credit notes")
    payment_status: PaymentStatus | None = Field(
        None, description="issued, partly_paid, paid, overdue (open after the payment term) or credited"
    )


class InvoiceWithLines(InvoiceOut):
    lines: list[LineOut]


class UsageOut(BaseModel):
    booking_id: int
    organization_id: int
    organization_name: str
    device_id: str
    start: Stamp
    end: Stamp
    status: str
    booked_s: float
    running_s: float
    setup_s: float
    overrun_s: float
    offline_s: float
    parts_total: int  # counted parts, whole
    parts_good: int | None
    energy_kwh: float | None = Field(description="the machine's energy over the slot; null: it measures none")
    idle_energy_kwh: float | None = Field(description="of which while the machine was not running")
    co2_kg: Decimal | None = Field(description="energy_kwh x carbon_factor")
    carbon_factor: Decimal | None = Field(description="kg CO2 per kWh, the grid factor in force when frozen")
    carbon_source: str | None
    carbon_year: int | None
    computed_at: Stamp
    updated_at: Stamp
    reference: str | None


class DraftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    month: str = Field(pattern=MONTH)
    organization_id: int | None = Field(None, gt=0, le=2**63 - 1, description="one customer; all when absent")


class TaxNumberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(max_length=64, description="the 数电发票号码 the tax platform gave the invoice: 20 digits")


class TaxNumberOut(BaseModel):
    id: int
    tax_number: str
    recorded_at: Stamp


class CreditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Text = Field(min_length=3, max_length=500)


Format = Literal["csv", "xlsx"]
ExportLang = Annotated[Literal["zh-CN", "en"], Query(description="the sheet's language: Chinese, or English")]
MEDIA = {"csv": "text/csv; charset=utf-8", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def download(data: bytes, media_type: str, filename: str) -> Response:
    return Response(data, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def month_of(text: str) -> date:
    """A month the route's pattern has checked already."""
    found = parse_month(text)
    assert found is not None, text
    return found


def make_router(
    pool: AsyncConnectionPool,
    auth: Authenticator,
    invoicing: Invoicing,
    einvoice_settings: EInvoiceSettings,
    center_name: str,
    zone: ZoneInfo,
    clock: Callable[[], datetime],
    prefix: str,
    payment_term_days: int,
) -> APIRouter:
    router = APIRouter(tags=["billing"])
    Caller = Annotated[Principal, Depends(auth.caller)]  # roles: fabhub/policy.py

    def with_payments(invoice: InvoiceOut) -> InvoiceOut:
        """Paid, open and status as of today in the center's calendar (computed: an issued invoice never changes)."""
        today = clock().astimezone(zone).date()
        status = payment_status(invoice.model_dump(), invoice.paid, today, payment_term_days, zone)
        open_amount = None if status is None else invoice.total - invoice.paid if status != "credited" else ZERO
        return invoice.model_copy(update={"payment_status": status, "open_amount": open_amount})

    def scope(principal: Principal, organization_id: int | None) -> int | None:
        """A customer's view is its own organization; asking for another's finds nothing."""
        if principal.is_staff:
            return organization_id
        if organization_id not in (None, principal.organization_id):
            raise NotFound(f"no organization {organization_id}")
        return principal.organization_id

    async def invoices(principal: Principal, **filters: Any) -> list[dict[str, Any]]:
        async with pool.connection() as conn:
            return await documents(conn, principal, **filters)

    @router.get(f"{prefix}/invoices", summary="List invoices and credit notes")
    async def list_invoices(
        principal: Caller,
        page: Paging,
        month: Month | None = None,
        organization_id: OrgId = None,
        status: Annotated[str | None, Query(pattern="^(draft|issued)$")] = None,
    ) -> Page[InvoiceOut]:
        """Invoices and credit notes, newest month first. Customers see their issued ones only."""
        chosen = month_of(month) if month else None
        params = document_filters(principal, month=chosen, organization_id=organization_id, status=status)
        async with pool.connection() as conn:
            listed = await fetch_page(conn, INVOICES, QUERIES.invoices.sql, params, page, InvoiceOut)
        return listed.model_copy(update={"items": [with_payments(i) for i in listed.items]})

    # The exports first: /invoices/7.pdf must not be taken for /invoices/{invoice_id}.
    async def readable(principal: Principal, invoice_id: int) -> None:
        if not await invoices(principal, invoice_id=invoice_id):
            raise NotFound(f"no invoice {invoice_id}")

    @router.get(
        f"{prefix}/invoices/{{invoice_id}}.pdf",
        response_class=Response,
        responses={404: {}},
        summary="Download an invoice as PDF",
    )
    async def invoice_pdf(principal: Caller, invoice_id: RowId) -> Response:
        """The invoice as PDF, with the center's and the customer's names in Chinese."""
        await readable(principal, invoice_id)
        async with pool.connection() as conn:
            pdf = await exports.invoice_pdf(conn, invoice_id, center_name, zone)
        return download(pdf, "application/pdf", f"invoice-{invoice_id}.pdf")

    @router.get(
        f"{prefix}/invoices/{{invoice_id}}/lines.{{fmt}}",
        response_class=Response,
        responses={404: {}},
        summary="Download an invoice's lines as CSV or XLSX",
    )
    async def invoice_lines(principal: Caller, invoice_id: RowId, fmt: Format, lang: ExportLang = "zh-CN") -> Response:
        """The invoice's lines as CSV (UTF-8 with BOM, for Excel) or XLSX."""
        await readable(principal, invoice_id)
        async with pool.connection() as conn:
            export = exports.invoice_lines_csv if fmt == "csv" else exports.invoice_lines_xlsx
            data = await export(conn, invoice_id, lang)
        return download(data, MEDIA[fmt], f"invoice-{invoice_id}-lines.{fmt}")

    @router.get(f"{prefix}/usage.{{fmt}}", response_class=Response, summary="Export the month's usage as CSV or XLSX")
    async def usage_export(principal: Caller, fmt: Format, month: Month, lang: ExportLang = "zh-CN") -> Response:
        """The month's usage of every customer, for finance."""
        async with pool.connection() as conn:
            export = exports.usage_csv if fmt == "csv" else exports.usage_xlsx
            data = await export(conn, month_of(month), zone, lang)
        return download(data, MEDIA[fmt], f"usage-{month}.{fmt}")

    @router.get(
        f"{prefix}/subsidy-report.{{fmt}}",
        response_class=Response,
        responses={404: {}},
        summary="Export the subsidy report for a funding body",
    )
    async def subsidy_report(
        principal: Caller,
        fmt: Format,
        month: Month,
        program: Annotated[str, Query(pattern=ID)],
        lang: ExportLang = "zh-CN",
    ) -> Response:
        """Per program and month, for the funding body: per customer the market value, the subsidy granted
        and the annual cap used, with totals."""
        async with pool.connection() as conn:
            export = exports.subsidy_report_csv if fmt == "csv" else exports.subsidy_report_xlsx
            data = await export(conn, program, month_of(month), zone, lang)
        return download(data, MEDIA[fmt], f"subsidy-{program}-{month}.{fmt}")

    @router.get(f"{prefix}/einvoice.xlsx", response_class=Response, summary="E-invoice batch-issue sheet of a month")
    async def einvoice_export(principal: Caller, month: Month) -> Response:
        """The month's issued invoices and credit notes in the tax platform's batch-issue (批量开具) layout, one
        row per line, tax-inclusive; credit notes as red rows naming the invoice they cancel."""
        async with pool.connection() as conn:
            data = await einvoice.month_xlsx(conn, month_of(month), einvoice_settings)
        return download(data, MEDIA["xlsx"], f"einvoice-{month}.xlsx")

    @router.put(
        f"{prefix}/invoices/{{invoice_id}}/tax-number",
        responses={404: {}, 409: {}},
        summary="Record the tax platform's invoice number",
    )
    async def tax_number(principal: Caller, invoice_id: RowId, body: TaxNumberIn) -> TaxNumberOut:
        """The 数电发票号码 the tax platform gave an issued invoice or credit note (20 digits), audited; sending
        another number corrects it. A number belongs to one document."""
        async with pool.connection() as conn:
            recorded = await einvoice.record_tax_number(conn, invoice_id, body.number, principal, clock())
        return TaxNumberOut(**recorded)

    @router.get(f"{prefix}/invoices/{{invoice_id}}", responses={404: {}}, summary="Show an invoice with its lines")
    async def one_invoice(principal: Caller, invoice_id: RowId) -> InvoiceWithLines:
        """An invoice with its lines; another organization's, or a draft to a customer, is not found."""
        found = await invoices(principal, invoice_id=invoice_id)
        if not found:
            raise NotFound(f"no invoice {invoice_id}")
        async with pool.connection() as conn:
            return with_payments(InvoiceWithLines(**found[0], lines=await lines_of(conn, invoice_id)))  # type: ignore[return-value]

    @router.post(f"{prefix}/invoices/drafts", summary="Draft the month's invoices")
    async def draft(principal: Caller, body: DraftIn) -> dict[str, Any]:
        """Drafts the month for every customer with something to bill (or one): idempotent, a draft is
        rebuilt, an issued invoice left alone."""
        month = month_of(body.month)
        async with pool.connection() as conn:
            if body.organization_id is None:
                ids = await invoicing.draft_month(conn, month, principal)
            else:
                found = await invoicing.draft(conn, body.organization_id, month, principal)
                ids = [] if found is None else [found]
        return {"month": body.month, "invoices": ids}

    @router.post(
        f"{prefix}/invoices/{{invoice_id}}/issue", responses={404: {}, 409: {}}, summary="Issue a draft invoice"
    )
    async def issue(principal: Caller, invoice_id: RowId) -> dict[str, Any]:
        """Gives the draft the next number of the year; from then on it never changes."""
        async with pool.connection() as conn:
            number = await invoicing.issue(conn, invoice_id, principal)
        return {"id": invoice_id, "number": number}

    @router.post(
        f"{prefix}/invoices/{{invoice_id}}/credit-note",
        responses={404: {}, 409: {}},
        summary="Credit an issued invoice",
    )
    async def credit(principal: Caller, invoice_id: RowId, body: CreditIn) -> dict[str, Any]:
        """Cancels an issued invoice with a numbered credit note; its bookings can then be drafted again."""
        async with pool.connection() as conn:
            note = await invoicing.credit(conn, invoice_id, principal, body.reason)
        return {"id": invoice_id, "credit_note": note}

    @router.get(f"{prefix}/usage", summary="List the month's measured usage")
    async def usage(principal: Caller, page: Paging, month: Month, organization_id: OrgId = None) -> Page[UsageOut]:
        """The measured usage of the month's bookings (recorded by the draft runs), by start."""
        first = month_of(month)
        params = {
            "start": datetime.combine(first, time(), zone),
            "end": datetime.combine(next_month(first), time(), zone),
            "organization_id": scope(principal, organization_id),
        }
        async with pool.connection() as conn:
            return await fetch_page(conn, USAGE, QUERIES.usage_of_month.sql, params, page, UsageOut)

    return router
