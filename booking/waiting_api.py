"""HTTP routes of the waiting list: join it for a taken slot, see your entries, withdraw, accept an offer."""

# No `from __future__ import annotations`: FastAPI must resolve the dependency alias made in make_router.

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from accounts.auth import Authenticator
from accounts.model import Principal
from booking import waiting
from booking.api import BookingIn, BookingOut, RulesProblem
from booking.bookings import Bookings
from booking.sqlfiles import QUERIES
from common.http import RowId
from common.paging import Key, Listing, Page, Paging, fetch_page
from common.times import Stamp

ENTRIES = Listing("waiting-list", (Key("created_at", "time"), Key("id", "int")))


class WaitIn(BookingIn):
    """The slot wanted (a device or a class, as a booking), and whether to book it at once when it frees."""

    auto_book: bool = Field(False, description="book the slot as soon as it frees, rather than be offered it")


class WaitingEntry(BaseModel):
    id: int
    organization_id: int
    user_id: int
    class_id: str
    device_id: str | None
    start: Stamp
    end: Stamp
    purpose: str
    reference: str | None
    auto_book: bool
    status: str = Field(description="waiting, offered, booked, lapsed (offer not taken), expired, withdrawn")
    offered_device: str | None
    offer_expires_at: Stamp | None
    booking_id: int | None
    created_at: Stamp
    updated_at: Stamp


def make_router(
    pool: AsyncConnectionPool, auth: Authenticator, bookings: Bookings, clock: Callable[[], datetime], prefix: str
) -> APIRouter:
    router = APIRouter(tags=["waiting list"])
    Caller = Annotated[Principal, Depends(auth.caller)]  # roles: fabhub/policy.py

    @router.post(
        f"{prefix}/waiting-list",
        status_code=201,
        responses={404: {}, 409: {}, 422: {"model": RulesProblem}},
        summary="Join the waiting list for a taken slot",
    )
    async def join(principal: Caller, body: WaitIn) -> WaitingEntry:
        """Wait for a taken slot. 409 when it is free now (book it), 422 for rules waiting cannot change."""
        async with pool.connection() as conn, conn.transaction():
            entry = await waiting.join(conn, bookings, principal, body.request(), body.auto_book)
        return WaitingEntry.model_validate(entry)

    @router.get(f"{prefix}/waiting-list", summary="List the waiting-list entries")
    async def entries(principal: Caller, page: Paging) -> Page[WaitingEntry]:
        """First come first; customers see their organization's entries, staff all."""
        own = None if principal.is_staff else principal.organization_id
        params = {"organization_id": own, "id": None}
        async with pool.connection() as conn:
            return await fetch_page(conn, ENTRIES, QUERIES.waiting_rows.sql, params, page, WaitingEntry)

    @router.delete(
        f"{prefix}/waiting-list/{{entry_id}}", responses={404: {}, 409: {}}, summary="Leave the waiting list"
    )
    async def withdraw(principal: Caller, entry_id: RowId) -> WaitingEntry:
        async with pool.connection() as conn, conn.transaction():
            return WaitingEntry.model_validate(await waiting.withdraw(conn, principal, entry_id, clock()))

    @router.post(
        f"{prefix}/waiting-list/{{entry_id}}/accept",
        status_code=201,
        responses={404: {}, 409: {}, 422: {"model": RulesProblem}},
        summary="Book the slot the waiting list offers",
    )
    async def accept(principal: Caller, entry_id: RowId) -> BookingOut:
        """Book the offered slot while the offer is open."""
        async with pool.connection() as conn, conn.transaction():
            return BookingOut.model_validate(await waiting.accept(conn, bookings, principal, entry_id))

    return router
