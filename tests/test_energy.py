"""Energy end to end: a simulated DTSU666 meter on a robot's feeder, read over Modbus TCP by the gateway,
counted exactly once across a network restart and an energy reset of the meter, frozen with a booking, and
CO2 from the grid factor."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from fabhub.catalogue import oee_facts
from oee import energy, results
from oee.service import OeeService
from simulators.machine import Machine, Profile
from simulators.modbus_robot import ModbusRobot
from simulators.power_meter import LOADS, PowerMeter
from tests.booking_rig import ZONE
from tests.gateway_rig import rig
from tests.test_invoices import book, center, customer, setup

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
