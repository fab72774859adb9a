"""SME staff book here: a week calendar per device class with free and taken slots, a booking form that
shows the subsidized price before confirming, my bookings with cancel (and its fee when late), the iCal
link, and for each past booking its measured usage and OEE. Every form is checked on the server by the
booking domain itself; its rule codes are shown in the reader's language."""

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg_pool import AsyncConnectionPool

from accounts import audit
from accounts.calendar_secrets import rotate_calendar_secret
from accounts.model import Principal, Role
from accounts.qualifications import list_qualifications
from accounts.users import list_users
from booking import availability, hours, pricing, series, waiting
from booking.availability import Slot
from booking.bookings import BookingRequest, Bookings, Check, SlotTaken
from booking.catalogue import Catalogue, DeviceClass
from common.errors import DomainError
from common.http import EARLIEST_YEAR, LATEST_YEAR, RowId
from fabhub.web.i18n import Texts
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions, field
from notify.preferences import Preferences, choose, preferences_of
from oee.invoices import documents
from oee.service import OeeService, group

STATUSES_LIVE = ("confirmed", "in_progress")
REPEATS = ("DAILY", "WEEKLY")
REMINDER_CHOICES = ((1440, "24 hours before"), (180, "3 hours before"), (60, "1 hour before"))


def plausible(day: date | None) -> date | None:
    """A date inside the years the API accepts, where date arithmetic cannot overflow; else nothing."""
    return day if day is not None and EARLIEST_YEAR <= day.year <= LATEST_YEAR else None


