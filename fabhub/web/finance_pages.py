"""Finance at month end: what the month bills per customer (before any draft exists), the month's invoice
drafts to review and issue, credit notes, and the exports (which the API serves; the session cookie reads
them). Issuing and crediting go through the same `Invoicing` as the API, so the numbering and the ledger rules
are the same; neither can be undone, so each shows what it will do and waits for a confirmation. After an
action the page names what happened (the numbers issued, the drafts made), read back from the database by the
ids the redirect carries, so a link cannot make the page claim something that did not happen. Receivables
show the same ageing as the API's."""

from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg_pool import AsyncConnectionPool
from starlette.datastructures import FormData

from accounts.model import Principal
from booking.catalogue import Catalogue
from common.errors import DomainError
from common.http import RowId
from common.money import money
from fabhub.web.i18n import Texts
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions, field
from oee import einvoice
from oee.invoices import Invoicing, documents, first_of_month, lines_of, next_month, parse_month
from oee.payments import METHODS, Payments, payment_status
from oee.receivables import ageing, totals


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

    async def finance_page(
        request: Request,
        user: Principal,
        month: date,
        status: int = 200,
        done: dict[str, str | None] | None = None,
        **extra: Any,
    ) -> Response:
        async with pool.connection() as conn:
            listed = await documents(conn, user, month=month)
            bills = await invoicing.preview(conn, month)
        texts = pages.texts(request)
        return pages.render(
            request,
            "finance.html",
            user,
            status=status,
            month=month,
            month_text=f"{month:%Y-%m}",
            previous=f"{first_of_month(month - timedelta(days=1)):%Y-%m}",
            following=f"{next_month(month):%Y-%m}",
            month_over=invoicing.month_over(month),
            documents=listed,
            drafts=[d for d in listed if d["status"] == "draft"],
            bills=bills,
            totals={k: sum((getattr(b, k) for b in bills), Decimal(0)) for k in ("before_subsidy", "subsidy", "due")},
            programs=sorted(catalogue.programs.values(), key=lambda p: p.id),
            notice=said(texts, listed, done or {}),
            **extra,
        )

    @router.get("/finance")
    async def finance(
        request: Request,
        user: Visitor,
        month: str | None = None,
        issued: str | None = None,
        drafted: str | None = None,
        credited: str | None = None,
        tax: str | None = None,
    ) -> Response:
        chosen = parse_month(month) or last_month()
        done = {"issued": issued, "drafted": drafted, "credited": credited, "tax": tax}
        return await finance_page(request, user, chosen, done=done)

    async def act(request: Request, user: Principal, month_text: str | None, work: Any) -> Response:
        """Runs `work(conn, month)`, which answers what it did as the redirect's query (ids, see `said`)."""
        month = parse_month(month_text) or last_month()
        try:
            async with pool.connection() as conn:
                done = await work(conn, month)
        except DomainError as exc:
            return await finance_page(
                request, user, month, status=exc.status, problems=[pages.texts(request).error(exc.detail)]
            )
        return RedirectResponse(f"/finance?{urlencode({'month': f'{month:%Y-%m}', **done})}", status_code=303)

    @router.post("/finance/drafts")
    async def draft(request: Request, user: Visitor) -> Response:
        form = await sessions.csrf.checked_form(request)

        async def work(conn: Any, month: date) -> dict[str, str]:
            made = await invoicing.draft_month(conn, month, user)
            drafts = {d["id"] for d in await documents(conn, user, month=month, status="draft")}
            return {"drafted": ",".join(str(i) for i in made if i in drafts)}

        return await act(request, user, field(form, "month"), work)

    async def confirm_issue(request: Request, user: Principal, month: date, drafts: list[dict[str, Any]]) -> Response:
        """The drafts to issue with their count, customers and total, and 确认开具 / 取消."""
        if not drafts:
            message = pages.texts(request)("Nothing to issue: there is no draft.")
            return await finance_page(request, user, month, status=409, problems=[message])
        return confirmation(request, user, month, "issue", drafts)

    def confirmation(
        request: Request, user: Principal, month: date, action: str, invoices: list[dict[str, Any]], **extra: Any
    ) -> Response:
        return pages.render(
            request,
            "finance_confirm.html",
            user,
            action=action,
            invoices=invoices,
            customers=len({i["organization_id"] for i in invoices}),
            total=sum((i["total"] for i in invoices), Decimal(0)),
            month_text=f"{month:%Y-%m}",
            **extra,
        )

    async def issue_confirmed(request: Request, user: Principal, month: date, ids: list[int]) -> Response:
        """Issues the confirmed drafts one by one (each its own number and transaction); a refusal stops there
        and the page names both what was issued and why the rest was not."""
        issued: list[int] = []
        try:
            async with pool.connection() as conn:
                for invoice_id in ids:
                    await invoicing.issue(conn, invoice_id, user)
                    issued.append(invoice_id)
        except DomainError as exc:
            problems = [pages.texts(request).error(exc.detail)]
            done: dict[str, str | None] = {"issued": ",".join(map(str, issued))}
            return await finance_page(request, user, month, status=exc.status, done=done, problems=problems)
        query = urlencode({"month": f"{month:%Y-%m}", "issued": ",".join(map(str, issued))})
        return RedirectResponse(f"/finance?{query}", status_code=303)

    @router.post("/finance/issue")
    async def issue_month(request: Request, user: Visitor) -> Response:
        """Every draft of the month: without `confirm=yes` the confirmation, with it the drafts it listed."""
        form = await sessions.csrf.checked_form(request)
        month = parse_month(field(form, "month")) or last_month()
        if field(form, "confirm") == "yes":
            return await issue_confirmed(request, user, month, ids_in(form, "invoice"))
        async with pool.connection() as conn:
            drafts = await documents(conn, user, month=month, status="draft")
        return await confirm_issue(request, user, month, drafts)

    @router.post("/finance/invoices/{invoice_id}/issue")
    async def issue(request: Request, user: Visitor, invoice_id: RowId) -> Response:
        """One draft: without `confirm=yes` the confirmation; a plain post never issues."""
        form = await sessions.csrf.checked_form(request)
        month = parse_month(field(form, "month")) or last_month()
        if field(form, "confirm") == "yes":
            return await issue_confirmed(request, user, month, [invoice_id])
        async with pool.connection() as conn:
            found = await documents(conn, user, invoice_id=invoice_id)
        return await confirm_issue(request, user, month, [d for d in found if d["status"] == "draft"])

    @router.post("/finance/invoices/{invoice_id}/credit-note")
    async def credit(request: Request, user: Visitor, invoice_id: RowId) -> Response:
        """Without `confirm=yes` the confirmation naming the invoice, its total and the reason."""
        form = await sessions.csrf.checked_form(request)
        reason = field(form, "reason", "")
        month = parse_month(field(form, "month")) or last_month()
        if len(reason) < 3 or len(reason) > 500 or "\x00" in reason:
            message = pages.texts(request)("Give a reason of 3 to 500 characters.")
            return await finance_page(request, user, month, status=422, problems=[message])
        if field(form, "confirm") != "yes":
            async with pool.connection() as conn:
                found = await documents(conn, user, invoice_id=invoice_id)
            if not found:
                return pages.not_found(request, user)
            return confirmation(request, user, month, "credit", found, reason=reason)

        async def work(conn: Any, _: date) -> dict[str, str]:
            return {"credited": str(await invoicing.credit(conn, invoice_id, user, reason))}

        return await act(request, user, field(form, "month"), work)

    @router.post("/finance/invoices/{invoice_id}/tax-number")
    async def tax_number(request: Request, user: Visitor, invoice_id: RowId) -> Response:
        form = await sessions.csrf.checked_form(request)
        number = field(form, "number", "").strip()

        async def work(conn: Any, _: date) -> dict[str, str]:
            await einvoice.record_tax_number(conn, invoice_id, number, user, clock())
            return {"tax": str(invoice_id)}

        return await act(request, user, field(form, "month"), work)

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
        texts = pages.texts(request)
        paid = extra.pop("paid", ())
        recorded = [p for p in paid_in if p["id"] in paid]
        notice = (
            texts("Recorded a payment of {amount} to {number}.").format(
                amount=texts.money(recorded[0]["amount"]), number=invoice["number"]
            )
            if recorded
            else None
        )
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
            notice=notice,
            **extra,
        )

    @router.get("/finance/invoices/{invoice_id}")
    async def invoice(request: Request, user: Visitor, invoice_id: RowId, paid: str | None = None) -> HTMLResponse:
        return await invoice_page(request, user, invoice_id, paid=ids_of(paid))

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
                payment_id = await payments.record(conn, invoice_id, amount, paid_on, method, reference, user)
        except DomainError as exc:
            return await invoice_page(request, user, invoice_id, status=exc.status, problems=[texts.error(exc.detail)])
        return RedirectResponse(f"/finance/invoices/{invoice_id}?paid={payment_id}", status_code=303)

    return router


