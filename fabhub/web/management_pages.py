"""Management's view of the center over a chosen range of up to 92 days: OEE per device over the days, a
utilisation heat map (device x day), booked against measured time per device (a Gantt of bookings with the
machine's states under it, zoomable to one day), the down-time Pareto (explained down time outside opening
hours included), energy and CO2 per device class and month, and subsidy paid out against each program's cap.
All from the domains' own figures, so the charts, their CSV downloads and the API never disagree."""

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from accounts.model import Principal
from booking.bookings import Bookings
from booking.catalogue import Catalogue
from common.errors import Invalid
from fabhub.web import charts
from fabhub.web.booking_pages import plausible
from fabhub.web.i18n import Texts
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions
from oee import center_figures, downtime
from oee.exports import csv_cell
from oee.service import OeeService, group
from telemetry.reader import TelemetryReader

MAX_DAYS = 92
DEFAULT_DAYS = 30
Chart = Literal["oee", "utilisation", "gantt", "downtime", "energy", "subsidy"]
RANGE_PROBLEM = "Choose up to 92 days, the first before the last."


def _share(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


@dataclass(frozen=True)
class Window:
    """The days shown, first..last, and the day the Gantt zooms to (None: the whole range)."""

    first: date
    last: date
    day: date | None
    problems: list[str] = field(default_factory=list)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


def window(today: date, since: date | None, until: date | None, day: date | None) -> Window:
    """The range asked for, or the last 30 days with the reason when it cannot be shown."""
    problems = []
    if (since and not plausible(since)) or (until and not plausible(until)) or (day and not plausible(day)):
        problems.append(RANGE_PROBLEM)
        since = until = day = None
    last = min(until or today, today)
    first = since or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last or (last - first).days >= MAX_DAYS:
        problems.append(RANGE_PROBLEM)
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    if day is not None and not first <= day <= last:
        problems.append("The day to zoom to lies outside the range.")
        day = None
    return Window(first, last, day, problems)


@dataclass
class Figures:
    """Every chart's numbers for one window, as the CSV downloads give them."""

    ids: list[str]
    daily: dict[tuple[str, date], dict[str, Any]]
    gantt_start: datetime
    gantt_end: datetime
    booked: list[dict[str, Any]]
    states: dict[str, list[dict[str, Any]]]
    losses: downtime.Pareto
    energy: list[center_figures.ClassMonth]
    subsidy: list[center_figures.SubsidyUse]
    year: int


def make_router(
    pages: Pages,
    sessions: WebSessions,
    pool: AsyncConnectionPool,
    oee: OeeService,
    reader: TelemetryReader,
    bookings: Bookings,
    catalogue: Catalogue,
    clock: Callable[[], datetime],
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    zone = pages.zone
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py
    devices = [d for d in catalogue.devices.values() if not d.retired]
    ids = [d.id for d in devices]  # the charts' labels: unique and short (the machine page has the name)
    classes = {d.id: d.class_id for d in devices}

    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(), zone)

    async def figures(conn: AsyncConnection, user: Principal, w: Window) -> Figures:
        start, end = midnight(w.first), midnight(w.last + timedelta(days=1))
        now = clock()
        daily = group(await oee.daily(conn, ids, start, end), "day")
        gantt_start = midnight(w.day) if w.day else start
        gantt_end = gantt_start + timedelta(days=1) if w.day else end
        booked = [
            b
            for b in await bookings.list(conn, user, gantt_start, gantt_end, limit=10_000)
            if b["device_id"] in ids and b["status"] != "cancelled"
        ]
        return Figures(
            ids=ids,
            daily={(r["device_id"], r["period"]): r for r in daily.to_dict("records")},
            gantt_start=gantt_start,
            gantt_end=gantt_end,
            booked=booked,
            states={i: list(await reader.timeline(i, gantt_start, gantt_end)) for i in ids},
            losses=await downtime.pareto(conn, ids, start, end, now, zone, explained_outside=True),
            energy=await center_figures.energy_by_class_month(conn, oee.energy, classes, w.first, w.last, zone),
            subsidy=await center_figures.subsidy_against_caps(conn, w.last.year),
            year=w.last.year,
        )

    def class_name(texts: Texts, class_id: str) -> str:
        c = catalogue.classes.get(class_id)
        return (c.name_zh or c.name) if c and texts.lang == "zh" else (c.name if c else class_id)

    @router.get("/management")
    async def management(
        request: Request,
        user: Visitor,
        since: date | None = None,
        until: date | None = None,
        day: date | None = None,
    ) -> HTMLResponse:
        texts = pages.texts(request)
        w = window(clock().astimezone(zone).date(), since, until, day)
        async with pool.connection() as conn:
            f = await figures(conn, user, w)
        labels = [f"{d:%m-%d}" for d in w.days]

        def daily(device: str, d: date, key: str) -> float | None:
            return _share(f.daily.get((device, d), {}).get(key))

        trend = charts.line_chart(labels, {i: [daily(i, d, "oee") for d in w.days] for i in ids}, texts("OEE trend"))
        heat = charts.heat_map(
            ids,
            labels,
            {(i, f"{d:%m-%d}"): daily(i, d, "utilisation") for i in ids for d in w.days},
            texts("Utilisation"),
        )
        span = (f.gantt_end - f.gantt_start).total_seconds()
        bars = [
            charts.Bar(
                b["device_id"],
                (b["start"] - f.gantt_start).total_seconds(),
                (b["end"] - f.gantt_start).total_seconds(),
                "booking",
                f"{b['organization_name']} {texts.when(b['start'])}–{texts.clock(b['end'])}",
            )
            for b in f.booked
        ]
        for i in ids:
            bars += charts.state_bars(i, f.states[i], f.gantt_start, texts)
        query = f"since={w.first.isoformat()}&until={w.last.isoformat()}"
        if w.day:
            ticks = [(h * 3600.0, f"{h:02d}:00") for h in range(0, 24, 2)]
            links = None
        else:
            ticks = [((midnight(d) - f.gantt_start).total_seconds(), f"{d:%m-%d}") for d in w.days]
            links = {f"{d:%m-%d}": f"/management?{query}&day={d.isoformat()}#gantt" for d in w.days}
        lang_zh = texts.lang == "zh"
        pareto_items = [
            ((row.name_zh if lang_zh and row.name_zh else row.name), row.seconds / 3600, row.cumulative_share)
            for row in f.losses.rows
        ]
        months = sorted({e.month for e in f.energy})
        by_class: dict[str, list[float]] = {}
        for e in f.energy:
            by_class.setdefault(class_name(texts, e.device_class), [0.0] * len(months))[months.index(e.month)] = e.kwh
        return pages.render(
            request,
            "management.html",
            user,
            problems=[texts(p) for p in w.problems],
            first=w.first,
            last=w.last,
            day=w.day,
            query=query,
            trend=trend,
            heat=heat,
            gantt=charts.gantt(ids, span, ticks, bars, texts("Booked versus running"), links),
            pareto=charts.pareto(pareto_items, texts("Down time by reason"), texts("hours")),
            pareto_rows=f.losses.rows,
            energy=charts.grouped_bars([f"{m:%Y-%m}" for m in months], by_class, texts("Energy"), "kWh"),
            energy_rows=[(class_name(texts, e.device_class), e) for e in f.energy],
            carbon=oee.energy.carbon,
            subsidy=charts.against_caps(
                [(f"{u.program_name} · {u.organization_name}", float(u.used), float(u.cap)) for u in f.subsidy],
                texts("Subsidy against caps"),
                "CNY",
            ),
            subsidy_rows=f.subsidy,
            subsidy_totals=center_figures.program_totals(f.subsidy),
            program_names={u.program_id: u.program_name for u in f.subsidy},
            year=f.year,
        )

    @router.get("/management/{chart}.csv")
    async def management_csv(
        user: Visitor,
        chart: Chart,
        since: date | None = None,
        until: date | None = None,
        day: date | None = None,
    ) -> Response:
        """A chart's numbers. The header names are data names, the same in every language, so a spreadsheet
        built on a download keeps working; times are the center's local time."""
        w = window(clock().astimezone(zone).date(), since, until, day)
        if w.problems:
            raise Invalid(" ".join(w.problems))
        async with pool.connection() as conn:
            f = await figures(conn, user, w)
        out = io.StringIO(newline="")
        writer = csv.writer(out)
        for row in _table(chart, f, w):
            writer.writerow([csv_cell(c.astimezone(zone) if isinstance(c, datetime) else c) for c in row])
        name = f"{chart}-{w.first.isoformat()}-{w.last.isoformat()}.csv"
        return Response(
            "\ufeff" + out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return router


def _table(chart: Chart, f: Figures, w: Window) -> list[list[Any]]:
    """The rows of one chart's CSV, header first."""
    if chart in ("oee", "utilisation"):
        keys = ["availability", "performance", "quality", "oee"] if chart == "oee" else ["utilisation"]
        return [["device_id", "day", *keys]] + [
            [i, d, *(_round(f.daily.get((i, d), {}).get(k)) for k in keys)] for i in f.ids for d in w.days
        ]
    if chart == "gantt":
        rows: list[list[Any]] = [["device_id", "kind", "start", "end", "what"]]
        rows += [[b["device_id"], "booking", b["start"], b["end"], b["organization_name"]] for b in f.booked]
        rows += [[i, "state", s["start"], s["end"], s["state"]] for i in f.ids for s in f.states[i]]
        return rows
    if chart == "downtime":
        return [["code", "name", "name_zh", "seconds", "intervals", "share", "cumulative_share"]] + [
            [r.code, r.name, r.name_zh, round(r.seconds), r.intervals, round(r.share, 4), round(r.cumulative_share, 4)]
            for r in f.losses.rows
        ]
    if chart == "energy":
        return [["device_class", "month", "kwh", "idle_kwh", "co2_kg", "kg_co2_per_kwh"]] + [
            [e.device_class, f"{e.month:%Y-%m}", round(e.kwh, 3), round(e.idle_kwh, 3), e.co2_kg, e.factor]
            for e in f.energy
        ]
    return [["year", "program_id", "organization_id", "organization_name", "cap", "used", "remaining"]] + [
        [f.year, u.program_id, u.organization_id, u.organization_name, u.cap, u.used, u.remaining] for u in f.subsidy
    ]


def _round(value: Any) -> float | None:
    share = _share(value)
    return None if share is None else round(share, 4)
