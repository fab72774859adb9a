"""A customer moves one of its coming bookings (another time or device of the class, a new reference):
the form shows the new price and what stands in the way before the change is confirmed, and a taken slot
offers the nearest free ones. The booking domain checks and prices the change as it would a new booking."""

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg_pool import AsyncConnectionPool

from accounts.model import Principal
from booking.bookings import BookingChange, Bookings, SlotTaken
from booking.catalogue import Catalogue
from common.errors import DomainError
from common.http import RowId
from fabhub.web.booking_pages import checked, parse_local, refusals
from fabhub.web.i18n import Texts
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions, field


def make_router(
    pages: Pages,
    sessions: WebSessions,
    pool: AsyncConnectionPool,
    bookings: Bookings,
    catalogue: Catalogue,
    clock: Any,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    zone = pages.zone
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py

    async def change_page(
        request: Request,
        user: Principal,
        booking_id: int,
        values: dict[str, Any] | None = None,
        status: int = 200,
        **extra: Any,
    ) -> HTMLResponse:
        try:
            async with pool.connection() as conn:
                booking = await bookings.get(conn, booking_id, user)
        except DomainError:
            return pages.not_found(request, user)
        cls = catalogue.classes.get(booking["class_id"])
        shown = values or {
            "start": booking["start"].astimezone(zone),
            "end": booking["end"].astimezone(zone),
            "device_id": booking["device_id"],
            "reference": booking["reference"] or "",
        }
        return pages.render(
            request,
            "change_booking.html",
            user,
            status=status,
            b=booking,
            values=shown,
            devices=[(d, catalogue.devices[d].name) for d in catalogue.class_devices(booking["class_id"])],
            step=cls.rules.granularity if cls else None,
            movable=booking["status"] == "confirmed" and booking["start"] > clock(),
            **extra,
        )

    def read_change(form: Any) -> tuple[dict[str, Any], BookingChange | None]:
        """The form as typed (to show again) and the change it asks for (None when a time is missing)."""
        start, end = parse_local(field(form, "start"), zone), parse_local(field(form, "end"), zone)
        device_id, reference = field(form, "device_id") or None, str(field(form, "reference", "")).strip()[:100]
        values = {"start": start, "end": end, "device_id": device_id, "reference": reference}
        if start is None or end is None:
            return values, None
        return values, BookingChange(start, end, device_id=device_id, reference=reference)

    @router.get("/my-bookings/{booking_id}/change")
    async def form(request: Request, user: Visitor, booking_id: RowId) -> HTMLResponse:
        return await change_page(request, user, booking_id)

    async def handle(request: Request, user: Principal, booking_id: int, act: Any) -> Response:
        """The posted form checked, then `act(change, texts, again)`; a refusal shows the form again with why
        (and for a taken slot, the nearest free ones)."""
        values, change = read_change(await sessions.csrf.checked_form(request))
        texts = pages.texts(request)
        again = partial(change_page, request, user, booking_id, values)
        if change is None:
            return await again(422, problems=[texts("Give a start and an end, in the years 2000 to 2199.")])
        try:
            response: Response = await act(change, texts, again)
        except SlotTaken as exc:
            others = await bookings.alternatives(exc.plan)
            return await again(409, problems=[texts("The slot is taken.")], alternatives=others)
        except DomainError as exc:
            return await again(exc.status, problems=refusals(texts, exc))
        return response

    @router.post("/my-bookings/{booking_id}/change/quote")
    async def quote(request: Request, user: Visitor, booking_id: RowId) -> Response:
        async def act(change: BookingChange, texts: Texts, again: Any) -> Response:
            async with pool.connection() as conn:
                found = await bookings.check_change(conn, user, booking_id, change)
            shown, others = await checked(texts, bookings, found)  # said at once, with what is free instead
            return await again(quote=found.quote, problems=shown, bookable=found.bookable, alternatives=others)

        return await handle(request, user, booking_id, act)

    @router.post("/my-bookings/{booking_id}/change")
    async def confirm(request: Request, user: Visitor, booking_id: RowId) -> Response:
        async def act(change: BookingChange, texts: Texts, again: Any) -> Response:
            async with pool.connection() as conn, conn.transaction():
                await bookings.change(conn, user, booking_id, change)
            return RedirectResponse(f"/my-bookings?changed={booking_id}", status_code=303)

        return await handle(request, user, booking_id, act)

    return router
