"""What a booking costs by its class's billing basis (after NUcore): `booked` charges the slot, `metered`
the measured running time but at least a minimum share of the slot, `overage` the slot plus the running on
past its end. Amounts are tax-inclusive Decimal, half-up to the fen; quantities in hours to four places."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from booking.pricing import money

HOURS = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Charge:
    hours: Decimal
    amount: Decimal
    basis: str


def usage_charge(
    basis: str, hourly_rate: Decimal, booked_s: float, running_s: float, overrun_s: float, minimum_share: Decimal
) -> Charge:
    booked = Decimal(round(booked_s))
    if basis == "booked":
        seconds = booked
    elif basis == "metered":
        seconds = max(Decimal(round(running_s)), booked * minimum_share)
    elif basis == "overage":
        seconds = booked + Decimal(round(overrun_s))
    else:
        raise ValueError(f"unknown billing basis {basis!r}")
    hours = seconds / Decimal(3600)
    return Charge(hours.quantize(HOURS, rounding=ROUND_HALF_UP), money(hourly_rate * hours), basis)


def vat_of(total: Decimal, rate: Decimal) -> Decimal:
    """The VAT inside a tax-inclusive total, computed once per invoice (not per line) and rounded half-up."""
    return money(total * rate / (1 + rate))
