"""Figures about the whole center for management, beside the OEE and down-time ones: energy and CO2 per device
class and month (from `oee.energy`'s per-machine days, so they agree with every other energy figure and carry
the emission factor they were computed with), and subsidy paid out against each program's annual cap per
customer (from the subsidy ledger, the same sums the invoices drew on)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from common.rows import dict_rows
from oee import energy
from oee.energy import EnergyFacts
from oee.sqlfiles import QUERIES


@dataclass(frozen=True, slots=True)
class ClassMonth:
    device_class: str
    month: date  # its first day
    kwh: float
    idle_kwh: float
    co2_kg: Decimal
    factor: Decimal  # kg CO2 per kWh, stated with every figure


@dataclass(frozen=True, slots=True)
class SubsidyUse:
    program_id: str
    program_name: str
    organization_id: int
    organization_name: str
    cap: Decimal  # per customer and calendar year
    used: Decimal

    @property
    def remaining(self) -> Decimal:
        return self.cap - self.used

    @property
    def share(self) -> float:
        return float(self.used / self.cap) if self.cap else 0.0


async def energy_by_class_month(
    conn: AsyncConnection,
    facts: EnergyFacts,
    classes: Mapping[str, str],
    first: date,
    last: date,
    zone: ZoneInfo,
) -> list[ClassMonth]:
    """kWh, idle kWh and CO2 per device class (`classes`: machine id -> class) and calendar month of the days
    first..last, classes then months in order; machines that measure no energy are left out, not zero."""
    start = datetime.combine(first, time(), zone)
    end = datetime.combine(last + timedelta(days=1), time(), zone)
    sums: dict[tuple[str, date], list[float]] = {}
    for row in await energy.per_day(conn, facts, list(classes), start, end, zone.key):
        entry = sums.setdefault((classes[row["machine_id"]], row["day"].replace(day=1)), [0.0, 0.0])
        entry[0] += float(row["kwh"])
        entry[1] += float(row["idle_kwh"])
    carbon = facts.carbon
    return [
        ClassMonth(device_class, month, kwh, idle, carbon.kg(kwh) or Decimal(0), carbon.factor)
        for (device_class, month), (kwh, idle) in sorted(sums.items())
    ]


async def subsidy_against_caps(conn: AsyncConnection, year: int) -> list[SubsidyUse]:
    """Per program and customer, the subsidy of `year` against the program's cap."""
    rows = await dict_rows(conn, QUERIES.subsidy_against_caps.sql, {"year": year})
    return [
        SubsidyUse(
            r["program_id"], r["program_name"], r["organization_id"], r["organization_name"], r["annual_cap"], r["used"]
        )
        for r in rows
    ]


def program_totals(uses: Sequence[SubsidyUse]) -> dict[str, tuple[Decimal, int]]:
    """Per program: the subsidy paid out in all and the customers eligible for it (each has its own cap)."""
    totals: dict[str, tuple[Decimal, int]] = {}
    for use in uses:
        used, customers = totals.get(use.program_id, (Decimal(0), 0))
        totals[use.program_id] = (used + use.used, customers + 1)
    return totals