def ids_of(text: str | None) -> list[int]:
    """Row ids a redirect's query names (`12,13`); anything else is left out."""
    return [int(x) for x in (text or "").split(",") if x.isdigit() and len(x) < 19]


def ids_in(form: FormData, name: str) -> list[int]:
    return ids_of(",".join(v for v in form.getlist(name) if isinstance(v, str)))


def said(texts: Texts, listed: list[dict[str, Any]], done: dict[str, str | None]) -> str | None:
    """The notice after an action, from the ids the redirect carries, looked up among the month's documents:
    "已开具 FH2027-000001", "已生成 3 张草稿", the credit note and what it cancels, a tax invoice number."""
    by_id = {d["id"]: d for d in listed}
    numbers = [by_id[i]["number"] for i in ids_of(done.get("issued")) if i in by_id and by_id[i]["number"]]
    if numbers:
        return texts("Issued {numbers}.").format(numbers=texts.listing(numbers))
    if done.get("drafted") is not None:
        drafts = [i for i in ids_of(done["drafted"]) if i in by_id and by_id[i]["status"] == "draft"]
        if not drafts:
            return texts("No draft made: no finished booking waits to be billed.")
        return texts("Drafted {count} invoice(s).").format(count=len(drafts))
    notes = [by_id[i] for i in ids_of(done.get("credited")) if i in by_id and by_id[i]["kind"] == "credit_note"]
    if notes:
        cancelled = by_id.get(notes[0]["credits"], {}).get("number", "")
        return texts("Issued credit note {note} for {invoice}.").format(note=notes[0]["number"], invoice=cancelled)
    taxed = [by_id[i] for i in ids_of(done.get("tax")) if i in by_id and by_id[i]["tax_number"]]
    if taxed:
        return texts("Recorded tax invoice no. {tax} on {number}.").format(
            tax=taxed[0]["tax_number"], number=taxed[0]["number"]
        )
    return None
