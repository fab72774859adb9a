"""HTTP routes for energy and carbon. Per device and day is the center's own view (staff): a machine's
consumption outside bookings is nobody's customer data. Per customer and month reads the frozen results of
completed bookings, so a customer sees its own organization's figures, and staff everyone's. Every CO2 figure
comes with the factor, source and year it was computed with."""

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from accounts.auth import Authenticator
from accounts.model import Principal
from booking.catalogue import Catalogue
from common.errors import Invalid, NotFound
from common.http import ID
from oee import energy
from oee.billing_api import Month, OrgId, month_of
from oee.invoices import next_month
from oee.service import OeeService

MAX_DAYS = 92


class CarbonStated(BaseModel):
    carbon_factor: Decimal = Field(description="kg CO2 per kWh")
    carbon_source: str
    carbon_year: int


class DeviceDayOut(CarbonStated):
    device_id: str
    day: date
    energy_kwh: float
    idle_energy_kwh: float = Field(description="drawn while the machine was not running")
    parts_good: float | None = Field(description="null: the machine does not count good parts")
    kwh_per_good_part: float | None
    co2_kg: Decimal


class CustomerMonthOut(BaseModel):
    organization_id: int
    organization_name: str
    bookings: int = Field(description="completed bookings with frozen results")
    measured_bookings: int = Field(description="of which on machines that measure energy")
    energy_kwh: float | None
    idle_energy_kwh: float | None
    parts_good: float | None
    kwh_per_good_part: float | None
    co2_kg: Decimal | None
    carbon_factors: list[Decimal] = Field(description="the factors the bookings were frozen with (kg CO2/kWh)")


def make_router(
    pool: AsyncConnectionPool,
    auth: Authenticator,
    service: OeeService,
    catalogue: Catalogue,
    prefix: str,
) -> APIRouter:
    router = APIRouter(tags=["energy"])
    Caller = Annotated[Principal, Depends(auth.caller)]  # roles: fabhub/policy.py

    @router.get(f"{prefix}/energy/devices", responses={404: {}, 422: {}}, summary="Report energy per machine and day")
    async def devices(
        principal: Caller,
        first: Annotated[date, Query(alias="first_day", description="first local day")],
        last: Annotated[date, Query(alias="last_day", description="last local day, at most 92 days in all")],
        device_id: Annotated[str | None, Query(alias="device", pattern=ID)] = None,
        class_id: Annotated[str | None, Query(alias="class", pattern=ID)] = None,
    ) -> list[DeviceDayOut]:
        """Energy, idle energy, kWh per good part and CO2 per machine and local day, for the machines that
        measure energy (a power meter, or their own counter)."""
        if last < first or last - first >= timedelta(days=MAX_DAYS):
            raise Invalid(f"'last_day' must not be before 'first_day', and at most {MAX_DAYS} days in all")
        ids = catalogue.chosen(device_id, class_id)
        async with pool.connection() as conn:
            rows = await energy.devices_daily(conn, service.energy, ids, first, last, service.zone)
        return [DeviceDayOut(**row) for row in rows]

    @router.get(f"{prefix}/energy/customers", responses={404: {}}, summary="Report energy per customer and month")
    async def customers(principal: Caller, month: Month, organization_id: OrgId = None) -> list[CustomerMonthOut]:
        """Per customer, the energy, idle energy, kWh per good part and CO2 of its completed bookings that
        start in the month, from their frozen results. A customer sees its own organization only."""
        if not principal.is_staff:
            if organization_id not in (None, principal.organization_id):
                raise NotFound(f"no organization {organization_id}")
            organization_id = principal.organization_id
        first = month_of(month)
        start = datetime.combine(first, time(), service.zone)
        end = datetime.combine(next_month(first), time(), service.zone)
        async with pool.connection() as conn:
            rows = await energy.customers(conn, start, end, organization_id)
        return [CustomerMonthOut(**row) for row in rows]

    return router
