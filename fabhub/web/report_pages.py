"""The machine report of a completed booking and the comparison of two to four of an organization's
bookings, as pages (oee.report builds both from the frozen results). Charts are inline SVG drawn here
(fabhub.web.charts): the state timeline, the six big losses largest first, the cycle-time distribution with
its cumulative share and the cycle-time trend; the comparison shows A, P, Q and OEE as a heat map. A customer
sees its organization's bookings; another's reads as not found, as over the API."""

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from psycopg_pool import AsyncConnectionPool

from accounts.model import Principal
from common.errors import DomainError
from common.http import RowId
from fabhub.web import charts
from fabhub.web.i18n import Texts
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions
from oee import report
from oee.report_sheets import carbon_note

LOSSES = (
    ("breakdowns_h", "Breakdowns"),
    ("setup_h", "Setup and adjustments"),
    ("small_stops_h", "Small stops"),
    ("reduced_speed_h", "Reduced speed"),
    ("rejects_h", "Rejects"),
)


def timeline_chart(found: report.Report, texts: Texts) -> Any:
    """The slot as one Gantt row of states, ticks every hour (every few on a long slot)."""
    start, end = found.slot.start, found.slot.end
    span_s = (end - start).total_seconds()
    step = max(1, int(span_s // 3600 // 8))
    ticks = [(h * 3600.0, texts.clock(start + timedelta(hours=h))) for h in range(0, int(span_s // 3600) + 1, step)]
    row = charts.short(found.slot.device_name)
    bars = charts.state_bars(row, [s.model_dump() for s in found.timeline or []], start, texts)
    return charts.gantt([row], span_s, ticks, bars, texts("State timeline"))


def losses_chart(found: report.Report, texts: Texts) -> Any:
    """The six big losses in hours, largest first, with the cumulative share."""
    hours = [(texts(name), getattr(found.losses, key) or 0.0) for key, name in LOSSES]
    hours.sort(key=lambda item: -item[1])
    total = sum(h for _, h in hours) or 1.0
    items, running = [], 0.0
    for name, h in hours:
        running += h
        items.append((name, h, running / total))
    return charts.pareto(items, texts("Six big losses"), texts("h"))


def cycle_charts(cycles: report.Cycles, texts: Texts) -> tuple[Any, Any, float]:
    """The distribution (parts per band of cycle time, cumulative share) and the trend (each measured cycle in
    time order, 100 % = the longest); returns the longest too, for the trend's caption."""
    measured = cycles.parts_measured or 1.0
    items, seen = [], 0.0
    for b in cycles.bins:
        seen += b.parts
        items.append((f"{b.from_s:.0f}–{b.to_s:.0f}", b.parts, seen / measured))
    distribution = charts.pareto(items, texts("Cycle-time distribution"), texts("parts"))
    top = cycles.max_s or 1.0
    trend = charts.line_chart(
        [texts.clock(p.at) for p in cycles.trend],
        {texts("Cycle time"): [p.seconds / top for p in cycles.trend]},
        texts("Cycle-time trend"),
    )
    return distribution, trend, top


def make_router(pages: Pages, sessions: WebSessions, pool: AsyncConnectionPool) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py

    def refused(request: Request, user: Principal, exc: DomainError) -> HTMLResponse:
        texts = pages.texts(request)
        message = texts("Not found.") if exc.status == 404 else texts.error(exc.detail)
        return pages.render(request, "error.html", user, status=exc.status, message=message)

    @router.get("/bookings/{booking_id}/report")
    async def booking_report(request: Request, user: Visitor, booking_id: RowId) -> HTMLResponse:
        try:
            async with pool.connection() as conn:
                found = await report.booking_report(conn, booking_id, user)
        except DomainError as exc:
            return refused(request, user, exc)
        texts = pages.texts(request)
        extra: dict[str, Any] = {}
        if found.cycles is not None and found.cycles.trend:
            extra["distribution"], extra["trend"], extra["trend_top"] = cycle_charts(found.cycles, texts)
        return pages.render(
            request,
            "report.html",
            user,
            r=found,
            timeline=timeline_chart(found, texts) if found.timeline else None,
            losses=losses_chart(found, texts),
            carbon=carbon_note(found, "zh-CN" if texts.lang == "zh" else "en"),
            **extra,
        )

    @router.get("/reports/compare")
    async def comparison(
        request: Request, user: Visitor, bookings: Annotated[list[str] | None, Query(max_length=4)] = None
    ) -> HTMLResponse:
        """`bookings`: ids separated by commas, or the parameter repeated (My bookings' ticked boxes)."""
        ids = ",".join(bookings or [])
        try:
            async with pool.connection() as conn:
                found = await report.compare(conn, report.parse_ids(ids), user)
        except DomainError as exc:
            return refused(request, user, exc)
        texts = pages.texts(request)
        names = [f"#{b.booking_id} {charts.short(b.device_name, 16)}" for b in found.bookings]
        shares = ("availability", "performance", "quality", "oee")
        columns = ["A", "P", "Q", "OEE"]  # the page's legend names them
        values = {
            (name, column): getattr(b, share)
            for name, b in zip(names, found.bookings, strict=True)
            for share, column in zip(shares, columns, strict=True)
        }
        heat = charts.heat_map(names, columns, values, texts("OEE"))
        return pages.render(request, "compare.html", user, c=found, heat=heat, ids=ids)

    return router
