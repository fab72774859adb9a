"""HTTP routes for payments, receivables and bank statements. Finance and admins record, reverse and
import; a customer reads its own issued invoices' payments. Problems answer as problem details: an
overpayment is a 409 carrying the open amount, a bad statement a 422 naming its lines."""

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from accounts.auth import Authenticator
from accounts.model import Principal
from common.errors import NotFound
from common.http import RowId, Text
from common.paging import Key, Listing, Page, Paging, fetch_page, page_of
from common.problems import ListedProblems, ProblemDetails
from common.times import Stamp
from oee.bank_import import BankImport
from oee.invoices import documents
from oee.payments import Method, Payments, PaymentStatus, payment_status
from oee.receivables import Receivable, ageing, ageing_csv, totals
from oee.sqlfiles import QUERIES

PAYMENTS = Listing("payments", (Key("paid_on", "date"), Key("id", "int")))
RECEIVABLES = Listing("receivables", (Key("organization_name", "text"), Key("organization_id", "int")), None)
BANK_ROWS = Listing("bank_rows", (Key("line", "int"), Key("id", "int")), None)
Day = Annotated[date, Field(ge=date(2000, 1, 1), le=date(2199, 12, 31))]


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Decimal = Field(gt=0, lt=Decimal("1e10"), decimal_places=2, description="CNY, at most the open amount")
    paid_on: Day
    method: Method
    reference: Text = Field("", max_length=200)


class PaymentOut(BaseModel):
    id: int
    invoice_id: int
    amount: Decimal
    paid_on: date
    method: str
    reference: str
    recorded_by: int
    recorded_at: Stamp
    reversed_at: Stamp | None
    reversed_by: int | None
    reversal_reason: str | None
    updated_at: Stamp


class InvoicePayments(BaseModel):
    invoice_id: int
    total: Decimal
    paid: Decimal
    open_amount: Decimal
    payment_status: PaymentStatus | None
    payments: Page[PaymentOut]


class OverpaymentProblem(ProblemDetails):
    """409 when a payment is more than the invoice's open amount."""

    open_amount: str = Field(pattern=r"^\d+\.\d{2}$", examples=["1200.00"], description="CNY, what is still open")


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Text = Field(min_length=2, max_length=500)


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    invoice_id: int = Field(gt=0, le=2**63 - 1)


class ReceivableOut(BaseModel):
    organization_id: int
    organization_name: str
    invoices: int
    days_0_30: Decimal
    days_31_60: Decimal
    days_61_90: Decimal
    days_over_90: Decimal
    total: Decimal


class Receivables(BaseModel):
    """Open amounts aged by days since the issue day (center's calendar), as of `as_of`."""

    as_of: date
    customers: Page[ReceivableOut]
    totals: dict[str, Decimal]


class BankRowOut(BaseModel):
    id: int
    statement_id: int
    line: int
    booked_on: date
    amount: Decimal
    reference: str
    payer: str
    status: str = Field(description="matched, unmatched (to review), assigned or dismissed")
    payment_id: int | None
    invoice_id: int | None
    reason: str | None


class ImportOut(BaseModel):
    id: int
    matched: int
    unmatched: int
    duplicates: int = Field(description="rows imported before (the same file again): recorded nothing")


