"""Energy end to end: a simulated DTSU666 meter on a robot's feeder, read over Modbus TCP by the gateway,
counted exactly once across a network restart and an energy reset of the meter, frozen with a booking, and
CO2 from the grid factor."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.model import Role
from fabhub.catalogue import oee_facts
from oee import energy, results
from oee.service import OeeService
from simulators.machine import Machine, Profile
from simulators.modbus_robot import ModbusRobot
from simulators.power_meter import LOADS, PowerMeter
from tests.accounts_rig import as_role
from tests.booking_rig import ZONE
from tests.gateway_rig import rig
from tests.http import serve
from tests.test_invoices import MARCH, book, center, customer, month_of, setup
from tests.test_invoices import NOW as APRIL

COUNTED = "SELECT coalesce(sum(value), 0) FROM telemetry_sample WHERE device_id = %s AND signal = 'energy_kwh.delta'"
STEP = 0.01  # the meter's counter resolution in devices.yaml


async def test_a_bookings_energy_equals_the_meters_own_count_across_its_restarts(db_url, tmp_path, pool):
    devices = center()
    await setup(pool, devices)
    machine = Machine(7, Profile(ideal_cycle_s=90))
    robot = ModbusRobot("robot-01", 0, machine, speed=0)
    meter = PowerMeter("meter-robot-01", 0, machine, LOADS["robot"], seed=3, speed=0)
    grid = timedelta(minutes=30)
    opened = datetime.fromtimestamp(datetime.now(UTC).timestamp() // 1800 * 1800, UTC) - grid
    org, user = await customer(pool)
    booking_id = await book(pool, org, user, "robot-01", opened, opened + 4 * grid, "completed", "240.00")

    async with rig(db_url, tmp_path, {"robot-01": robot, "meter-robot-01": meter}) as r:

        async def counted_up_to_now() -> None:
            """Waits until every step the meter shows now is stored."""
            want = round(meter.lifetime_kwh - first_seen, 2)
            await r.until(COUNTED, lambda rows: abs(rows[0][0] - want) < STEP + 1e-9, "meter-robot-01")

        await r.until(COUNTED.replace("energy_kwh.delta", "energy_kwh"), lambda rows: rows[0][0] == 0, "meter-robot-01")
        first_seen = meter.lifetime_kwh  # the first reading is the baseline: nothing before it is counted
        machine.force("running", 36_000)
        await robot.tick(0)
        await r.state_becomes("robot-01", "running")
        await meter.tick(1200)  # about 1 kWh at 3 kW
        await counted_up_to_now()
        running_kwh = meter.lifetime_kwh - first_seen

        machine.force("idle", 36_000)
        await robot.tick(0)
        await r.state_becomes("robot-01", "idle")
        await meter.restart()  # the serial gateway rebooted: the meter's register carries on
        await meter.tick(3600)  # 0.3 kWh idle
        await counted_up_to_now()

        meter.clear_energy()  # the energy register cleared: back to 0, which is a reset, never negative use
        await meter.tick(2400)
        await counted_up_to_now()
        idle_kwh = meter.lifetime_kwh - first_seen - running_kwh

        stored = await r.rows(COUNTED, "meter-robot-01")
        assert stored[0][0] == pytest.approx(meter.lifetime_kwh - first_seen, abs=STEP)
        negative = await r.rows(
            "SELECT count(*) FROM telemetry_sample WHERE device_id = 'meter-robot-01' AND signal = 'energy_kwh.delta'"
            " AND value <= 0"
        )
        assert negative == [(0,)]

    oee = OeeService(*oee_facts(devices), ZONE, lambda: opened + 6 * grid)
    async with pool.connection() as conn, conn.transaction():
        booking = {"id": booking_id, "device_id": "robot-01", "organization_id": org, "status": "completed",
                   "start": opened, "end": opened + 4 * grid}  # fmt: skip
        usage = await results.freeze(conn, oee, booking, opened + 6 * grid)
    assert usage is not None
    assert usage["energy_kwh"] == pytest.approx(meter.lifetime_kwh - first_seen, abs=STEP)
    # attributed by the machine's state when each step was counted
    assert usage["idle_energy_kwh"] == pytest.approx(idle_kwh, abs=2 * STEP)
    assert usage["carbon_factor"] == Decimal("0.5703") and usage["carbon_year"] == 2022
    kg = energy.carbon_kg(usage["energy_kwh"], usage["carbon_factor"])
    assert kg == (Decimal(repr(usage["energy_kwh"])) * Decimal("0.5703")).quantize(Decimal("0.01"))


def test_carbon_is_kwh_times_the_factor_to_the_hundredth():
    carbon = energy.Carbon(Decimal("0.5366"), "江苏省 2021 年电网排放因子", 2021)
    assert carbon.kg(100.0) == Decimal("53.66")
    assert carbon.kg(12.345) == Decimal("6.62")  # 6.6243...
    assert carbon.kg(None) is None
    assert carbon.stated() == {"carbon_factor": Decimal("0.5366"), "carbon_source": "江苏省 2021 年电网排放因子",
                               "carbon_year": 2021}  # fmt: skip


async def test_energy_per_machine_day_and_per_customer_month_over_http(db_url, pool):
    """The hand-made March of test_invoices: robot-01's meter counts 3.5 kWh on 3 March, after the robot
    stopped running; the draft freezes it with the booking."""
    invoicing = await setup(pool, center())
    org = await customer(pool)
    await month_of(pool, org)
    async with pool.connection() as conn:
        await invoicing.draft(conn, org[0], MARCH, "tests")
    other = await customer(pool)
    async with serve(db_url, clock=lambda: APRIL) as client:
        finance = await as_role(pool, client, Role.finance)
        own = await as_role(pool, client, Role.customer, org[0])
        stranger = await as_role(pool, client, Role.customer, other[0])

        url = "/api/v1/energy/devices"
        day = {"first_day": "2027-03-03", "last_day": "2027-03-03", "device": "robot-01"}
        r = await client.get(url, params=day, headers=finance)
        assert r.status_code == 200, r.text
        assert [(x["day"], x["energy_kwh"], x["idle_energy_kwh"], x["co2_kg"], x["carbon_factor"])
                for x in r.json()] == [("2027-03-03", 3.5, 3.5, "2.00", "0.5703")]  # fmt: skip
        assert (await client.get(url, params=day, headers=own)).status_code == 403  # the center's own view
        backwards = day | {"first_day": "2027-03-04"}
        assert (await client.get(url, params=backwards, headers=finance)).status_code == 422
        too_long = day | {"first_day": "2026-12-01"}
        assert (await client.get(url, params=too_long, headers=finance)).status_code == 422
        assert (await client.get(url, params=day | {"device": "nope-01"}, headers=finance)).status_code == 404

        url = "/api/v1/energy/customers"
        rows = (await client.get(url, params={"month": "2027-03"}, headers=finance)).json()
        mine = [x for x in rows if x["organization_id"] == org[0]]
        assert [(x["bookings"], x["measured_bookings"], x["energy_kwh"], x["co2_kg"], x["carbon_factors"])
                for x in mine] == [(2, 1, 3.5, "2.00", ["0.5703"])]  # fmt: skip
        seen = (await client.get(url, params={"month": "2027-03"}, headers=own)).json()
        assert [x["organization_id"] for x in seen] == [org[0]]
        assert (await client.get(url, params={"month": "2027-03"}, headers=stranger)).json() == []
        asked = {"month": "2027-03", "organization_id": org[0]}
        assert (await client.get(url, params=asked, headers=stranger)).status_code == 404
        assert (await client.get(url, params={"month": "2027-13"}, headers=own)).status_code == 422
