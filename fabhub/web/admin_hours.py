"""When the center is open, for admins: the weekly pattern, and per year the closed days (public holidays,
entered as a list at once) and the make-up working days (调休) that open with a weekday's hours. Changes go
through booking.hours, which checks, audits and applies them to availability and the booking check alike;
bookings the change leaves outside the hours stay booked and are counted here for the admin to sort out."""

import re
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg_pool import AsyncConnectionPool

from accounts.model import Principal
from booking import hours
from common.errors import DomainError, Invalid
from common.http import EARLIEST_YEAR, LATEST_YEAR
from fabhub.web.i18n import Texts
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions, field

WEEKDAYS = range(1, 8)
WEEKDAY_NAMES = ("", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_SPAN = re.compile(r"^\s*(\d{1,2}:\d{2})\s*[-–~]\s*(\d{1,2}:\d{2})\s*$")
SPAN_RULE = "write each opening as 08:00-12:00, separated by commas, not overlapping (24:00 for midnight)"
DAYS_RULE = "write a date, or two joined by .., then the reason"
YEAR_RULE = "the days must lie in the chosen year, in order"
_DAYS = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})(?:\s*(?:\.\.|~|～|至)\s*(\d{4}-\d{2}-\d{2}))?\s+(.+?)\s*$")


