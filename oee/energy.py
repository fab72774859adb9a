"""Energy and carbon: per machine and local day, per booking (frozen with its results by oee.results) and per
customer and month. kWh come from the energy counters' deltas, which the telemetry writer counts exactly once
across meter resets, rollovers and restarts, of each machine's sources (its power meters, else its own
counter). Idle energy is what the machine drew while not running: the share a center can save. CO2 is kWh x
the grid emission factor, always stated with its factor, source and year; a frozen booking keeps the factor
it was frozen with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from common.rows import dict_rows
from oee.sqlfiles import QUERIES

KG = Decimal("0.01")
# 生态环境部: 2022 年全国电力平均二氧化碳排放因子 (the national grid average, published 2024)
NATIONAL_FACTOR = Decimal("0.5703")
NATIONAL_SOURCE = "生态环境部 2022 年全国电力平均二氧化碳排放因子"


@dataclass(frozen=True, slots=True)
class Carbon:
    factor: Decimal = NATIONAL_FACTOR  # kg CO2 per kWh
    source: str = NATIONAL_SOURCE
    year: int = 2022

    def kg(self, kwh: float | None) -> Decimal | None:
        """kg CO2 of `kwh` (None: unknown), to the hundredth."""
        return carbon_kg(kwh, self.factor)

    def stated(self) -> dict[str, Any]:
        return {"carbon_factor": self.factor, "carbon_source": self.source, "carbon_year": self.year}


@dataclass(frozen=True, slots=True)
class EnergyFacts:
    """Where each machine's energy is measured (a machine without sources has no energy figures: unknown, not
    zero) and the emission factor in force."""

    sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    carbon: Carbon = Carbon()

    def pairs(self, machine_ids: list[str]) -> tuple[list[str], list[str]]:
        """(machine ids, source ids) in step, a machine once per source: the queries' parameters."""
        pairs = [(m, s) for m in machine_ids for s in self.sources.get(m, ())]
        return [m for m, _ in pairs], [s for _, s in pairs]


def carbon_kg(kwh: float | None, factor: Decimal | None) -> Decimal | None:
    if kwh is None or factor is None:
        return None
    return (Decimal(repr(kwh)) * factor).quantize(KG)


@dataclass(frozen=True, slots=True)
class Used:
    kwh: float | None  # None: the machine measures no energy
    idle_kwh: float | None


async def used(
    conn: AsyncConnection, facts: EnergyFacts, machine_id: str, start: datetime, end: datetime, zone: str
) -> Used:
    """A machine's energy in [start, end): what a booking's results freeze. Unknown (None) when the machine
    measures no energy, or none of its sources reported in the window (a meter that was offline)."""
    sources = list(facts.sources.get(machine_id, ()))
    rows = await per_day(conn, facts, [machine_id], start, end, zone)
    if not rows and not (sources and await QUERIES.energy_reported(conn, source_ids=sources, start=start, end=end)):
        return Used(None, None)
    return Used(_kwh(sum(r["kwh"] for r in rows)), _kwh(sum(r["idle_kwh"] for r in rows)))


async def per_day(
    conn: AsyncConnection, facts: EnergyFacts, machine_ids: list[str], start: datetime, end: datetime, zone: str
) -> list[dict[str, Any]]:
    """kWh and idle kWh per machine and local day in [start, end), days without energy left out; only the
    machines that measure energy."""
    machines, sources = facts.pairs(machine_ids)
    if not machines:
        return []
    params = {"machine_ids": machines, "source_ids": sources, "start": start, "end": end, "zone": zone}
    return await dict_rows(conn, QUERIES.energy_per_day.sql, params)


async def devices_daily(
    conn: AsyncConnection, facts: EnergyFacts, machine_ids: list[str], first: date, last: date, zone: ZoneInfo
) -> list[dict[str, Any]]:
    """Per machine and local day first..last: kWh, idle kWh, good parts, kWh per good part and CO2 with its
    factor, for every machine that measures energy and every day, zeros included."""
    start = datetime.combine(first, time(), zone)
    end = datetime.combine(last + timedelta(days=1), time(), zone)
    rows = await per_day(conn, facts, machine_ids, start, end, zone.key)
    energy = {(r["machine_id"], r["day"]): r for r in rows}
    measured = [m for m in machine_ids if m in facts.sources]
    params = {"machine_ids": measured, "start": start, "end": end, "zone": zone.key}
    parts = {(r["device_id"], r["day"]): r for r in await dict_rows(conn, QUERIES.good_parts_per_day.sql, params)}
    out = []
    for machine in measured:
        day = first
        while day <= last:
            e = energy.get((machine, day), {})
            p = parts.get((machine, day), {})
            kwh, good = _kwh(float(e.get("kwh") or 0.0)), p.get("good")
            out.append(
                {
                    "device_id": machine,
                    "day": day,
                    "energy_kwh": kwh,
                    "idle_energy_kwh": _kwh(float(e.get("idle_kwh") or 0.0)),
                    "parts_good": None if good is None else float(good),
                    "kwh_per_good_part": round(kwh / float(good), 4) if good else None,
                    "co2_kg": facts.carbon.kg(kwh),
                    **facts.carbon.stated(),
                }
            )
            day += timedelta(days=1)
    return out


async def customers(
    conn: AsyncConnection, start: datetime, end: datetime, organization_id: int | None
) -> list[dict[str, Any]]:
    """Per customer, the frozen energy of its completed bookings starting in [start, end)."""
    params = {"start": start, "end": end, "organization_id": organization_id}
    rows = await dict_rows(conn, QUERIES.energy_of_customers.sql, params)
    for row in rows:
        kwh, good = row["energy_kwh"], row["parts_good"]
        for key in ("energy_kwh", "idle_energy_kwh"):
            row[key] = None if row[key] is None else _kwh(row[key])
        row["kwh_per_good_part"] = round(kwh / good, 4) if kwh is not None and good else None
    return rows


def _kwh(value: float) -> float:
    """Sums of deltas in 0.01 kWh steps, without the binary fractions' noise (4.630000000000001)."""
    return round(value, 6)
