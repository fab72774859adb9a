"""The SME's machine report of a completed booking, and the comparison of two to four of its organization's
bookings side by side (issue 15). Everything is read from what was frozen when the booking completed: the
usage record, the per-day results (oee.results) and the snapshot of the timeline, cycle times, programs,
alarms and down time (oee.snapshot). A report therefore never changes after the fact; only the audited
recompute rewrites its figures. The one live part is the reason a technician attached to a down interval,
which may come after the booking completed and explains, rather than changes, the figures.

What was billed: the lines of an issued invoice that no credit note cancelled; before that, the charge the
booking's billing basis gives for the frozen usage and the subsidy its booking promised (an estimate: the
program's annual cap is applied when the invoice is drafted).

A booking of another organization reads exactly as one that does not exist (404); one that has not completed,
or whose results are not frozen yet, is a 409 that says so."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from psycopg import AsyncConnection
from pydantic import BaseModel

from accounts.model import Principal
from common.errors import Conflict, Invalid, NotFound
from common.rows import dict_rows
from common.times import Stamp
from oee import metrics
from oee.billing_api import LineOut
from oee.charges import money, usage_charge
from oee.energy import carbon_kg
from oee.sqlfiles import QUERIES

MIN_COMPARED, MAX_COMPARED = 2, 4
BINS = 10


class Slot(BaseModel):
    booking_id: int
    organization_id: int
    organization_name: str
    device_id: str
    device_name: str
    class_id: str
    class_name: str
    class_name_zh: str | None
    start: Stamp
    end: Stamp
    status: str
    reference: str | None


class BilledLine(LineOut):
    """A line of the invoice that billed the booking, as the invoice shows it, with the invoice's number."""

    invoice_number: str


class Billing(BaseModel):
    """Money as decimal strings (CNY, tax-inclusive)."""

    basis: str
    hourly_rate: Decimal
    hours: Decimal  # the hours the basis charges for the frozen usage
    charge: Decimal  # hours x rate
    subsidy: Decimal  # on the invoice, or as the booking promised it (before the annual cap)
    total: Decimal  # what the customer pays
    invoiced: bool  # the figures are an issued invoice's lines; otherwise the estimate
    lines: list[BilledLine]
    currency: str = "CNY"


class Times(BaseModel):
    """Seconds inside the slot per state, the micro-stops among the idle time, and the overrun past the end."""

    planned_s: float
    running_s: float
    setup_s: float
    idle_s: float
    down_s: float
    maintenance_s: float
    offline_s: float
    micro_stop_s: float
    overrun_s: float


class Figures(BaseModel):
    """Shares (0.8 is 80 %); null where undefined. A performance above 1 says the ideal cycle time is wrong."""

    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    performance_suspect: bool
    ideal_cycle_s: float | None


class Losses(BaseModel):
    """The six big losses, in hours: breakdowns (down), setup and adjustments, small stops (micro-stops),
    reduced speed (running beyond the ideal time of the parts made), start-up and production rejects (the
    ideal time of the scrapped parts). Null where the ideal cycle time or good-part count is unknown."""

    breakdowns_h: float
    setup_h: float
    small_stops_h: float
    reduced_speed_h: float | None
    rejects_h: float | None


class Parts(BaseModel):
    total: float
    good: float | None  # null: the machine does not count good parts
    scrap: float | None


class StateSpan(BaseModel):
    state: str
    start: Stamp
    end: Stamp
    seconds: float


class CycleBin(BaseModel):
    from_s: float
    to_s: float
    parts: float


class CyclePoint(BaseModel):
    at: Stamp
    seconds: float
    parts: float


class Cycles(BaseModel):
    """Cycle times from the part counter while running (oee.snapshot), weighted by parts."""

    parts_measured: float
    mean_s: float | None
    median_s: float | None
    min_s: float | None
    max_s: float | None
    ideal_s: float | None
    bins: list[CycleBin]
    trend: list[CyclePoint]


class ProgramRun(BaseModel):
    name: str
    running_s: float
    parts: float
    runs: int


class Alarm(BaseModel):
    at: Stamp
    text: str
    until: Stamp | None


