"""Invoices per customer and month: a draft run (idempotent: a draft is rebuilt, an issued invoice left
alone), issuing with a gapless number per year assigned in the issuing transaction, and correction only
through a credit note. Subsidies are granted line by line in date order from the ledger, whose cap row is
locked while it is read and added to, so a cap is never exceeded, not even by two runs at once.

The subsidy rule (what the booking pages tell the customer, next to the quoted subsidy shown as an estimate):
the invoice grants the booking's program share of the amount actually billed (the usage line, by the class's
billing basis from the measured usage), within what is left of the program's annual cap for the customer when
the invoice is drafted. The quote cannot fix it: the metered and overage bases bill what the machine measured,
and the cap is shared with every other booking of the year, which the ledger grants in date order. A booking
quoted without a subsidy gets none.

Usage comes from the booking's frozen results (oee.results): a draft freezes a completed booking that is due
and not frozen yet, leaves one whose overrun is still open for the next run, and never measures a frozen
booking again, so drafting again bills the same usage, whatever raw-data retention dropped meanwhile."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from accounts import audit
from accounts.model import Principal
from common.errors import Conflict, Invalid, NotFound
from common.rows import dict_rows
from oee import results
from oee.charges import money, usage_charge, vat_of
from oee.service import OeeService
from oee.sqlfiles import QUERIES
from outbox.events import publish

ZERO = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class Line:
    booking_id: int | None
    kind: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal
    subsidy_program: str | None = None


@dataclass(frozen=True, slots=True)
class Bill:
    """A customer's month as a draft would bill it; `invoice` is the live invoice (draft or issued) if any."""

    organization_id: int
    organization_name: str
    bookings: int
    hours: Decimal  # billed hours of the usage lines
    before_subsidy: Decimal
    subsidy: Decimal
    due: Decimal
    invoice: dict[str, Any] | None


def first_of_month(day: date) -> date:
    return day.replace(day=1)


def next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def parse_month(text: str | None) -> date | None:
    """`YYYY-MM` in the years 2000-2199, as its first day; None for anything else."""
    found = re.fullmatch(r"(20[0-9]{2}|21[0-9]{2})-(0[1-9]|1[0-2])", text or "")
    return date(int(found[1]), int(found[2]), 1) if found else None


def document_filters(
    principal: Principal,
    *,
    month: date | None = None,
    organization_id: int | None = None,
    status: str | None = None,
    invoice_id: int | None = None,
) -> dict[str, Any]:
    """The parameters of `invoices` for what the principal may read: staff every invoice and credit note, a
    customer its own organization's issued ones (drafts are the center's work in progress)."""
    if not principal.is_staff:
        if organization_id not in (None, principal.organization_id):
            raise NotFound(f"no organization {organization_id}")
        organization_id, status = principal.organization_id, "issued"
    return {"month": month, "organization_id": organization_id, "status": status, "id": invoice_id}


async def documents(conn: AsyncConnection, principal: Principal, **filters: Any) -> list[dict[str, Any]]:
    """Invoices and credit notes the principal may read, newest month first."""
    return await dict_rows(conn, QUERIES.invoices.sql, document_filters(principal, **filters))


async def lines_of(conn: AsyncConnection, invoice_id: int) -> list[dict[str, Any]]:
    return await dict_rows(conn, QUERIES.invoice_lines.sql, {"invoice_id": invoice_id})


async def subsidy_use(
    conn: AsyncConnection, organization_id: int, programs: list[str], year: int
) -> list[dict[str, Any]]:
    """Per program the customer is eligible for or has drawn on: its annual cap and what the ledger granted in
    the calendar year, drafts included (a draft holds its share of the cap until it is replaced or credited)."""
    params = {"organization_id": organization_id, "programs": programs, "year": year}
    return await dict_rows(conn, QUERIES.subsidy_use_of_year.sql, params)


