"""Management's view of the center: OEE per device over the days, a utilisation heat map (device x day),
booked against measured time per device (a Gantt of bookings with the machine's states under it) and the
down-time Pareto. All from the OEE module's own figures, so the charts and the API never disagree."""

import math
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from psycopg_pool import AsyncConnectionPool

from accounts.model import Principal
from booking.bookings import Bookings
from booking.catalogue import Catalogue
from fabhub.web import charts
from fabhub.web.booking_pages import plausible
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions
from oee import downtime
from oee.service import OeeService, group
from telemetry.reader import TelemetryReader

MAX_DAYS = 92
GANTT_DAYS = 7


def _share(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def make_router(
    pages: Pages,
    sessions: WebSessions,
    pool: AsyncConnectionPool,
    oee: OeeService,
    reader: TelemetryReader,
    bookings: Bookings,
    catalogue: Catalogue,
    clock: Any,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    zone = pages.zone
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py

    @router.get("/management")
    async def management(
        request: Request, user: Visitor, since: date | None = None, until: date | None = None
    ) -> HTMLResponse:
        texts = pages.texts(request)
        today = clock().astimezone(zone).date()
        problems = []
        if (since and not plausible(since)) or (until and not plausible(until)):
            problems.append(texts("Choose up to 92 days, the first before the last."))
            since = until = None
        last = min(until or today, today)
        first = since or last - timedelta(days=29)
        if first > last or (last - first).days >= MAX_DAYS:
            problems.append(texts("Choose up to 92 days, the first before the last."))
            first = last - timedelta(days=29)
        start = datetime.combine(first, time(), zone)
        end = datetime.combine(last + timedelta(days=1), time(), zone)
        devices = [d for d in catalogue.devices.values() if not d.retired]
        ids = [d.id for d in devices]  # the charts' labels: unique and short (the machine page has the name)
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        labels = [f"{d:%m-%d}" for d in days]
        async with pool.connection() as conn:
            daily = group(await oee.daily(conn, ids, start, end), "day")
            losses = await downtime.pareto(conn, ids, start, end, clock(), zone)
            gantt_start = max(start, end - timedelta(days=GANTT_DAYS))
            booked = await bookings.list(conn, user, gantt_start, end, limit=5000)
        by_key = {(r["device_id"], r["period"]): r for r in daily.to_dict("records")}
        trend = charts.line_chart(
            labels,
            {i: [_share(by_key.get((i, d), {}).get("oee")) for d in days] for i in ids},
            texts("OEE trend"),
        )
        heat = charts.heat_map(
            ids,
            labels,
            {(i, f"{d:%m-%d}"): _share(by_key.get((i, d), {}).get("utilisation")) for i in ids for d in days},
            texts("Utilisation"),
        )
        span = (end - gantt_start).total_seconds()
        bars = [
            charts.Bar(
                b["device_id"],
                (b["start"] - gantt_start).total_seconds(),
                (b["end"] - gantt_start).total_seconds(),
                "booking",
                f"{b['organization_name']} {texts.when(b['start'])}–{texts.clock(b['end'])}",
            )
            for b in booked
            if b["device_id"] in ids and b["status"] != "cancelled"
        ]
        for i in ids:
            bars += charts.state_bars(i, await reader.timeline(i, gantt_start, end), gantt_start, texts)
        ticks = [
            ((datetime.combine(d, time(), zone) - gantt_start).total_seconds(), f"{d:%m-%d}")
            for d in days
            if datetime.combine(d, time(), zone) >= gantt_start
        ]
        lang_zh = texts.lang == "zh"
        pareto_items = [
            ((row.name_zh if lang_zh and row.name_zh else row.name), row.seconds / 3600, row.cumulative_share)
            for row in losses.rows
        ]
        return pages.render(
            request,
            "management.html",
            user,
            problems=problems,
            first=first,
            last=last,
            trend=trend,
            heat=heat,
            gantt=charts.gantt(ids, span, ticks, bars, texts("Booked versus running")),
            pareto=charts.pareto(pareto_items, texts("Down time by reason"), texts("hours")),
            pareto_rows=losses.rows,
        )

    return router
