"""Finance at month end: usage per customer, the month's invoice drafts to review and issue, credit notes,
and the exports (which the API serves; the session cookie reads them). Issuing and crediting go through
the same `Invoicing` as the API, so the numbering and the ledger rules are the same. Receivables show the
same ageing as the API's."""

from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from accounts.model import Principal
from booking.catalogue import Catalogue
from common.errors import DomainError
from common.http import RowId
from common.money import money
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions, field
from oee import einvoice
from oee.invoices import Invoicing, documents, first_of_month, lines_of, next_month, parse_month
from oee.payments import METHODS, Payments, payment_status
from oee.receivables import ageing, totals
from oee.sqlfiles import QUERIES


def make_router(
    pages: Pages,
    sessions: WebSessions,
    pool: AsyncConnectionPool,
    invoicing: Invoicing,
    catalogue: Catalogue,
    clock: Any,
    payments: Payments,
    term_days: int,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    zone = pages.zone
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py

    def last_month() -> date:
        return first_of_month(first_of_month(clock().astimezone(zone).date()) - timedelta(days=1))

    async def finance_page(request: Request, user: Principal, month: date, status: int = 200, **extra: Any) -> Response:
        start = datetime.combine(month, time(), zone)
        end = datetime.combine(next_month(month), time(), zone)
        async with pool.connection() as conn:
            listed = await documents(conn, user, month=month)
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(QUERIES.usage_of_month.sql, {"start": start, "end": end, "organization_id": None})
                usage = await cur.fetchall()
        customers: dict[int, dict[str, Any]] = {}
        for u in usage:
            c = customers.setdefault(
                u["organization_id"], {"name": u["organization_name"], "bookings": 0, "booked_s": 0.0, "running_s": 0.0}
            )
            c["bookings"] += 1
            c["booked_s"] += u["booked_s"]
            c["running_s"] += u["running_s"]
        month_over = invoicing.month_over(month)
        return pages.render(
            request,
            "finance.html",
            user,
            status=status,
            month=month,
            month_text=f"{month:%Y-%m}",
            previous=f"{first_of_month(month - timedelta(days=1)):%Y-%m}",
            following=f"{next_month(month):%Y-%m}",
            month_over=month_over,
            documents=listed,
            customers=sorted(customers.values(), key=lambda c: c["name"]),
            programs=sorted(catalogue.programs.values(), key=lambda p: p.id),
            **extra,
        )

    @router.get("/finance")
    async def finance(request: Request, user: Visitor, month: str | None = None, done: str | None = None) -> Response:
        chosen = parse_month(month) or last_month()
        notice = pages.texts(request)("Saved.") if done else None
        return await finance_page(request, user, chosen, notice=notice)

    async def act(request: Request, user: Principal, month_text: str | None, work: Any) -> Response:
        month = parse_month(month_text) or last_month()
        try:
            async with pool.connection() as conn:
                await work(conn, month)
        except DomainError as exc:
            return await finance_page(
                request, user, month, status=exc.status, problems=[pages.texts(request).error(exc.detail)]
            )
        return RedirectResponse(f"/finance?month={month:%Y-%m}&done=1", status_code=303)

    @router.post("/finance/drafts")
    async def draft(request: Request, user: Visitor) -> Response:
        form = await sessions.csrf.checked_form(request)

        async def work(conn: Any, month: date) -> None:
            await invoicing.draft_month(conn, month, user)

        return await act(request, user, field(form, "month"), work)

    @router.post("/finance/invoices/{invoice_id}/issue")
    async def issue(request: Request, user: Visitor, invoice_id: RowId) -> Response:
        form = await sessions.csrf.checked_form(request)
        return await act(request, user, field(form, "month"), lambda conn, _: invoicing.issue(conn, invoice_id, user))

    @router.post("/finance/invoices/{invoice_id}/credit-note")
    async def credit(request: Request, user: Visitor, invoice_id: RowId) -> Response:
        form = await sessions.csrf.checked_form(request)
        reason = field(form, "reason", "")
        if len(reason) < 3 or len(reason) > 500 or "\x00" in reason:
            month = parse_month(field(form, "month")) or last_month()
            message = pages.texts(request)("Give a reason of 3 to 500 characters.")
            return await finance_page(request, user, month, status=422, problems=[message])
        return await act(
            request, user, field(form, "month"), lambda conn, _: invoicing.credit(conn, invoice_id, user, reason)
        )

    @router.post("/finance/invoices/{invoice_id}/tax-number")
    async def tax_number(request: Request, user: Visitor, invoice_id: RowId) -> Response:
        form = await sessions.csrf.checked_form(request)
        number = field(form, "number", "").strip()
        return await act(
            request,
            user,
            field(form, "month"),
            lambda conn, _: einvoice.record_tax_number(conn, invoice_id, number, user, clock()),
        )

    @router.get("/finance/receivables")
    async def receivables(request: Request, user: Visitor, as_of: str | None = None) -> Response:
        """The ageing table as of a day (today when absent or not a date), with the CSV the API serves."""
        try:
            day = date.fromisoformat(as_of or "")
        except ValueError:
            day = clock().astimezone(zone).date()
        async with pool.connection() as conn:
            rows = await ageing(conn, day, zone)
        return pages.render(request, "receivables.html", user, as_of=day, rows=rows, totals=totals(rows))

    async def invoice_page(
        request: Request, user: Principal, invoice_id: int, status: int = 200, **extra: Any
    ) -> HTMLResponse:
        async with pool.connection() as conn:
            found = await documents(conn, user, invoice_id=invoice_id)
            lines = await lines_of(conn, invoice_id)
            paid_in = await payments.of_invoice(conn, invoice_id)
        if not found:
            return pages.not_found(request, user)
        invoice = found[0]
        today = clock().astimezone(zone).date()
        state = payment_status(invoice, invoice["paid"], today, term_days, zone)
        return pages.render(
            request,
            "invoice.html",
            user,
            status=status,
            invoice=invoice,
            lines=lines,
            payments=paid_in,
            payment_status=state,
            open_amount=invoice["total"] - invoice["paid"],
            today=today,
            **extra,
        )

    @router.get("/finance/invoices/{invoice_id}")
    async def invoice(request: Request, user: Visitor, invoice_id: RowId, done: str | None = None) -> HTMLResponse:
        notice = pages.texts(request)("Payment recorded.") if done else None
        return await invoice_page(request, user, invoice_id, notice=notice)

    @router.post("/finance/invoices/{invoice_id}/payments")
    async def record_payment(request: Request, user: Visitor, invoice_id: RowId) -> Response:
        """The API's payment rules through a form; a bad field or a refused payment shows the page again."""
        form = await sessions.csrf.checked_form(request)
        texts = pages.texts(request)
        try:
            amount = money(Decimal(field(form, "amount", "")))
            paid_on = date.fromisoformat(field(form, "paid_on", ""))
            method = field(form, "method", "")
            reference = field(form, "reference", "")
            if amount <= 0 or amount >= Decimal("1e10") or method not in METHODS or len(reference) > 200:
                raise ValueError(method)
            if "\x00" in reference or not date(2000, 1, 1) <= paid_on <= date(2199, 12, 31):
                raise ValueError(reference)
        except (ValueError, InvalidOperation):
            message = texts("Give an amount above 0, a date and a method.")
            return await invoice_page(request, user, invoice_id, status=422, problems=[message])
        try:
            async with pool.connection() as conn:
                await payments.record(conn, invoice_id, amount, paid_on, method, reference, user)
        except DomainError as exc:
            return await invoice_page(request, user, invoice_id, status=exc.status, problems=[texts.error(exc.detail)])
        return RedirectResponse(f"/finance/invoices/{invoice_id}?done=1", status_code=303)

    return router