class Down(BaseModel):
    start: Stamp
    end: Stamp | None
    seconds: float  # inside the slot
    reason_code: str | None
    reason_name: str | None
    reason_name_zh: str | None
    note: str | None


class Energy(BaseModel):
    """kWh of the slot (null: the machine has no energy measurement); CO2 with the factor in force when the
    booking was frozen, its source and year."""

    kwh: float | None
    idle_kwh: float | None
    kwh_per_good_part: float | None
    co2_kg: Decimal | None
    carbon_factor: Decimal | None
    carbon_source: str | None
    carbon_year: int | None


class Report(BaseModel):
    slot: Slot
    billing: Billing
    times: Times
    oee: Figures
    losses: Losses
    parts: Parts
    energy: Energy
    frozen_at: Stamp
    # The snapshot's parts; null for a booking frozen before reports were (its figures above are all there is).
    timeline: list[StateSpan] | None
    cycles: Cycles | None
    programs: list[ProgramRun] | None
    alarms: list[Alarm] | None
    downtime: list[Down] | None


class Compared(BaseModel):
    """One booking's column of a comparison."""

    booking_id: int
    device_id: str
    device_name: str
    class_name: str
    start: Stamp
    end: Stamp
    parts_total: float
    parts_good: float | None
    scrap: float | None
    scrap_share: float | None
    mean_cycle_s: float | None
    median_cycle_s: float | None
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    energy_kwh: float | None
    kwh_per_good_part: float | None
    co2_kg: Decimal | None


class Comparison(BaseModel):
    organization_id: int
    bookings: list[Compared]


async def booking_report(conn: AsyncConnection, booking_id: int, principal: Principal) -> Report:
    """The report of one completed booking the principal may see."""
    [report] = await reports(conn, [booking_id], principal)
    return report


async def compare(conn: AsyncConnection, booking_ids: Sequence[int], principal: Principal) -> Comparison:
    """Two to four distinct bookings of one organization, side by side."""
    if len(set(booking_ids)) != len(booking_ids):
        raise Invalid("a booking appears twice in the comparison")
    if not MIN_COMPARED <= len(booking_ids) <= MAX_COMPARED:
        raise Invalid(f"compare {MIN_COMPARED} to {MAX_COMPARED} bookings, not {len(booking_ids)}")
    found = await reports(conn, booking_ids, principal)
    organizations = {r.slot.organization_id for r in found}
    if len(organizations) > 1:
        raise Invalid("the bookings compared belong to one organization")
    return Comparison(organization_id=organizations.pop(), bookings=[compared(r) for r in found])


def parse_ids(text: str) -> list[int]:
    """`1,2,3` as booking ids; anything else is refused with a reason."""
    ids = []
    for part in text.split(","):
        part = part.strip()
        if not part.isascii() or not part.isdigit() or not 0 < int(part) < 2**63:
            raise Invalid(f"bookings: {part!r} is not a booking id (give ids separated by commas)")
        ids.append(int(part))
    return ids


async def reports(conn: AsyncConnection, booking_ids: Sequence[int], principal: Principal) -> list[Report]:
    """The reports of the bookings, in the order asked, in a few queries whatever their number (a month of an
    organization's bookings builds in one go). 404 for one the principal may not see, 409 for one not frozen."""
    ids = list(booking_ids)
    rows = {r["id"]: r for r in await dict_rows(conn, QUERIES.report_bookings.sql, {"ids": ids})}
    for booking_id in ids:
        row = rows.get(booking_id)
        if row is None or not principal.sees_organization(row["organization_id"]):
            raise NotFound(f"no booking {booking_id}")
        if row["status"] != "completed":
            raise Conflict(f"booking {booking_id} is not completed yet ({row['status']}): its report comes then")
        if not row["frozen"]:
            raise Conflict(
                f"booking {booking_id} is not completed yet: its results are frozen once its data is in, shortly "
                "after its end"
            )
    figures = _figures(await dict_rows(conn, QUERIES.report_results.sql, {"ids": ids}))
    lines: dict[int, list[BilledLine]] = {}
    for line in await dict_rows(conn, QUERIES.report_billed_lines.sql, {"ids": ids}):
        lines.setdefault(line["booking_id"], []).append(BilledLine(**line))
    reasons = await _reasons(conn, [rows[i] for i in ids])
    return [_report(rows[i], figures.loc[i], lines.get(i, []), reasons) for i in ids]


