"""One machine, for technicians: the last hours of its key values as charts, its state timeline, its down
intervals with a reason to attach, and a form to put it into maintenance. The forms go through the booking
and OEE domains, which check and audit them as for the API."""

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg_pool import AsyncConnectionPool

from accounts.model import Principal
from booking import maintenance
from booking.catalogue import Catalogue
from common.errors import DomainError
from fabhub.web import charts
from fabhub.web.booking_pages import parse_local
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions, field
from oee import downtime
from telemetry.reader import TelemetryReader

HOURS = 8
CHARTED = ("spindle_speed", "power_kw", "progress_pct", "feed_override")


def charted(signals: list[str]) -> list[str]:
    """Up to three of the values a technician reads first: a temperature, then speed, power, progress."""
    temperatures = sorted(s for s in signals if s.startswith("temperature."))[:1]
    return [*temperatures, *(s for s in CHARTED if s in signals)][:3]


def make_router(
    pages: Pages,
    sessions: WebSessions,
    pool: AsyncConnectionPool,
    reader: TelemetryReader,
    catalogue: Catalogue,
    clock: Any,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    zone = pages.zone
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py

    async def machine_page(
        request: Request, user: Principal, device_id: str, status: int = 200, **extra: Any
    ) -> HTMLResponse:
        texts = pages.texts(request)
        device = catalogue.devices.get(device_id)
        if device is None:
            return pages.not_found(request, user)
        now = clock()
        start = now - timedelta(hours=HOURS)
        numeric = [s["signal"] for s in await reader.series(device_id) if s["kind"] == "numeric"]
        graphs = []
        for signal in charted(numeric):
            rows = await reader.bucketed_range(device_id, signal, start, now, timedelta(minutes=5))
            values = [r["avg"] for r in rows]
            top = max((v for v in values if v is not None), default=0.0) or 1.0
            labels = [texts.clock(r["bucket"]) for r in rows]
            scaled = [v / top if v is not None else None for v in values]
            graphs.append((signal, top, charts.line_chart(labels, {signal: scaled}, signal)))
        row = charts.short(device.name)
        bars = charts.state_bars(row, await reader.timeline(device_id, start, now), start, texts)
        ticks = [(h * 3600.0, texts.clock(start + timedelta(hours=h))) for h in range(0, HOURS + 1, 2)]
        timeline = charts.gantt([row], HOURS * 3600.0, ticks, bars, texts("State timeline"))
        async with pool.connection() as conn:
            down = await downtime.down_intervals(conn, [device_id], now - timedelta(days=7), now, now, limit=20)
            codes = await downtime.reason_codes(conn)
            windows = await maintenance.list(conn, device_id, now - timedelta(days=1), now + timedelta(days=30))
        return pages.render(
            request,
            "machine.html",
            user,
            status=status,
            device=device,
            graphs=graphs,
            timeline=timeline,
            down=down,
            codes=codes,
            windows=windows,
            hours=HOURS,
            **extra,
        )

    @router.get("/machines/{device_id}")
    async def machine(request: Request, user: Visitor, device_id: str, done: str | None = None) -> HTMLResponse:
        notice = pages.texts(request)("Saved.") if done else None
        return await machine_page(request, user, device_id, notice=notice)

    async def act(request: Request, user: Principal, device_id: str, work: Any, **kept: Any) -> Response:
        """`work` in a transaction; a refusal shows the page again with why, the form as it was filled in
        (`kept`), and the bookings standing in the way with their customers."""
        if device_id not in catalogue.devices:
            return await machine_page(request, user, device_id)
        try:
            async with pool.connection() as conn, conn.transaction():
                await work(conn)
        except DomainError as exc:
            texts = pages.texts(request)
            problems = [texts.error(exc.detail)]
            problems += [
                f"#{b['id']} {b['organization_name']} {texts.when(b['start'])}–{texts.until(b['start'], b['end'])}"
                f" ({texts(b['status'])})"
                for b in exc.extra.get("bookings", ())
            ]
            return await machine_page(request, user, device_id, status=exc.status, problems=problems, **kept)
        return RedirectResponse(f"/machines/{device_id}?done=1", status_code=303)

    @router.post("/machines/{device_id}/maintenance")
    async def put_into_maintenance(request: Request, user: Visitor, device_id: str) -> Response:
        form = await sessions.csrf.checked_form(request)
        texts = pages.texts(request)
        written = field(form, "start")
        start = parse_local(written, zone) if written else clock()  # no start: from now
        end = parse_local(field(form, "end"), zone)
        reason = field(form, "reason", "")
        cancel = field(form, "cancel_bookings") == "on"
        kept = {"filled": {"start": written, "end": field(form, "end", ""), "reason": reason, "cancel": cancel}}
        problems = []
        if start is None or end is None:
            problems.append(texts("Give a start and an end, in the years 2000 to 2199."))
        elif end <= start:
            problems.append(texts("The end must come after the start."))
        elif end <= clock():
            problems.append(texts("The window has already ended."))
        if "\x00" in reason:  # the rest of the reason's rules are the domain's, as for the API
            problems.append(texts("Text cannot contain NUL characters."))
        if problems:
            return await machine_page(request, user, device_id, status=422, problems=problems, **kept)
        assert start is not None  # else a problem above
        assert end is not None
        return await act(
            request,
            user,
            device_id,
            lambda conn: maintenance.create(conn, user, device_id, start, end, reason, cancel, clock()),
            **kept,
        )

    @router.post("/machines/{device_id}/downtime")
    async def attach_reason(request: Request, user: Visitor, device_id: str) -> Response:
        form = await sessions.csrf.checked_form(request)
        try:
            start = datetime.fromisoformat(field(form, "start", ""))
        except ValueError:
            message = pages.texts(request)("Choose a down interval.")
            return await machine_page(request, user, device_id, status=422, problems=[message])
        if start.tzinfo is None:
            start = start.replace(tzinfo=zone)
        code, note = field(form, "code", ""), field(form, "note", "")
        if "\x00" in note or len(note) > 500:
            message = pages.texts(request)("The note holds at most 500 characters.")
            return await machine_page(request, user, device_id, status=422, problems=[message])
        return await act(
            request,
            user,
            device_id,
            lambda conn: downtime.set_reason(conn, user, device_id, start, code, note, clock()),
        )

    return router