class BadLines(Exception):
    """What is wrong with the typed lines, each in the reader's language."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems


def pattern_of(values: dict[int, str], texts: Texts) -> list[hours.Opening]:
    """'08:00-12:00, 13:00-20:00' per weekday (empty: closed) as the pattern booking.hours checks; each day's
    problem is said here, in the reader's language, rather than as the domain's English."""
    pattern, problems = [], []
    for weekday, text in values.items():
        spans = [_SPAN.match(p) for p in filter(None, (p.strip() for p in re.split(r"[,，;；]", text)))]
        try:
            if not all(spans):
                raise Invalid(SPAN_RULE)
            pattern += hours.validate(hours.Opening(weekday, m.group(1), m.group(2)) for m in spans if m)
        except Invalid:
            problems.append(texts.about(texts(WEEKDAY_NAMES[weekday]), texts(SPAN_RULE)))
    if problems:
        raise BadLines(problems)
    return pattern


def days_of(text: str, year: int, texts: Texts) -> dict[date, str]:
    """Lines 'YYYY-MM-DD reason' or 'YYYY-MM-DD..YYYY-MM-DD reason', every day inside `year`."""
    days: dict[date, str] = {}
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        found = _DAYS.match(line)
        try:
            if found is None:
                raise ValueError
            first = date.fromisoformat(found.group(1))
            last = date.fromisoformat(found.group(2) or found.group(1))
        except ValueError:
            problems.append(texts.about(texts("Line {0}").format(number), texts(DAYS_RULE)))
            continue
        if first.year != year or last.year != year or last < first:
            problems.append(texts.about(texts("Line {0}").format(number), texts(YEAR_RULE)))
            continue
        for ordinal in range(first.toordinal(), last.toordinal() + 1):
            days[date.fromordinal(ordinal)] = found.group(3)
    if problems:
        raise BadLines(problems)
    if not days:
        raise BadLines([texts("Write at least one day.")])
    return days


def year_of(value: str | None, default: int) -> int:
    return int(value) if value and value.isdigit() and EARLIEST_YEAR <= int(value) <= LATEST_YEAR else default


def make_router(pages: Pages, sessions: WebSessions, pool: AsyncConnectionPool, clock: Any) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    zone = pages.zone
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py

    def this_year() -> int:
        return int(clock().astimezone(zone).year)

    async def hours_page(request: Request, user: Principal, year: int, status: int = 200, **extra: Any) -> HTMLResponse:
        async with pool.connection() as conn:
            pattern = await hours.opening_hours(conn)
            closed = await hours.closed_days(conn, date(year, 1, 1), date(year + 1, 1, 1))
            working = await hours.working_days(conn, date(year, 1, 1), date(year + 1, 1, 1))
        week = {d: ", ".join(f"{o.opens}-{o.closes}" for o in pattern if o.weekday == d) for d in WEEKDAYS}
        return pages.render(
            request,
            "admin_hours.html",
            user,
            status=status,
            year=year,
            week=extra.pop("week", week),
            closed=closed,
            working=working,
            weekdays=WEEKDAYS,
            **extra,
        )

    @router.get("/admin/hours")
    async def hours_form(
        request: Request, user: Visitor, year: str | None = None, outside: str | None = None
    ) -> HTMLResponse:
        texts = pages.texts(request)
        notice = None
        if outside is not None and outside.isdigit():
            notice = texts("Saved.") + (
                f" {texts('Bookings now outside the hours (they stay booked)')}: {outside}" if int(outside) else ""
            )
        return await hours_page(request, user, year_of(year, this_year()), notice=notice)

    def saved(year: int, outside: int) -> Response:
        return RedirectResponse(f"/admin/hours?year={year}&outside={outside}", status_code=303)

    @router.post("/admin/hours")
    async def weekly(request: Request, user: Visitor) -> Response:
        form = await sessions.csrf.checked_form(request)
        texts = pages.texts(request)
        year = year_of(field(form, "year"), this_year())
        values = {d: field(form, f"day{d}") for d in WEEKDAYS}
        problems: list[str]
        if any(v is None for v in values.values()):  # a form without the week would close the center
            problems, status = [texts("The form is incomplete; please try again.")], 422
        else:
            try:
                async with pool.connection() as conn:
                    change = await hours.replace_opening_hours(conn, user, pattern_of(values, texts), clock(), zone)
                return saved(year, len(change.bookings_outside_hours))
            except BadLines as exc:
                problems, status = exc.problems, 422
            except DomainError as exc:
                problems, status = [texts.error(exc.detail)], exc.status
        return await hours_page(request, user, year, status, week=values, problems=problems, problem_form="week")

    async def days_form(request: Request, user: Principal, form_name: str, work: Any) -> Response:
        form = await sessions.csrf.checked_form(request)
        texts = pages.texts(request)
        year = year_of(field(form, "year"), this_year())
        text = field(form, "days", "")
        try:
            days = days_of(text, year, texts)
            async with pool.connection() as conn:
                outside = await work(conn, days, form)
            return saved(year, outside)
        except BadLines as exc:
            problems, status = exc.problems, 422
        except DomainError as exc:
            problems, status = [texts.error(exc.detail)], exc.status
        return await hours_page(
            request, user, year, status, problems=problems, problem_form=form_name, typed={form_name: text}
        )

    @router.post("/admin/hours/closed-days")
    async def add_closed_days(request: Request, user: Visitor) -> Response:
        async def work(conn: Any, days: dict[date, str], _: Any) -> int:
            return len(await hours.put_closed_days(conn, user, days, clock(), zone))

        return await days_form(request, user, "closed", work)

    @router.post("/admin/hours/working-days")
    async def add_working_days(request: Request, user: Visitor) -> Response:
        async def work(conn: Any, days: dict[date, str], form: Any) -> int:
            weekday = field(form, "as_weekday", "1")
            as_weekday = int(weekday) if weekday.isdigit() and len(weekday) == 1 else 0
            return len(await hours.put_working_days(conn, user, days, as_weekday, clock(), zone))

        return await days_form(request, user, "working", work)

    async def delete_day(request: Request, user: Principal, day: date, remove: Any) -> Response:
        await sessions.csrf.checked_form(request)
        try:
            async with pool.connection() as conn:
                await remove(conn, user, day, clock())
        except DomainError as exc:
            problems = [pages.texts(request).error(exc.detail)]
            return await hours_page(request, user, year_of(str(day.year), this_year()), exc.status, problems=problems)
        return saved(year_of(str(day.year), this_year()), 0)

    @router.post("/admin/hours/closed-days/{day}/delete")
    async def delete_closed(request: Request, user: Visitor, day: date) -> Response:
        return await delete_day(request, user, day, hours.delete_closed_day)

    @router.post("/admin/hours/working-days/{day}/delete")
    async def delete_working(request: Request, user: Visitor, day: date) -> Response:
        return await delete_day(request, user, day, hours.delete_working_day)

    return router
