"""The Modbus path end to end: UR robot simulator -> gateway -> TimescaleDB, checking stored values."""

import asyncio

from tests.gateway_rig import rig, robot, running_robot

DELTAS = "SELECT sum(value) FROM telemetry_sample WHERE device_id = 'robot-01' AND signal = 'parts_total.delta'"


async def test_robot_values_state_and_counters_reach_the_database(db_url, tmp_path):
    sim = await running_robot("robot-01", (70_000, 69_000))  # across the 16-bit boundary
    async with rig(db_url, tmp_path, {"robot-01": sim}) as r:
        await r.state_becomes("robot-01", "running")
        latest = dict(
            await r.until(
                "SELECT signal, value FROM telemetry_sample WHERE device_id = 'robot-01' AND signal IN "
                "('parts_total', 'parts_good', 'robot_mode', 'power_kw') ORDER BY time",
                lambda rows: {s for s, _ in rows} >= {"parts_total", "parts_good", "robot_mode", "power_kw"},
            )
        )
        assert latest["parts_total"] == 70_000
        assert latest["parts_good"] == 69_000
        assert latest["robot_mode"] == 7
        assert 2.0 <= latest["power_kw"] <= 4.5  # float32, big-endian words
        program = await r.rows(
            "SELECT value FROM telemetry_text_sample WHERE device_id = 'robot-01' AND signal = 'program'"
        )
        assert program == [(sim.machine.state.program,)]

        # production: three more parts become three counted in deltas
        sim.machine.set_counters(70_003, 69_002)
        await sim.tick(0)
        await r.until(
            DELTAS,
            lambda rows: rows[0][0] == 3,
        )
        # a reset to zero is not negative production; the count after it is
        sim.machine.set_counters(0, 0)
        await sim.tick(0)
        sim.machine.set_counters(2, 2)
        await sim.tick(0)
        await r.until(
            DELTAS,
            lambda rows: rows[0][0] == 5,
        )
        # a protective stop is down
        sim.machine.force("down", 600)
        await sim.tick(0)
        await r.state_becomes("robot-01", "down")


async def test_counter_rollover_counts_the_parts_across_the_wrap(db_url, tmp_path):
    sim = await running_robot("robot-01", (2**32 - 2, 2**32 - 2))
    async with rig(db_url, tmp_path, {"robot-01": sim}) as r:
        await r.until(
            "SELECT value FROM telemetry_sample WHERE device_id = 'robot-01' AND signal = 'parts_total'",
            lambda rows: rows == [(2**32 - 2,)],
        )
        sim.machine.set_counters(2**32 + 3, 2**32 + 3)  # wraps to 3
        await sim.tick(0)
        rows = await r.until(
            DELTAS,
            lambda rows: rows[0][0] is not None,
        )
        assert rows == [(5,)]


async def test_exception_responses_are_bad_quality_and_garbage_is_quarantined(db_url, tmp_path):
    sim = await running_robot("robot-01")
    async with rig(db_url, tmp_path, {"robot-01": sim}) as r:
        await r.state_becomes("robot-01", "running")
        sim.set_register(258, 99)  # a robot mode outside the map's range
        await r.until(
            "SELECT signal, reason FROM telemetry_quarantine WHERE device_id = 'robot-01'",
            lambda rows: ("robot_mode", "out of range [-1.0, 9.0]") in rows,
        )
        sim.clear_overrides()
        sim.fail_reads({300})  # the temperature block answers exception 0x04
        await r.until(
            "SELECT quality FROM telemetry_sample WHERE device_id = 'robot-01' AND signal = 'temperature.base' "
            "ORDER BY time DESC LIMIT 1",
            lambda rows: rows == [(2,)],
        )
        status = next(s for s in r.gateway.statuses if s.device_id == "robot-01")
        assert status.errors["exception 0x04"] >= 1
        assert status.connection == "online"  # one failing block is not a lost device
        assert not await r.rows(
            "SELECT 1 FROM telemetry_sample WHERE device_id = 'robot-01' AND signal = 'robot_mode' AND value = 99"
        )


async def test_device_killed_and_restarted_goes_offline_and_back(db_url, tmp_path):
    sim = await running_robot("robot-01")
    async with rig(db_url, tmp_path, {"robot-01": sim}) as r:
        await r.state_becomes("robot-01", "running")
        await sim.stop()
        await r.state_becomes("robot-01", "offline")
        status = next(s for s in r.gateway.statuses if s.device_id == "robot-01")
        assert status.connection == "offline"
        assert status.last_error
        await sim.start()
        await r.state_becomes("robot-01", "running")
        assert status.connection == "online"
        states = [s for (s,) in await r.rows("SELECT state FROM telemetry_state ORDER BY time")]
        assert states == ["running", "offline", "running"]


async def test_devices_route_and_metrics_of_the_running_app(db_url, pool, tmp_path):
    from accounts.model import Role
    from tests.accounts_rig import as_role
    from tests.gateway_rig import devices_for
    from tests.http import serve

    sim = robot("robot-01")
    sim.machine.force("running", 3600)
    await sim.start()
    try:
        await sim.tick(0)
        devices = devices_for(["robot-01"], {"robot-01": sim.port})
        async with serve(db_url, devices=devices, run_gateway=True, data_dir=tmp_path) as api:
            assert (await api.get("/api/v1/devices")).status_code == 401
            api.headers.update(await as_role(pool, api, Role.technician))
            for _ in range(300):
                body = (await api.get("/api/v1/devices")).json()
                if body["devices"][0]["state"] == "running":
                    break
                await asyncio.sleep(0.1)
            [device] = body["devices"]
            assert device["device_id"] == "robot-01"
            assert device["connection"] == "online"
            assert device["state"] == "running"
            assert device["samples"] > 0
            assert body["spool_depth"] == 0
            one = await api.get("/api/v1/devices/robot-01")
            assert one.json()["protocol"] == "modbus"
            assert (await api.get("/api/v1/devices/robot-99")).status_code == 404
            assert (await api.get("/api/v1/devices/Robot%2099")).status_code == 422
            metrics = (await api.get("/metrics")).text
            assert 'fabhub_gateway_devices_online{protocol="modbus"} 1.0' in metrics
            assert "fabhub_gateway_samples_in_total" in metrics
    finally:
        await sim.stop()


async def test_parts_made_while_the_gateway_was_down_are_counted(db_url, tmp_path):
    sim = await running_robot("robot-01", (100, 100))
    async with rig(db_url, tmp_path, {"robot-01": sim}) as r:
        await r.until(
            "SELECT value FROM telemetry_sample WHERE device_id = 'robot-01' AND signal = 'parts_total'",
            lambda rows: rows == [(100,)],
        )
    # the gateway is down; the robot makes 7 parts; the gateway comes back with its saved baseline
    sim = await running_robot("robot-01", (107, 106))
    async with rig(db_url, tmp_path, {"robot-01": sim}) as r:
        await r.until(
            DELTAS,
            lambda rows: rows == [(7,)],
        )
