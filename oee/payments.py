"""Payments against issued invoices. An issued invoice never changes, so payments live in their own table;
what is paid and open, and the payment status, are computed from the payments that stand. A payment is
reversed with a reason (audited), never deleted, and a payment beyond the open amount is refused: an
overpayment is a conversation with the customer, not a negative balance."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from accounts import audit
from accounts.model import Principal
from common.errors import Conflict, NotFound
from common.money import ZERO, money
from common.rows import dict_rows
from oee.sqlfiles import QUERIES
from outbox.events import publish

Method = Literal["bank_transfer", "cash", "wechat", "alipay", "other"]
METHODS: tuple[str, ...] = get_args(Method)
PaymentStatus = Literal["issued", "partly_paid", "paid", "overdue", "credited"]


def payment_status(
    invoice: dict[str, Any], paid: Decimal, today: date, term_days: int, zone: ZoneInfo
) -> PaymentStatus | None:
    """None for drafts and credit notes (nothing is owed on them). Overdue: something is still open once
    the term after the issue day (the center's calendar) is over."""
    if invoice["status"] != "issued" or invoice["kind"] != "invoice":
        return None
    if invoice["credited_by"] is not None:
        return "credited"
    open_amount = invoice["total"] - paid
    if open_amount <= 0:
        return "paid"
    if invoice["issued_at"].astimezone(zone).date() + timedelta(days=term_days) < today:
        return "overdue"
    return "partly_paid" if paid > 0 else "issued"


class Payments:
    def __init__(self, zone: ZoneInfo, clock: Callable[[], datetime]) -> None:
        self.zone = zone
        self.clock = clock

    async def _payable(self, conn: AsyncConnection, invoice_id: int) -> tuple[dict[str, Any], Decimal]:
        """The invoice, locked so two payments at once cannot both fit the open amount, and its open amount."""
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(QUERIES.lock_invoice.sql, {"id": invoice_id})
            invoice = await cur.fetchone()
        if invoice is None:
            raise NotFound(f"no invoice {invoice_id}")
        if invoice["kind"] != "invoice" or invoice["status"] != "issued" or invoice["credited_by"] is not None:
            raise Conflict("payments are recorded against issued invoices that are not credited")
        paid = await QUERIES.paid_of_invoice(conn, invoice_id=invoice_id)
        return invoice, money(invoice["total"] - paid)

    async def record(
        self,
        conn: AsyncConnection,
        invoice_id: int,
        amount: Decimal,
        paid_on: date,
        method: Method,
        reference: str,
        principal: Principal,
    ) -> int:
        """Inside the caller's transaction when there is one (the bank import), its own otherwise."""
        now = self.clock()
        async with conn.transaction():
            invoice, open_amount = await self._payable(conn, invoice_id)
            if amount > open_amount:
                raise Conflict(
                    f"the payment of {amount} exceeds the open amount of {open_amount}", open_amount=str(open_amount)
                )
            payment_id: int = await QUERIES.insert_payment(
                conn,
                invoice_id=invoice_id,
                amount=amount,
                paid_on=paid_on,
                method=method,
                reference=reference,
                by=principal.id,
                now=now,
            )
            after = {"invoice_id": invoice_id, "amount": amount, "paid_on": paid_on, "method": method}
            await audit.record(conn, now, principal, "record", "payment", payment_id, after=after)
            payment = {**after, "id": payment_id, "reference": reference, "recorded_at": now}
            invoice_now = {
                "id": invoice_id,
                "number": invoice["number"],
                "organization_id": invoice["organization_id"],
                "total": invoice["total"],
                "open_amount": money(open_amount - amount),
            }
            await publish(conn, "payment.recorded", {"payment": payment, "invoice": invoice_now}, at=now)
        return payment_id

    async def reverse(self, conn: AsyncConnection, payment_id: int, principal: Principal, reason: str) -> None:
        now = self.clock()
        async with conn.transaction():
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(QUERIES.lock_payment.sql, {"id": payment_id})
                payment = await cur.fetchone()
            if payment is None:
                raise NotFound(f"no payment {payment_id}")
            if payment["reversed_at"] is not None:
                raise Conflict(f"payment {payment_id} is reversed already")
            await QUERIES.reverse_payment(conn, id=payment_id, now=now, by=principal.id, reason=reason)
            before = {"invoice_id": payment["invoice_id"], "amount": payment["amount"]}
            await audit.record(conn, now, principal, "reverse", "payment", payment_id, before=before, reason=reason)

    async def of_invoice(self, conn: AsyncConnection, invoice_id: int) -> list[dict[str, Any]]:
        return await dict_rows(conn, QUERIES.payments_of_invoice.sql, {"invoice_id": invoice_id})

    async def paid(self, conn: AsyncConnection, invoice_id: int) -> Decimal:
        return money(Decimal(await QUERIES.paid_of_invoice(conn, invoice_id=invoice_id)) + ZERO)