def parse_local(value: str | None, zone: Any) -> datetime | None:
    """A `datetime-local` field: the center's wall-clock time, without an offset (years 2000-2199)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if plausible(parsed.date()) is None:
        return None
    return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed.astimezone(zone)


def refusals(texts: Texts, exc: DomainError) -> list[str]:
    """A refusal in the reader's language: each broken rule, or the domain's sentence."""
    found = exc.extra.get("problems") or []
    return [texts.rule(p["rule"], p["message"]) for p in found] or [texts.error(exc.detail)]


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def make_router(
    pages: Pages,
    sessions: WebSessions,
    pool: AsyncConnectionPool,
    bookings: Bookings,
    catalogue: Catalogue,
    oee: OeeService,
    clock: Any,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    zone = pages.zone
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py

    def class_label(request: Request, class_id: str) -> str:
        cls = catalogue.classes[class_id]
        return (cls.name_zh or cls.name) if pages.texts(request).lang == "zh" else cls.name

    def problem_texts(request: Request, exc: DomainError) -> list[str]:
        return refusals(pages.texts(request), exc)

    async def week_grid(user: Principal, class_id: str, device_id: str | None, monday: date) -> dict[str, Any]:
        """Rows of the class's grid; each cell mine, free (some device free through it), closed (past, or the
        center closed) or taken (booked by others, or maintenance)."""
        now = clock()
        cls = catalogue.classes[class_id]
        step = cls.rules.granularity
        start = datetime.combine(monday, time(), zone)
        end = start + timedelta(days=7)
        device_ids = [device_id] if device_id else catalogue.class_devices(class_id)
        async with pool.connection() as conn:
            free = await availability.free_slots(conn, device_ids, start, end, now, cls.rules, zone)
            mine = await bookings.list(conn, user, start, end, class_id=class_id, limit=2000)
            opened = await hours.open_time(conn, start, end, zone)
        intervals = [iv for d in device_ids for iv in free[d]]
        own = [
            (b["start"], b["end"])
            for b in mine
            if b["status"] in STATUSES_LIVE and b["organization_id"] == user.organization_id
        ]
        first, last = time(7), time(21)
        for s, e in opened:  # a center open outside 07-21 widens the grid
            s, e = s.astimezone(zone), e.astimezone(zone)
            first = min(first, s.time())
            last = max(last, e.time()) if e.date() == s.date() else time(23, 59)
        rows = []
        slot = datetime.combine(monday, first, zone)
        while slot.time() < last and slot.date() == monday:
            cells = []
            for day in range(7):
                a = slot + timedelta(days=day)
                b = a + step
                if any(s < b and a < e for s, e in own):
                    state = "mine"
                elif any(s <= a and b <= e for s, e in intervals):
                    state = "free"
                elif a < now or not any(s <= a and b <= e for s, e in opened):
                    state = "closed"
                else:
                    state = "taken"
                cells.append((state, a))
            rows.append((slot.time(), cells))
            slot += step
        return {"rows": rows, "days": [monday + timedelta(days=i) for i in range(7)], "step": step}

    async def book_page(
        request: Request, user: Principal, values: dict[str, Any], status: int = 200, **extra: Any
    ) -> HTMLResponse:
        class_id = values.get("class_id") or next(iter(catalogue.classes))
        if class_id not in catalogue.classes:
            class_id = next(iter(catalogue.classes))
        device_id = values.get("device_id") or None
        if device_id and device_id not in catalogue.class_devices(class_id):
            device_id = None
        week = values.get("week") or monday_of(clock().astimezone(zone).date())
        grid = await week_grid(user, class_id, device_id, week)
        customers = []
        qualified: dict[str, date] = {}
        async with pool.connection() as conn:
            if user.is_operator:  # the floor books for a customer, who must be qualified
                customers = [u for u in await list_users(conn) if u.role == Role.customer and u.active]
            else:  # a customer sees which classes they may book, and until when
                qualified = {q.device_class: q.expires_on for q in await list_qualifications(conn, user.id)}
        today = clock().astimezone(zone).date()
        standing = [
            (class_label(request, c), qualified.get(c), c in qualified and qualified[c] >= today)
            for c in catalogue.classes
        ]
        classes = [(c, class_label(request, c)) for c in catalogue.classes]
        devices = [(d, catalogue.devices[d].name) for d in catalogue.class_devices(class_id)]
        return pages.render(
            request,
            "book.html",
            user,
            status=status,
            classes=classes,
            devices=devices,
            class_id=class_id,
            device_id=device_id,
            week=week,
            previous=week - timedelta(days=7),
            following=week + timedelta(days=7),
            values=values,
            customers=customers,
            standing=standing if user.role == Role.customer else [],
            **grid,
            **extra,
        )

    def read_values(form: Any) -> dict[str, Any]:
        start, end = parse_local(field(form, "start"), zone), parse_local(field(form, "end"), zone)
        user_id = field(form, "user_id", "")
        return {
            "user_id": int(user_id) if user_id.isdigit() and len(user_id) < 19 else None,
            "class_id": field(form, "class_id"),
            "device_id": field(form, "device_id") or None,
            "start": start,
            "end": end,
            "week": monday_of(start.date()) if start else None,
            "reference": str(field(form, "reference", "")).strip()[:100] or None,
            "repeat": field(form, "repeat") if field(form, "repeat") in REPEATS else None,
            "times": int(times) if (times := str(field(form, "times", ""))).isdigit() and len(times) < 3 else 2,
        }

    def request_of(values: dict[str, Any]) -> BookingRequest:
        return BookingRequest(
            start=values["start"],
            end=values["end"],
            device_id=values["device_id"],
            class_id=values["class_id"],
            user_id=values["user_id"],
            reference=values.get("reference"),
        )

    def missing_times(request: Request, values: dict[str, Any]) -> list[str]:
        texts = pages.texts(request)
        problems = []
        if values["start"] is None or values["end"] is None:
            problems.append(texts("Give a start and an end, in the years 2000 to 2199."))
        elif values["end"] <= values["start"]:
            problems.append(texts("The end must come after the start."))
        elif values["class_id"] not in catalogue.classes:
            problems.append(texts("Choose a class of machines."))
        return problems

    @router.get("/book")
    async def book(
        request: Request,
        user: Visitor,
        cls: str | None = None,
        device: str | None = None,
        week: str | None = None,
        start: str | None = None,
        booked: str | None = None,
    ) -> HTMLResponse:
        values: dict[str, Any] = {"class_id": cls, "device_id": device}
        try:
            day = date.fromisoformat(week or "")
            values["week"] = monday_of(day) if plausible(day) else None
        except ValueError:
            values["week"] = None
        begin = parse_local(start, zone)
        if begin is not None and (cls or next(iter(catalogue.classes))) in catalogue.classes:
            rules = catalogue.classes[cls or next(iter(catalogue.classes))].rules
            values.update(start=begin, end=begin + rules.min_booking, week=values["week"] or monday_of(begin.date()))
        notice = pages.texts(request)("Booked.") if booked else None
        return await book_page(request, user, values, notice=notice)

    def rule_of(values: dict[str, Any]) -> str:
        return f"FREQ={values['repeat']};COUNT={values['times']}"

    @router.post("/book/quote")
    async def quote(request: Request, user: Visitor) -> HTMLResponse:
        values = read_values(await sessions.csrf.checked_form(request))
        problems = missing_times(request, values)
        if problems:
            return await book_page(request, user, values, status=422, problems=problems)
        if values["repeat"]:
            try:
                async with pool.connection() as conn:
                    found = await series.preview(conn, bookings, user, request_of(values), rule_of(values))
            except DomainError as exc:
                return await book_page(request, user, values, status=exc.status, problems=problem_texts(request, exc))
            return await book_page(request, user, values, occurrences=found, bookable=any(o.bookable for o in found))
        try:
            async with pool.connection() as conn:
                check = await bookings.check(conn, user, request_of(values))
        except DomainError as exc:
            return await book_page(request, user, values, status=exc.status, problems=problem_texts(request, exc))
        shown, others = await checked(pages.texts(request), bookings, check)
        return await book_page(
            request, user, values, quote=check.quote, problems=shown, bookable=check.bookable, alternatives=others
        )

    @router.post("/book/wait")
    async def wait(request: Request, user: Visitor) -> Response:
        form = await sessions.csrf.checked_form(request)
        values = read_values(form)
        problems = missing_times(request, values)
        if problems:
            return await book_page(request, user, values, status=422, problems=problems)
        try:
            async with pool.connection() as conn, conn.transaction():
                entry = await waiting.join(conn, bookings, user, request_of(values), field(form, "auto_book") == "1")
        except DomainError as exc:
            return await book_page(request, user, values, status=exc.status, problems=problem_texts(request, exc))
        target = "/my-bookings" if user.role == Role.customer else f"/book?cls={values['class_id']}"
        return RedirectResponse(f"{target}{'&' if '?' in target else '?'}waiting={entry['id']}", status_code=303)

    @router.post("/book")
    async def confirm(request: Request, user: Visitor) -> Response:
        values = read_values(await sessions.csrf.checked_form(request))
        problems = missing_times(request, values)
        if problems:
            return await book_page(request, user, values, status=422, problems=problems)
        if values["repeat"]:
            try:
                async with pool.connection() as conn, conn.transaction():
                    made = await series.book(conn, bookings, user, request_of(values), rule_of(values), True)
            except DomainError as exc:
                return await book_page(request, user, values, status=exc.status, problems=problem_texts(request, exc))
            target = "/my-bookings" if user.role == Role.customer else f"/book?cls={values['class_id']}"
            return RedirectResponse(f"{target}{'&' if '?' in target else '?'}booked={made['id']}", status_code=303)
        try:
            async with pool.connection() as conn, conn.transaction():
                row = await bookings.create(conn, user, request_of(values))
        except SlotTaken as exc:
            others = await bookings.alternatives(exc.plan)
            return await book_page(
                request,
                user,
                values,
                status=409,
                problems=[pages.texts(request)("The slot was just taken.")],
                alternatives=others,
            )
        except DomainError as exc:
            return await book_page(request, user, values, status=exc.status, problems=problem_texts(request, exc))
        target = "/my-bookings" if user.role == Role.customer else f"/book?cls={values['class_id']}"
        return RedirectResponse(f"{target}{'&' if '?' in target else '?'}booked={row['id']}", status_code=303)

    def name_of(device_id: str, class_id: str) -> str:
        """A device's name, else its class's (a class waiter not offered a device yet)."""
        if device_id in catalogue.devices:
            return catalogue.devices[device_id].name
        cls = catalogue.classes.get(class_id)
        return cls.name_zh or cls.name if cls is not None else class_id

    def ended_charge(cls: DeviceClass | None) -> tuple[str, Decimal] | None:
        """What ending a booking of the class early charges (its billing basis), with the metered minimum share."""
        if cls is None:
            return None
        if cls.billing_basis == "metered":
            return "Charged for the running time, at least {share} of the booked slot.", cls.metered_minimum_share
        return "Charged for the booked slot.", cls.metered_minimum_share

    async def my_page(request: Request, user: Principal, status: int = 200, **extra: Any) -> HTMLResponse:
        now = clock()
        async with pool.connection() as conn:
            rows = await bookings.list(conn, user, now - timedelta(days=62), now + timedelta(days=62), limit=500)
        upcoming: list[dict[str, Any]] = []
        past: list[dict[str, Any]] = []
        cancelled: list[dict[str, Any]] = []
        for b in sorted(rows, key=lambda r: r["start"]):
            cls = catalogue.classes.get(b["class_id"])  # a class retired from devices.yaml keeps its bookings
            late, fee = (
                pricing.cancellation(
                    b["start"], now, b["net"], cls.rules.late_cancellation, cls.rules.late_cancellation_fee_share
                )
                if cls is not None
                else (False, pricing.ZERO)
            )
            # checked in once the machine runs, or at the no-show deadline: a booking whose slot has begun is under
            # way to its customer from its first minute
            shown = "in_progress" if b["status"] == "confirmed" and b["start"] <= now else b["status"]
            shown = "ended early" if b["booked_end"] else shown
            b = {**b, "late": late, "fee_if_cancelled": fee, "shown_status": shown, "if_ended": ended_charge(cls)}
            if b["status"] == "cancelled":
                cancelled.append(b)  # never usage: a late cancellation's fee is listed with it
            elif b["end"] > now and b["status"] in STATUSES_LIVE:
                upcoming.append(b)
            else:
                past.append(b)
        past = past[-20:][::-1]
        cancelled = cancelled[-20:][::-1]
        usage: dict[int, Any] = {}
        async with pool.connection() as conn:
            for b in past:
                if b["status"] in ("completed", "in_progress"):
                    daily = await oee.daily(conn, [b["device_id"]], b["start"], b["end"], user.organization_id)
                    total = group(daily, "total")
                    if len(total):
                        usage[b["id"]] = total.iloc[0].to_dict()
            issued = await documents(conn, user)
            open_entries = [
                {**w, "device_name": name_of(w["offered_device"] or w["device_id"] or "", w["class_id"])}
                for w in await waiting.open_entries(conn, user)
            ]
            chosen = await preferences_of(conn, user.id)
        texts = pages.texts(request)
        reminder_choices = [(m, texts(label)) for m, label in REMINDER_CHOICES]
        return pages.render(
            request,
            "my_bookings.html",
            user,
            status=status,
            upcoming=upcoming,
            past=past,
            cancelled=cancelled,
            usage=usage,
            now=now,
            invoices=issued,
            waiting=open_entries,
            preferences=chosen,
            reminder_choices=reminder_choices,
            **extra,
        )

    @router.get("/my-bookings")
    async def mine(
        request: Request,
        user: Visitor,
        booked: int | None = None,
        cancelled: int | None = None,
        changed: int | None = None,
        waiting: int | None = None,
        withdrawn: int | None = None,
        saved: int | None = None,
        ended: int | None = None,
    ) -> HTMLResponse:
        texts = pages.texts(request)
        if ended:
            async with pool.connection() as conn:
                try:
                    row = await bookings.get(conn, ended, user)
                except DomainError as exc:
                    return await my_page(request, user, status=exc.status, problems=[texts.error(exc.detail)])
            said_ended = texts("Booking {id} ended early; the machine is free for others from {time}.")
            return await my_page(request, user, notice=said_ended.format(id=ended, time=texts.clock(row["end"])))
        said = {
            "Booked.": booked,
            "Cancelled.": cancelled,
            "Changed.": changed,
            "You are on the waiting list.": waiting,
            "Withdrawn from the waiting list.": withdrawn,
            "Saved.": saved,
        }
        notice = next((texts(text) for text, given in said.items() if given), None)
        return await my_page(request, user, notice=notice)

    async def act(request: Request, user: Principal, booking_id: int, action: str, said: str) -> Response:
        """A booking's transition from My bookings: done, then the list with `said` naming it; else the refusal."""
        await sessions.csrf.checked_form(request)
        try:
            async with pool.connection() as conn, conn.transaction():
                await getattr(bookings, action)(conn, user, booking_id)
        except DomainError as exc:
            return await my_page(request, user, status=exc.status, problems=[pages.texts(request).error(exc.detail)])
        return RedirectResponse(f"/my-bookings?{said}={booking_id}", status_code=303)

    @router.post("/my-bookings/{booking_id}/cancel")
    async def cancel(request: Request, user: Visitor, booking_id: RowId) -> Response:
        return await act(request, user, booking_id, "cancel", "cancelled")

    @router.post("/my-bookings/{booking_id}/finish")
    async def finish(request: Request, user: Visitor, booking_id: RowId) -> Response:
        return await act(request, user, booking_id, "finish", "ended")

    @router.post("/my-bookings/waiting/{entry_id}/{action}")
    async def waiting_entry(request: Request, user: Visitor, entry_id: RowId, action: str) -> Response:
        await sessions.csrf.checked_form(request)
        if action not in ("accept", "withdraw"):
            return await my_page(request, user, status=404, problems=[pages.texts(request)("Not found.")])
        try:
            async with pool.connection() as conn, conn.transaction():
                if action == "accept":
                    await waiting.accept(conn, bookings, user, entry_id)
                else:
                    await waiting.withdraw(conn, user, entry_id, clock())
        except DomainError as exc:
            return await my_page(request, user, status=exc.status, problems=[pages.texts(request).error(exc.detail)])
        done = "booked" if action == "accept" else "withdrawn"
        return RedirectResponse(f"/my-bookings?{done}={entry_id}", status_code=303)

    @router.post("/my-bookings/notifications")
    async def notifications(request: Request, user: Visitor) -> Response:
        form = await sessions.csrf.checked_form(request)
        minutes = [int(m) for m in form.getlist("reminder") if isinstance(m, str) and m.isdigit() and len(m) < 6]
        try:
            chosen = Preferences(
                email=field(form, "email") == "1", language=field(form, "language", "zh-CN"), reminder_minutes=minutes
            )
        except ValueError:
            return await my_page(request, user, status=422, problems=[pages.texts(request)("Choose from the list.")])
        async with pool.connection() as conn:
            await choose(conn, user.id, chosen)
        return RedirectResponse("/my-bookings?saved=1", status_code=303)

    @router.post("/my-bookings/calendar-link")
    async def calendar_link(request: Request, user: Visitor) -> HTMLResponse:
        await sessions.csrf.checked_form(request)
        async with pool.connection() as conn, conn.transaction():
            secret = await rotate_calendar_secret(conn, user.id)
            await audit.record(conn, clock(), user, "rotate_calendar_secret", "app_user", user.id)
        return await my_page(request, user, feed_url=str(request.url_for("calendar_feed", secret=secret)))

    return router


async def checked(texts: Texts, bookings: Bookings, found: Check) -> tuple[list[str], list[Slot]]:
    """What a price check says before anything is confirmed: the rules broken and, when no device is free,
    why (taken, or under maintenance) with the nearest free slots instead."""
    shown = [texts.rule(v.rule, v.message) for v in found.problems]
    if found.unavailable is None:
        return shown, []
    return [*shown, texts.error(found.unavailable)], await bookings.alternatives(found.plan)
