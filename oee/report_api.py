"""HTTP routes of the machine report (oee.report): one completed booking's report as JSON, PDF, CSV or XLSX,
and the comparison of two to four of an organization's bookings as JSON, CSV or XLSX. The booking's
organization and staff read them; another organization's booking is not found (404), one not frozen yet is a
409 with the reason, a bad comparison a 422."""

from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Response
from psycopg_pool import AsyncConnectionPool

from accounts.auth import Authenticator
from accounts.model import Principal
from common.http import RowId
from oee import report
from oee.billing_api import MEDIA, Format, download
from oee.report_pdf import report_pdf
from oee.report_sheets import Lang, comparison_file, report_file

Language = Annotated[Literal["zh", "en"], Query(description="Chinese (the default) or English")]
Bookings = Annotated[
    str, Query(max_length=100, description="two to four booking ids of one organization, separated by commas")
]
LANGS: dict[str, Lang] = {"zh": "zh-CN", "en": "en"}


def make_router(
    pool: AsyncConnectionPool, auth: Authenticator, center_name: str, zone: ZoneInfo, prefix: str
) -> APIRouter:
    router = APIRouter(tags=["reports"])
    Caller = Annotated[Principal, Depends(auth.caller)]  # roles: fabhub/policy.py

    async def one(principal: Principal, booking_id: int) -> report.Report:
        async with pool.connection() as conn:
            return await report.booking_report(conn, booking_id, principal)

    async def both(principal: Principal, bookings: str) -> report.Comparison:
        async with pool.connection() as conn:
            return await report.compare(conn, report.parse_ids(bookings), principal)

    # The files first: /report.pdf must not be taken for anything else.
    @router.get(
        f"{prefix}/bookings/{{booking_id}}/report.pdf",
        response_class=Response,
        responses={404: {}, 409: {}},
        summary="Download a booking's machine report as PDF",
    )
    async def booking_report_pdf(principal: Caller, booking_id: RowId, lang: Language = "zh") -> Response:
        """The report as a PDF, in Chinese unless `lang=en`."""
        pdf = await report_pdf(await one(principal, booking_id), center_name, zone, LANGS[lang])
        return download(pdf, "application/pdf", f"booking-{booking_id}-report.pdf")

    @router.get(
        f"{prefix}/bookings/{{booking_id}}/report.{{fmt}}",
        response_class=Response,
        responses={404: {}, 409: {}},
        summary="Download a booking's machine report figures",
    )
    async def booking_report_file(principal: Caller, booking_id: RowId, fmt: Format, lang: Language = "zh") -> Response:
        """The report's figures as CSV (UTF-8 with BOM) or XLSX: section, figure, value, unit."""
        data = await report_file(await one(principal, booking_id), fmt, zone, LANGS[lang])
        return download(data, MEDIA[fmt], f"booking-{booking_id}-report.{fmt}")

    @router.get(
        f"{prefix}/bookings/{{booking_id}}/report",
        responses={404: {}, 409: {}},
        summary="Show a booking's machine report",
    )
    async def booking_report(principal: Caller, booking_id: RowId) -> report.Report:
        """A completed booking's machine report: the slot and what was billed, the times per state, OEE with
        availability, performance and quality, the six big losses in hours, parts, cycle times, programs,
        alarms, down time with reasons and energy, all as frozen when the booking completed."""
        return await one(principal, booking_id)

    @router.get(
        f"{prefix}/reports/compare.{{fmt}}",
        response_class=Response,
        responses={404: {}, 409: {}, 422: {}},
        summary="Export a comparison of bookings",
    )
    async def comparison_export(principal: Caller, fmt: Format, bookings: Bookings, lang: Language = "zh") -> Response:
        """The comparison as CSV or XLSX, a row per booking."""
        data = await comparison_file(await both(principal, bookings), fmt, zone, LANGS[lang])
        return download(data, MEDIA[fmt], f"comparison.{fmt}")

    @router.get(
        f"{prefix}/reports/compare",
        responses={404: {}, 409: {}, 422: {}},
        summary="Compare completed bookings side by side",
    )
    async def comparison(principal: Caller, bookings: Bookings) -> report.Comparison:
        """Two to four completed bookings of one organization side by side (the same part on two robot brands,
        say): cycle time, OEE, energy per good part and scrap."""
        return await both(principal, bookings)

    return router