def compared(report: Report) -> Compared:
    parts, cycles, oee, energy = report.parts, report.cycles, report.oee, report.energy
    return Compared(
        booking_id=report.slot.booking_id,
        device_id=report.slot.device_id,
        device_name=report.slot.device_name,
        class_name=report.slot.class_name,
        start=report.slot.start,
        end=report.slot.end,
        parts_total=parts.total,
        parts_good=parts.good,
        scrap=parts.scrap,
        scrap_share=parts.scrap / parts.total if parts.scrap is not None and parts.total else None,
        mean_cycle_s=cycles.mean_s if cycles else None,
        median_cycle_s=cycles.median_s if cycles else None,
        availability=oee.availability,
        performance=oee.performance,
        quality=oee.quality,
        oee=oee.oee,
        energy_kwh=energy.kwh,
        kwh_per_good_part=energy.kwh_per_good_part,
        co2_kg=energy.co2_kg,
    )


# -- building ------------------------------------------------------------------------------------------------


def _figures(results: list[dict[str, Any]]) -> pd.DataFrame:
    """Per booking: the frozen days summed and the OEE computed from the sums (oee.metrics)."""
    columns = ["booking_id", *[f"{t}_s" for t in metrics.TIMES], *metrics.COUNTS, "ideal_cycle_s"]
    table = pd.DataFrame(results, columns=columns).astype({c: float for c in columns[1:]})
    return metrics.rollup(table, ["booking_id"]).set_index("booking_id")


def _number(value: Any) -> float | None:
    """A pandas figure as a float, NaN (undefined) as None."""
    number = float(value)
    return None if number != number else number


def _report(row: dict[str, Any], f: pd.Series, lines: list[BilledLine], reasons: dict[Any, dict[str, Any]]) -> Report:
    good = _number(f["parts_good"])
    total = float(f["parts_total"])
    seconds = {f"{t}_s": float(f[f"{t}_s"]) for t in metrics.TIMES if t != "booked"}
    times = Times(**seconds, overrun_s=row["overrun_s"])
    hours = 1 / 3600
    ideal = _number(f["ideal_cycle_s"])
    return Report(
        slot=Slot(
            booking_id=row["id"],
            **{k: row[k] for k in ("organization_id", "organization_name", "device_id", "device_name", "class_id")},
            **{k: row[k] for k in ("class_name", "class_name_zh", "start", "end", "status", "reference")},
        ),
        billing=_billing(row, lines),
        times=times,
        oee=Figures(
            availability=_number(f["availability"]),
            performance=_number(f["performance"]),
            quality=_number(f["quality"]),
            oee=_number(f["oee"]),
            performance_suspect=bool(f["performance_suspect"]),
            ideal_cycle_s=ideal,
        ),
        losses=Losses(
            breakdowns_h=float(f["loss_down_s"]) * hours,
            setup_h=float(f["loss_setup_s"]) * hours,
            small_stops_h=float(f["loss_micro_stop_s"]) * hours,
            reduced_speed_h=None if ideal is None else float(f["loss_reduced_speed_s"]) * hours,
            rejects_h=None if ideal is None or good is None else float(f["loss_scrap_s"]) * hours,
        ),
        parts=Parts(total=total, good=good, scrap=None if good is None else total - good),
        energy=_energy(row, good),
        frozen_at=row["frozen_at"],
        timeline=None if row["timeline"] is None else [_span(s) for s in row["timeline"]],
        cycles=None if row["cycles"] is None else _cycles(row["cycles"], ideal),
        programs=None if row["programs"] is None else [ProgramRun(**p) for p in row["programs"]],
        alarms=None if row["alarms"] is None else [Alarm(**a) for a in row["alarms"]],
        downtime=None if row["downtime"] is None else [_down(row["device_id"], d, reasons) for d in row["downtime"]],
    )


