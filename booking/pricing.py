"""Price quotes: market rate x duration, minus the subsidy of the one eligible program that saves the
customer most, never beyond what is left of that program's annual cap for the organization. Money is
Decimal quantized to 0.01 CNY with half-up rounding (the fen is the unit on an invoice).

The quote fixes the booking's program and share; its subsidy amount is an estimate, and the pages say so.
The invoice grants the share of the amount actually billed (metered and overage classes bill measured
time), within what is left of the program's annual cap when it is drafted (the subsidy ledger, granted in
date order; see oee.invoices). A quote without a subsidy means none on the invoice either."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from booking.catalogue import Program

FEN = Decimal("0.01")
ZERO = Decimal("0.00")
HOUR = timedelta(hours=1)


def money(value: Decimal) -> Decimal:
    return value.quantize(FEN, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Quote:
    hourly_rate: Decimal
    hours: Decimal
    gross: Decimal
    subsidy_program: str | None
    subsidy_share: Decimal | None
    subsidy: Decimal
    net: Decimal
    # What the program would have paid without its cap, when the cap cut it short.
    capped_from: Decimal | None = None


def gross_price(hourly_rate: Decimal, length: timedelta) -> tuple[Decimal, Decimal]:
    # Whole seconds keep the arithmetic exact; the grid makes bookings whole minutes anyway.
    hours = Decimal(int(length.total_seconds())) / Decimal(3600)
    # The price from the exact hours; the hours shown to four places.
    return hours.quantize(Decimal("0.0001")), money(hourly_rate * hours)


def eligible(
    programs: Iterable[Program], organization_programs: Iterable[str], class_id: str, day: date
) -> list[Program]:
    wanted = set(organization_programs)
    return [p for p in programs if p.id in wanted and class_id in p.classes and p.valid_from <= day <= p.valid_to]


def quote(
    hourly_rate: Decimal,
    length: timedelta,
    programs: Iterable[Program],
    used: Mapping[str, Decimal],
) -> Quote:
    """`programs`: the eligible ones; `used`: subsidy already committed this year per program."""
    hours, gross = gross_price(hourly_rate, length)
    best: Quote | None = None
    for program in sorted(programs, key=lambda p: p.id):
        uncapped = money(gross * program.share)
        remaining = max(Decimal(0), program.annual_cap - used.get(program.id, Decimal(0)))
        subsidy = min(uncapped, remaining)
        if subsidy > 0 and (best is None or subsidy > best.subsidy):
            best = Quote(
                hourly_rate,
                hours,
                gross,
                program.id,
                program.share,
                subsidy,
                gross - subsidy,
                uncapped if subsidy < uncapped else None,
            )
    return best or Quote(hourly_rate, hours, gross, None, None, ZERO, gross)


def fee(net: Decimal, share: Decimal) -> Decimal:
    """Late-cancellation and no-show fees are a share of what the customer would have paid."""
    return money(net * share)


def cancellation(
    start: datetime, now: datetime, net: Decimal, window: timedelta, share: Decimal
) -> tuple[bool, Decimal]:
    """Whether cancelling at `now` is late (inside `window` before the start; exactly at it is not), and the
    fee it carries: what the cancel charges and what a page shows before it."""
    late = start - now < window
    return late, fee(net, share) if late else ZERO