class Invoicing:
    def __init__(self, oee: OeeService, vat_rate: Decimal, zone: ZoneInfo, clock: Callable[[], datetime]) -> None:
        self.oee = oee
        self.vat_rate = vat_rate
        self.zone = zone
        self.clock = clock

    def _until(self, month: date) -> datetime:
        return datetime.combine(next_month(month), time(), self.zone)

    def month_over(self, month: date) -> bool:
        return self._until(first_of_month(month)) <= self.clock()

    def _check_over(self, month: date) -> None:
        if not self.month_over(month):
            raise Invalid(f"{month:%Y-%m} is not over yet in the center's calendar")

    async def customers_to_bill(self, conn: AsyncConnection, month: date) -> list[int]:
        return [row[0] async for row in QUERIES.customers_to_bill(conn, until=self._until(month))]

    async def draft(
        self, conn: AsyncConnection, organization_id: int, month: date, actor: Principal | str
    ) -> int | None:
        """Builds (or rebuilds) the customer's draft for `month` in its own transaction. Returns its id, the
        issued invoice's id when the month is already issued (left as it is), or None with nothing to bill."""
        now = self.clock()
        month = first_of_month(month)
        self._check_over(month)
        async with conn.transaction():
            await QUERIES.lock_invoicing(conn, organization_id=organization_id)
            live = await QUERIES.live_invoice(conn, organization_id=organization_id, month=month)
            if live is not None and live[1] == "issued":
                return live[0]
            if live is not None:
                await QUERIES.delete_draft(conn, id=live[0])  # its lines and ledger entries go with it
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(
                    QUERIES.bookings_to_bill.sql, {"organization_id": organization_id, "until": self._until(month)}
                )
                found = await cur.fetchall()
            # Usage first: a completed booking whose overrun is still open waits for the next run.
            bookings, usage = [], {}
            for booking in found:
                if booking["status"] == "completed":
                    of_customer = {**booking, "organization_id": organization_id}
                    measured = await results.freeze(conn, self.oee, of_customer, now)
                    if measured is None:
                        continue
                    usage[booking["id"]] = measured
                bookings.append(booking)
            if not bookings:
                return None
            invoice_id = await QUERIES.insert_invoice(
                conn,
                kind="invoice",
                organization_id=organization_id,
                month=month,
                vat_rate=self.vat_rate,
                credits=None,
                reason=None,
                now=now,
            )
            position = 0
            total = ZERO
            for booking in bookings:
                for line in await self._lines(conn, booking, organization_id, usage.get(booking["id"])):
                    position += 1
                    line_id = await QUERIES.insert_line(
                        conn,
                        invoice_id=invoice_id,
                        position=position,
                        booking_id=line.booking_id,
                        kind=line.kind,
                        description=line.description,
                        quantity=line.quantity,
                        unit=line.unit,
                        unit_price=line.unit_price,
                        amount=line.amount,
                        subsidy_program=line.subsidy_program,
                    )
                    if line.kind == "subsidy":
                        await QUERIES.record_subsidy(
                            conn,
                            organization_id=organization_id,
                            program_id=line.subsidy_program,
                            year=booking["start"].astimezone(self.zone).year,
                            invoice_line_id=line_id,
                            booking_id=line.booking_id,
                            amount=-line.amount,
                            now=now,
                        )
                    total += line.amount
            await QUERIES.set_totals(conn, id=invoice_id, total=total, vat=vat_of(total, self.vat_rate))
            await audit.record(
                conn, now, actor, "draft", "invoice", invoice_id, after={"total": total, "lines": position}
            )
        return invoice_id

    async def _lines(
        self, conn: AsyncConnection, booking: dict[str, Any], organization_id: int, usage: dict[str, Any] | None
    ) -> list[Line]:
        start, end = booking["start"], booking["end"]
        booked_end = booking.get("booked_end") or end
        when = f"{start.astimezone(self.zone):%Y-%m-%d %H:%M}–{booked_end.astimezone(self.zone):%H:%M}"
        if booked_end != end:
            when += f", ended {end.astimezone(self.zone):%H:%M}"
        what = f"{booking['device_name']} {when}"
        if booking["reference"]:
            what += f" [{booking['reference']}]"
        if booking["status"] == "no_show":
            return [
                Line(
                    booking["id"], "no_show", f"No-show: {what}", Decimal(1), "booking", booking["fee"], booking["fee"]
                )
            ]
        if booking["status"] == "cancelled":
            fee = booking["fee"]
            return [
                Line(booking["id"], "late_cancellation", f"Late cancellation: {what}", Decimal(1), "booking", fee, fee)
            ]
        assert usage is not None, booking["id"]  # frozen by the draft for every completed booking it bills
        charge = usage_charge(
            booking["billing_basis"],
            booking["hourly_rate"],
            usage["booked_s"],
            usage["running_s"],
            usage["overrun_s"],
            booking["metered_minimum_share"],
        )
        basis = {"booked": "booked time", "metered": "measured running time", "overage": "booked time and overrun"}
        lines = [
            Line(
                booking["id"],
                "usage",
                f"{what} ({basis[charge.basis]})",
                charge.hours,
                "h",
                booking["hourly_rate"],
                charge.amount,
            )
        ]
        program = booking["subsidy_program"]
        if program is not None and charge.amount > 0:
            granted = await self._grant(
                conn, organization_id, program, start, money(charge.amount * booking["subsidy_share"])
            )
            if granted > 0:
                _, name = await QUERIES.program_cap(conn, id=program)
                share = f"{booking['subsidy_share'] * 100:.4g} %"
                lines.append(
                    Line(booking["id"], "subsidy", f"{name} ({share})", Decimal(1), "", -granted, -granted, program)
                )
        return lines

    async def _grant(
        self, conn: AsyncConnection, organization_id: int, program: str, start: datetime, wanted: Decimal
    ) -> Decimal:
        """As much of `wanted` as the program's annual cap for the customer still allows, the cap row locked."""
        key = {"organization_id": organization_id, "program_id": program, "year": start.astimezone(self.zone).year}
        await QUERIES.ensure_subsidy_cap(conn, **key)
        await QUERIES.cap_row_lock(conn, **key)
        used = await QUERIES.subsidy_used(conn, **key)
        cap, _ = await QUERIES.program_cap(conn, id=program)
        return max(ZERO, min(wanted, cap - used))

    async def draft_month(
        self,
        conn: AsyncConnection,
        month: date,
        actor: Principal | str,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[int]:
        """Drafts every customer with something to bill up to the end of `month`, one transaction each."""
        month = first_of_month(month)
        self._check_over(month)
        customers = await self.customers_to_bill(conn, month)
        drafted = []
        for i, organization_id in enumerate(customers, 1):
            invoice_id = await self.draft(conn, organization_id, month, actor)
            if invoice_id is not None:
                drafted.append(invoice_id)
            if progress is not None:
                progress(i, len(customers))
        await QUERIES.record_run(conn, month=month, at=self.clock(), invoices=len(drafted))
        return drafted

    async def preview(self, conn: AsyncConnection, month: date) -> list[Bill]:
        """What drafting `month` now would bill each customer (an issued invoice as it stands), so finance sees
        the month before any draft exists. Worked out by the draft itself in a transaction that is rolled back:
        the same bookings (earlier months' stragglers too), usage, fees and subsidies within the caps, and nothing
        is kept (no draft, no frozen result, no ledger entry, no audit). Empty for a month not over yet, which
        cannot be drafted either."""
        month = first_of_month(month)
        if not self.month_over(month):
            return []
        live = {"month": month, "organization_id": None, "status": None, "id": None}
        held = {
            row["organization_id"]: row
            for row in await dict_rows(conn, QUERIES.invoices.sql, live)
            if row["kind"] == "invoice" and row["credited_by"] is None
        }
        bills = []
        async with conn.transaction(force_rollback=True):
            for organization_id in sorted(set(await self.customers_to_bill(conn, month)) | set(held)):
                invoice_id = await self.draft(conn, organization_id, month, "preview")
                if invoice_id is None:
                    continue
                [drafted] = await dict_rows(conn, QUERIES.invoices.sql, {**live, "month": None, "id": invoice_id})
                lines = await lines_of(conn, invoice_id)
                subsidy = -sum((line["amount"] for line in lines if line["kind"] == "subsidy"), ZERO)
                bills.append(
                    Bill(
                        organization_id=organization_id,
                        organization_name=drafted["organization_name"],
                        bookings=len({line["booking_id"] for line in lines if line["booking_id"] is not None}),
                        hours=sum((line["quantity"] for line in lines if line["kind"] == "usage"), Decimal(0)),
                        before_subsidy=drafted["total"] + subsidy,
                        subsidy=subsidy,
                        due=drafted["total"],
                        invoice=held.get(organization_id),
                    )
                )
        return sorted(bills, key=lambda b: b.organization_name)

    async def monthly(self, conn: AsyncConnection, now: datetime) -> list[int]:
        """The scheduled run: once the center's calendar has turned to a new month, the month before is drafted
        once (finance may draft it again by hand)."""
        previous = first_of_month(first_of_month(now.astimezone(self.zone).date()) - timedelta(days=1))
        if await QUERIES.month_drafted(conn, month=previous):
            return []
        return await self.draft_month(conn, previous, "job:invoice-drafts")

    async def issue(self, conn: AsyncConnection, invoice_id: int, principal: Principal) -> str:
        """Assigns the next number of the issuing year inside this transaction: a failed issue leaves no gap."""
        now = self.clock()
        async with conn.transaction():
            invoice = await self._locked(conn, invoice_id)
            if invoice["status"] == "issued":
                raise Conflict(f"invoice {invoice['number']} is issued already")
            number = await self._number(conn, now)
            await QUERIES.issue_invoice(conn, id=invoice_id, number=number, now=now, by=principal.id)
            await audit.record(conn, now, principal, "issue", "invoice", invoice_id, after={"number": number})
            wanted = {"month": None, "organization_id": None, "status": None, "id": invoice_id}
            [issued] = await dict_rows(conn, QUERIES.invoices.sql, wanted)
            await publish(conn, "invoice.issued", {"invoice": issued}, at=now)
        return number

    async def credit(self, conn: AsyncConnection, invoice_id: int, principal: Principal, reason: str) -> int:
        """An issued invoice is corrected only by a credit note: every line reversed, subsidies given back to
        the ledger, numbered and issued at once. Its bookings are then free for the next draft."""
        now = self.clock()
        async with conn.transaction():
            original = await self._locked(conn, invoice_id)
            if original["status"] != "issued" or original["kind"] != "invoice":
                raise Conflict("only an issued invoice gets a credit note; a draft is simply drafted again")
            if original["credited_by"] is not None:
                raise Conflict(f"invoice {original['number']} is credited already")
            await QUERIES.lock_invoicing(conn, organization_id=original["organization_id"])
            note = await QUERIES.insert_invoice(
                conn,
                kind="credit_note",
                organization_id=original["organization_id"],
                month=original["month"],
                vat_rate=original["vat_rate"],
                credits=invoice_id,
                reason=reason,
                now=now,
            )
            ledger = {row[3]: row async for row in QUERIES.ledger_of_invoice(conn, invoice_id=invoice_id)}
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(QUERIES.invoice_lines.sql, {"invoice_id": invoice_id})
                lines = await cur.fetchall()
            for line in lines:
                line_id = await QUERIES.insert_line(
                    conn,
                    invoice_id=note,
                    position=line["position"],
                    booking_id=line["booking_id"],
                    kind="credit",
                    description=f"Credit: {line['description']}",
                    quantity=line["quantity"],
                    unit=line["unit"],
                    unit_price=-line["unit_price"],
                    amount=-line["amount"],
                    subsidy_program=line["subsidy_program"],
                )
                if line["id"] in ledger:
                    organization_id, program_id, year, _, booking_id, amount = ledger[line["id"]]
                    await QUERIES.record_subsidy(
                        conn,
                        organization_id=organization_id,
                        program_id=program_id,
                        year=year,
                        invoice_line_id=line_id,
                        booking_id=booking_id,
                        amount=-amount,
                        now=now,
                    )
            await QUERIES.set_totals(conn, id=note, total=-original["total"], vat=-original["vat"])
            number = await self._number(conn, now)
            await QUERIES.issue_invoice(conn, id=note, number=number, now=now, by=principal.id)
            await QUERIES.mark_credited(conn, id=invoice_id, credit_note=note)
            await audit.record(
                conn, now, principal, "credit", "invoice", invoice_id, after={"credit_note": number}, reason=reason
            )
        return note

    async def _locked(self, conn: AsyncConnection, invoice_id: int) -> dict[str, Any]:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(QUERIES.lock_invoice.sql, {"id": invoice_id})
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no invoice {invoice_id}")
        return row

    async def _number(self, conn: AsyncConnection, now: datetime) -> str:
        year = now.astimezone(self.zone).year
        return f"FH{year}-{await QUERIES.next_invoice_number(conn, year=year):06d}"