def _billing(row: dict[str, Any], lines: list[BilledLine]) -> Billing:
    charge = usage_charge(
        row["billing_basis"],
        row["hourly_rate"],
        row["booked_s"],
        row["running_s"],
        row["overrun_s"],
        row["metered_minimum_share"],
    )
    if lines:
        subsidy = -sum((line.amount for line in lines if line.kind == "subsidy"), Decimal(0))
        total = sum((line.amount for line in lines), Decimal(0))
    else:
        share = row["subsidy_share"] if row["subsidy_program"] is not None else Decimal(0)
        subsidy = money(charge.amount * share)
        total = charge.amount - subsidy
    return Billing(
        basis=charge.basis,
        hourly_rate=row["hourly_rate"],
        hours=charge.hours,
        charge=charge.amount,
        subsidy=subsidy,
        total=total,
        invoiced=bool(lines),
        lines=lines,
    )


def _energy(row: dict[str, Any], good: float | None) -> Energy:
    """From the usage record: kWh, idle kWh and the carbon factor frozen with it (oee.energy)."""
    kwh = row["energy_kwh"]
    return Energy(
        kwh=kwh,
        idle_kwh=row["idle_energy_kwh"],
        kwh_per_good_part=kwh / good if kwh is not None and good else None,
        co2_kg=carbon_kg(kwh, row["carbon_factor"]),
        carbon_factor=row["carbon_factor"],
        carbon_source=row["carbon_source"],
        carbon_year=row["carbon_year"],
    )


def _span(span: dict[str, Any]) -> StateSpan:
    start, end = datetime.fromisoformat(span["start"]), datetime.fromisoformat(span["end"])
    return StateSpan(state=span["state"], start=start, end=end, seconds=(end - start).total_seconds())


def _cycles(samples: list[dict[str, Any]], ideal: float | None) -> Cycles:
    trend = [CyclePoint(**s) for s in samples]
    measured = sum(p.parts for p in trend)
    if not trend:
        return Cycles(
            parts_measured=0, mean_s=None, median_s=None, min_s=None, max_s=None, ideal_s=ideal, bins=[], trend=[]
        )
    ordered = sorted(trend, key=lambda p: p.seconds)
    low, high = ordered[0].seconds, ordered[-1].seconds
    width = (high - low) / BINS or 1.0
    count = BINS if high > low else 1
    bins = [CycleBin(from_s=low + i * width, to_s=low + (i + 1) * width, parts=0) for i in range(count)]
    for p in trend:
        bins[min(int((p.seconds - low) / width), len(bins) - 1)].parts += p.parts
    return Cycles(
        parts_measured=measured,
        mean_s=sum(p.seconds * p.parts for p in trend) / measured,
        median_s=_weighted_median(ordered, measured),
        min_s=low,
        max_s=high,
        ideal_s=ideal,
        bins=bins,
        trend=trend,
    )


def _weighted_median(ordered: list[CyclePoint], measured: float) -> float:
    """The cycle time of the middle part (each sample counts its parts); between two, their mean."""
    half, seen = measured / 2, 0.0
    for i, p in enumerate(ordered):
        seen += p.parts
        if seen > half:
            return p.seconds
        if seen == half:
            return statistics.mean([p.seconds, ordered[i + 1].seconds]) if i + 1 < len(ordered) else p.seconds
    return ordered[-1].seconds


async def _reasons(conn: AsyncConnection, rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """The reasons attached now to the frozen down intervals, by (device, start)."""
    starts = {datetime.fromisoformat(d["start"]) for r in rows for d in (r["downtime"] or [])}
    if not starts:
        return {}
    params = {"device_ids": sorted({r["device_id"] for r in rows}), "starts": sorted(starts)}
    return {(r["device_id"], r["start"]): r for r in await dict_rows(conn, QUERIES.report_reasons.sql, params)}


def _down(device_id: str, down: dict[str, Any], reasons: dict[Any, dict[str, Any]]) -> Down:
    start = datetime.fromisoformat(down["start"])
    reason = reasons.get((device_id, start), {})
    return Down(
        start=start,
        end=down["end"],
        seconds=down["seconds"],
        reason_code=reason.get("code"),
        reason_name=reason.get("name"),
        reason_name_zh=reason.get("name_zh"),
        note=reason.get("note"),
    )