def make_router(
    pool: AsyncConnectionPool,
    auth: Authenticator,
    payments: Payments,
    bank: BankImport,
    term_days: int,
    zone: ZoneInfo,
    clock: Callable[[], datetime],
    prefix: str,
) -> APIRouter:
    router = APIRouter(tags=["payments"])
    Caller = Annotated[Principal, Depends(auth.caller)]  # roles: fabhub/policy.py

    @router.post(
        f"{prefix}/invoices/{{invoice_id}}/payments",
        responses={404: {}, 409: {"model": OverpaymentProblem}},
        status_code=201,
        summary="Record a payment of an invoice",
    )
    async def record(principal: Caller, invoice_id: RowId, body: PaymentIn) -> dict[str, int]:
        """Record a payment (full or partial) of an issued invoice; more than the open amount is a 409."""
        async with pool.connection() as conn:
            payment_id = await payments.record(
                conn, invoice_id, body.amount, body.paid_on, body.method, body.reference, principal
            )
        return {"id": payment_id}

    @router.get(f"{prefix}/invoices/{{invoice_id}}/payments", responses={404: {}}, summary="List an invoice's payments")
    async def of_invoice(principal: Caller, invoice_id: RowId, page: Paging) -> InvoicePayments:
        """An invoice's payments with what is paid and open and its payment status."""
        async with pool.connection() as conn:
            found = await documents(conn, principal, invoice_id=invoice_id)
            if not found:
                raise NotFound(f"no invoice {invoice_id}")
            invoice = found[0]
            paid = await payments.paid(conn, invoice_id)
            listed = await fetch_page(
                conn, PAYMENTS, QUERIES.payments_of_invoice.sql, {"invoice_id": invoice_id}, page, PaymentOut
            )
        today = clock().astimezone(zone).date()
        owed = invoice["kind"] == "invoice" and invoice["status"] == "issued" and invoice["credited_by"] is None
        return InvoicePayments(
            invoice_id=invoice_id,
            total=invoice["total"],
            paid=paid,
            open_amount=invoice["total"] - paid if owed else Decimal("0.00"),
            payment_status=payment_status(invoice, paid, today, term_days, zone),
            payments=listed,
        )

    @router.post(f"{prefix}/payments/{{payment_id}}/reverse", responses={404: {}, 409: {}}, summary="Reverse a payment")
    async def reverse(principal: Caller, payment_id: RowId, body: ReasonIn) -> dict[str, Any]:
        """Reverse a payment recorded in error, with a reason; it stays listed as reversed."""
        async with pool.connection() as conn:
            await payments.reverse(conn, payment_id, principal, body.reason)
        return {"id": payment_id, "reversed": True}

    async def aged(as_of: date | None) -> tuple[date, list[Receivable]]:
        day = as_of or clock().astimezone(zone).date()
        async with pool.connection() as conn:
            return day, await ageing(conn, day, zone)

    AsOf = Annotated[date | None, Query(ge=date(2000, 1, 1), le=date(2199, 12, 31), description="default: today")]

    @router.get(f"{prefix}/receivables", summary="List open amounts by age")
    async def receivables(principal: Caller, page: Paging, as_of: AsOf = None) -> Receivables:
        """Open amounts per customer in ageing buckets (0-30, 31-60, 61-90, over 90 days since issue)."""
        day, rows = await aged(as_of)
        listed = page_of(RECEIVABLES, [ReceivableOut(**vars_of(r)) for r in rows], page)
        return Receivables(as_of=day, customers=listed, totals=totals(rows))

    @router.get(f"{prefix}/receivables.csv", response_class=Response, summary="Download the receivables as CSV")
    async def receivables_csv(principal: Caller, as_of: AsOf = None) -> Response:
        """The ageing table as CSV (UTF-8 with BOM, for Excel), with a totals line."""
        day, rows = await aged(as_of)
        return Response(
            ageing_csv(rows, day),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="receivables-{day}.csv"'},
        )

    @router.post(
        f"{prefix}/bank-statements",
        responses={422: {"model": ListedProblems}},
        status_code=201,
        summary="Import a bank statement",
    )
    async def import_statement(principal: Caller, file: Annotated[UploadFile, File()]) -> ImportOut:
        """Import a bank statement CSV (date, amount, reference/附言, payer; UTF-8 or GBK): rows naming an
        invoice number with an amount that fits are recorded as payments, the rest wait for review."""
        data = await file.read()
        async with pool.connection() as conn:
            return ImportOut(**await bank.load(conn, file.filename or "statement.csv", data, principal))

    @router.get(
        f"{prefix}/bank-statements/{{statement_id}}", responses={404: {}}, summary="Show an imported bank statement"
    )
    async def statement(principal: Caller, statement_id: RowId, page: Paging) -> Page[BankRowOut]:
        """A statement's rows with their match status, by line."""
        async with pool.connection() as conn:
            rows = await bank.rows(conn, statement_id)
        return page_of(BANK_ROWS, [BankRowOut(**r) for r in rows], page)

    @router.post(
        f"{prefix}/bank-statements/rows/{{row_id}}/assign",
        responses={404: {}, 409: {"model": OverpaymentProblem}},
        summary="Assign a bank statement row to an invoice",
    )
    async def assign(principal: Caller, row_id: RowId, body: AssignIn) -> dict[str, int]:
        """After review: record an unmatched row as a payment of the chosen invoice."""
        async with pool.connection() as conn:
            payment_id = await bank.assign(conn, row_id, body.invoice_id, principal)
        return {"id": row_id, "payment_id": payment_id}

    @router.post(
        f"{prefix}/bank-statements/rows/{{row_id}}/dismiss",
        responses={404: {}, 409: {}},
        summary="Dismiss a bank statement row",
    )
    async def dismiss(principal: Caller, row_id: RowId, body: ReasonIn) -> dict[str, Any]:
        """After review: an unmatched row that is not a customer's payment, with the reason."""
        async with pool.connection() as conn:
            await bank.dismiss(conn, row_id, body.reason, principal)
        return {"id": row_id, "dismissed": True}

    return router


def vars_of(row: Receivable) -> dict[str, Any]:
    return {name: getattr(row, name) for name in Receivable.__slots__}
