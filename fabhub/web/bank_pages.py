"""Bank statements for finance staff: upload the bank's CSV, see which rows became payments (in full or in
part of an invoice) and review the rest, assigning each to an invoice or setting it aside with a reason. All
of it goes through `oee.bank_import.BankImport`, as the API does, so matching, the overpayment rule and the
duplicate check are the same; a bad file is shown as its problems, line by line, and imports nothing."""

from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg_pool import AsyncConnectionPool
from starlette.datastructures import UploadFile

from accounts.model import Principal
from common.errors import DomainError
from common.http import RowId
from fabhub.web.i18n import Texts
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions, field
from oee.bank_import import MAX_BYTES, NUMBER, BankImport
from oee.receivables import open_invoices

UPLOAD_LIMIT = MAX_BYTES + 1  # read one byte more than the import takes, so it says the file is too large


def make_router(
    pages: Pages, sessions: WebSessions, pool: AsyncConnectionPool, bank: BankImport, zone: ZoneInfo, clock: Any
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py

    async def list_page(request: Request, user: Principal, status: int = 200, **extra: Any) -> HTMLResponse:
        async with pool.connection() as conn:
            statements = await bank.statements(conn)
        return pages.render(request, "bank_statements.html", user, status=status, statements=statements, **extra)

    @router.get("/finance/bank-statements")
    async def statements(request: Request, user: Visitor) -> HTMLResponse:
        return await list_page(request, user)

    @router.post("/finance/bank-statements")
    async def upload(request: Request, user: Visitor) -> Response:
        """Imports the file; the statement's page then shows what became of each row."""
        form = await sessions.csrf.checked_form(request)
        texts = pages.texts(request)
        sent = form.get("file")
        data = await sent.read(UPLOAD_LIMIT) if isinstance(sent, UploadFile) and sent.filename else None
        if data is None or not data.strip():
            message = texts("Choose a bank statement CSV file.") if data is None else texts("The file is empty.")
            return await list_page(request, user, status=422, problems=[message], problem_form="upload")
        assert isinstance(sent, UploadFile)
        try:
            async with pool.connection() as conn:
                done = await bank.load(conn, sent.filename or "statement.csv", data, user)
        except DomainError as exc:
            problems = [texts.error(p) for p in exc.extra.get("problems", [exc.detail])]
            return await list_page(request, user, status=exc.status, problems=problems, problem_form="upload")
        query = f"imported=1&duplicates={done['duplicates']}"
        return RedirectResponse(f"/finance/bank-statements/{done['id']}?{query}", status_code=303)

    async def statement_page(
        request: Request,
        user: Principal,
        statement_id: int,
        status: int = 200,
        done: dict[str, str | None] | None = None,
        **extra: Any,
    ) -> HTMLResponse:
        today = clock().astimezone(zone).date()
        async with pool.connection() as conn:
            found = await bank.statements(conn, statement_id=statement_id)
            if not found:
                return pages.not_found(request, user)
            rows = await bank.rows(conn, statement_id)
            payable = await open_invoices(conn, today, zone)
        for row in rows:
            row["result"] = result_of(row)
            row["suggested"] = suggestion(row, payable) if row["status"] == "unmatched" else None
        counts = {name: sum(1 for r in rows if r["result"] == name) for name in RESULTS}
        review = [r for r in rows if r["status"] == "unmatched"]
        if extra.get("problem_form") not in {f"row-{r['id']}" for r in review}:
            extra["problem_form"] = None  # the row is reviewed already: its problem goes to the top of the page
        texts = pages.texts(request)
        return pages.render(
            request,
            "bank_statement.html",
            user,
            status=status,
            statement=found[0],
            rows=rows,
            review=review,
            counts=counts,
            payable=payable,
            notice=said(texts, found[0], rows, counts, done or {}),
            **extra,
        )

    @router.get("/finance/bank-statements/{statement_id}")
    async def statement(
        request: Request,
        user: Visitor,
        statement_id: RowId,
        imported: str | None = None,
        duplicates: str | None = None,
        assigned: str | None = None,
        dismissed: str | None = None,
    ) -> HTMLResponse:
        done = {"imported": imported, "duplicates": duplicates, "assigned": assigned, "dismissed": dismissed}
        return await statement_page(request, user, statement_id, done=done)

    async def review(request: Request, user: Principal, row_id: int, form: Any, work: Any, outcome: str) -> Response:
        """Runs the review step `work(conn)` on a row of the statement the form came from, then shows that
        statement again, naming the row; a refusal (say, more than the invoice's open amount) is shown there."""
        statement_text = field(form, "statement", "")
        statement_id = int(statement_text) if statement_text.isdigit() and len(statement_text) < 19 else None
        texts = pages.texts(request)
        try:
            async with pool.connection() as conn:
                await work(conn, texts)
        except DomainError as exc:
            problems = [texts.error(p) for p in exc.extra.get("problems", [exc.detail])]
            if statement_id is None:
                return await list_page(request, user, status=exc.status, problems=problems)
            form_name = f"row-{row_id}"
            return await statement_page(
                request, user, statement_id, status=exc.status, problems=problems, problem_form=form_name
            )
        where = f"/finance/bank-statements/{statement_id}" if statement_id else "/finance/bank-statements"
        return RedirectResponse(f"{where}?{outcome}={row_id}", status_code=303)

    @router.post("/finance/bank-statements/rows/{row_id}/assign")
    async def assign(request: Request, user: Visitor, row_id: RowId) -> Response:
        """Records an unmatched row as a payment of the invoice chosen."""
        form = await sessions.csrf.checked_form(request)
        chosen = field(form, "invoice_id", "")

        async def work(conn: Any, texts: Texts) -> None:
            if not chosen.isdigit() or not 0 < int(chosen) < 2**63:
                raise Refused(texts("Choose the invoice this payment belongs to."))
            await bank.assign(conn, row_id, int(chosen), user)

        return await review(request, user, row_id, form, work, "assigned")

    @router.post("/finance/bank-statements/rows/{row_id}/dismiss")
    async def dismiss(request: Request, user: Visitor, row_id: RowId) -> Response:
        """Sets an unmatched row aside (not a customer's payment), with the reason; it records nothing."""
        form = await sessions.csrf.checked_form(request)
        reason = field(form, "reason", "")

        async def work(conn: Any, texts: Texts) -> None:
            if not 2 <= len(reason) <= 500 or not reason.isprintable():
                raise Refused(texts("Give a reason of 2 to 500 characters."))
            await bank.dismiss(conn, row_id, reason, user)

        return await review(request, user, row_id, form, work, "dismissed")

    return router


class Refused(DomainError):
    """A review form's field is missing or wrong: shown on the statement's page, already in the reader's
    language."""

    status = 422


# What became of a row, as the page groups them: a payment that settled its invoice, one that left part of it
# open, a row waiting for review, assigned by hand, or set aside.
RESULTS = ("matched", "partly_matched", "unmatched", "assigned", "dismissed")


def result_of(row: dict[str, Any]) -> str:
    if row["status"] == "matched" and row["invoice_open"] is not None and row["invoice_open"] > 0:
        return "partly_matched"
    return str(row["status"])


def suggestion(row: dict[str, Any], payable: list[dict[str, Any]]) -> int | None:
    """The open invoice a row most likely pays: the one its reference names, else the only one whose open
    amount is the row's amount. Finance still confirms it."""
    named = set(NUMBER.findall(row["reference"].upper()))
    by_number = [i["id"] for i in payable if i["number"] in named]
    same_amount = [i["id"] for i in payable if i["open_amount"] == row["amount"]]
    if by_number:
        return int(by_number[0])
    return int(same_amount[0]) if len(same_amount) == 1 else None


def said(
    texts: Texts,
    statement: dict[str, Any],
    rows: list[dict[str, Any]],
    counts: dict[str, int],
    done: dict[str, str | None],
) -> str | None:
    """The notice after an upload or a review step, read from the statement's rows by the ids the redirect
    carries: what the import recorded, the payment a row became, the row set aside."""
    by_id = {str(r["id"]): r for r in rows}
    row = by_id.get(done.get("assigned") or "")
    if row is not None and row["status"] == "assigned":
        return texts("Recorded a payment of {amount} to {number} (line {line}).").format(
            amount=texts.money(row["amount"]), number=row["invoice_number"], line=row["line"]
        )
    row = by_id.get(done.get("dismissed") or "")
    if row is not None and row["status"] == "dismissed":
        return texts("Set line {line} ({amount}) aside: {reason}").format(
            line=row["line"], amount=texts.money(row["amount"]), reason=row["reason"]
        )
    if done.get("imported"):
        duplicates = done.get("duplicates") or "0"
        return texts(
            "Imported {file}: {paid} row(s) recorded as payments ({partly} of them in part), {review} to review,"
            " {duplicates} imported before."
        ).format(
            file=statement["filename"],
            paid=counts["matched"] + counts["partly_matched"],
            partly=counts["partly_matched"],
            review=counts["unmatched"],
            duplicates=duplicates if duplicates.isdigit() else "0",
        )
    return None
