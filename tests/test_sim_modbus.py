"""The simulated UR robot over real sockets, read with a bare pymodbus client: the register map follows the
machine, multi-word values decode with big-endian word order, and the fault injection behaves like the
real failures (exception 0x02 outside the table, 0x04 for failing reads)."""

import asyncio

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from simulators.faultproxy import FaultProxy
from simulators.machine import Machine, Profile
from simulators.modbus_robot import BLOCKS, ModbusRobot

DT = AsyncModbusTcpClient.DATATYPE
convert = AsyncModbusTcpClient.convert_from_registers


async def _client(port: int, response_timeout_s: float = 3) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=response_timeout_s, retries=0)
    assert await client.connect()
    return client


@pytest.fixture
def machine():
    return Machine(seed=7)


@pytest.fixture
async def robot(machine):
    async with ModbusRobot("ur-1", 0, machine, speed=0) as robot:
        yield robot


@pytest.fixture
async def client(robot):
    client = await _client(robot.port)
    yield client
    client.close()


async def regs(client, address: int, count: int = 1, **kw) -> list[int]:
    rr = await client.read_holding_registers(address, count=count, **kw)
    assert not rr.isError(), rr
    return list(rr.registers)


async def _exception_code(request) -> int:
    rr = await request
    assert rr.isError()
    return rr.exception_code


async def test_flags_and_robot_mode_follow_the_phase(robot, machine, client):
    machine.force("running", 3600)
    await robot.tick(1)
    assert await regs(client, 256, 10) == [3, 15, 7, 0, 1, 0, 0, 0, 0, 0]
    assert await regs(client, 310, 6) == [253] * 6
    machine.force("setup", 600)
    await robot.tick(1)
    assert await regs(client, 258, 6) == [5, 0, 1, 0, 0, 1]
    assert await regs(client, 310, 6) == [255] * 6
    machine.force("down", 600)
    await robot.tick(1)
    assert machine.state.alarm_code.startswith("ALM-")
    assert await regs(client, 258, 6) == [5, 0, 1, 1, 0, 0]  # protective stop, not an e-stop


async def test_an_estop_alarm_sets_the_emergency_flag():
    machine = Machine(seed=1, profile=Profile(alarms=(("ESTOP-1", "Emergency stop pressed"),)))
    async with ModbusRobot("ur-2", 0, machine, speed=0) as robot:
        machine.force("down", 600)
        await robot.tick(1)
        client = await _client(robot.port)
        assert await regs(client, 260, 4) == [1, 0, 1, 0]
        client.close()


async def test_parts_counters_are_uint32_high_word_first(robot, machine, client):
    machine.set_counters(70000, 69000)
    await robot.tick(0)
    words = await regs(client, 128, 4)
    assert words == [1, 70000 - 65536, 1, 69000 - 65536]
    assert convert(words[0:2], DT.UINT32) == 70000
    assert convert(words[2:4], DT.UINT32) == 69000


async def test_counter_rollover_and_reset_keep_the_words_consistent(robot, machine, client):
    machine.set_counters(2**32 - 1, 2**32 - 1)
    await robot.tick(0)
    assert await regs(client, 128, 4) == [0xFFFF] * 4
    machine.force("running", 3600)
    await robot.tick(300)  # at least one part, less than two (cycle 240 s +-8 %)
    words = await regs(client, 128, 4)
    assert words[0:2] == [0, 0]
    assert convert(words[0:2], DT.UINT32) == machine.state.parts_total == 0
    assert convert(words[2:4], DT.UINT32) == machine.state.parts_good
    machine.reset_counters()
    await robot.tick(0)
    assert await regs(client, 128, 4) == [0, 0, 0, 0]


async def test_power_and_energy_decode_big_endian(robot, machine, client):
    machine.force("idle", 3600)
    await robot.tick(0)
    assert convert(await regs(client, 140, 2), DT.FLOAT32) == pytest.approx(0.3)
    assert convert(await regs(client, 142, 4), DT.FLOAT64) == 0.0
    machine.force("running", 3600)
    await robot.tick(600)
    power = convert(await regs(client, 140, 2), DT.FLOAT32, word_order="big")
    energy = convert(await regs(client, 142, 4), DT.FLOAT64, word_order="big")
    assert 2.5 <= power <= 4.0
    assert 2.5 * 600 / 3600 <= energy <= 4.0 * 600 / 3600


async def test_program_number_and_name(robot, machine, client):
    machine.force("setup", 600)
    await robot.tick(0)
    program = machine.state.program
    assert await regs(client, 132) == [machine.profile.programs.index(program) + 1]
    assert convert(await regs(client, 146, 14), DT.STRING) == program
    assert await regs(client, 133, 7) == [0] * 7


async def test_joints_move_while_running_and_freeze_otherwise(robot, machine, client):
    machine.force("running", 3600)
    await robot.tick(1)
    first = await regs(client, 270, 6)
    await robot.tick(1)
    assert await regs(client, 270, 6) != first
    assert any(await regs(client, 280, 6))
    angles = convert(await regs(client, 270, 6), DT.INT16)
    assert angles[1] < 0  # the shoulder hangs below horizontal: int16 two's complement
    machine.force("idle", 3600)
    await robot.tick(1)
    frozen = await regs(client, 270, 6)
    await robot.tick(60)
    assert await regs(client, 270, 6) == frozen
    assert await regs(client, 280, 6) == [0] * 6
    assert all(30 <= t <= 45 for t in await regs(client, 300, 6))


async def test_outside_the_table_is_exception_2_and_the_client_carries_on(client):
    assert await _exception_code(client.read_holding_registers(160, count=1)) == 2
    assert await _exception_code(client.read_input_registers(0, count=1)) == 2
    assert await _exception_code(client.read_holding_registers(771, count=1)) == 2
    assert await regs(client, 256, 2) == [3, 15]


async def test_block_boundaries(client):
    """One request may span only defined addresses: 128-227 crosses the gap after 159."""
    assert await _exception_code(client.read_holding_registers(128, count=100)) == 2
    assert len(await regs(client, 128, 32)) == 32
    for start, count in BLOCKS:
        assert len(await regs(client, start, count)) == count
        assert await _exception_code(client.read_holding_registers(start, count=count + 1)) == 2


async def test_input_registers_answer_from_the_same_table(robot, machine, client):
    machine.set_counters(123456, 120000)
    machine.force("running", 3600)
    await robot.tick(10)
    for start, count in BLOCKS:
        rr = await client.read_input_registers(start, count=count)
        assert rr.registers == await regs(client, start, count)


async def test_coils_and_discrete_inputs_mirror_the_flags(robot, machine, client):
    machine.force("setup", 600)
    await robot.tick(0)
    expected = [bool(w) for w in await regs(client, 260, 6)]
    assert expected == [True, False, False, True, False, False]
    assert (await client.read_coils(260, count=6)).bits[:6] == expected
    assert (await client.read_discrete_inputs(260, count=6)).bits[:6] == expected
    assert (await client.read_coils(263, count=1)).bits[0] is True
    assert await _exception_code(client.read_coils(259, count=1)) == 2
    assert await _exception_code(client.read_discrete_inputs(0, count=8)) == 2


async def test_any_unit_id_is_answered(client):
    for unit in (0, 1, 17, 255):
        assert await regs(client, 256, 2, device_id=unit) == [3, 15]


async def test_writes_are_refused(client):
    assert await _exception_code(client.write_register(128, 5)) == 2
    assert await _exception_code(client.write_coil(260, False)) == 2


async def test_set_register_overrides_until_cleared(robot, machine, client):
    machine.force("running", 3600)
    await robot.tick(0)
    robot.set_register(258, 99)
    robot.set_register(300, 65000)
    robot.set_register(262, 1)
    assert await regs(client, 258) == [99]
    assert (await client.read_input_registers(300, count=1)).registers == [65000]
    assert (await client.read_coils(262, count=1)).bits[0] is True
    with pytest.raises(ValueError, match="not in ur-1's table"):
        robot.set_register(160, 1)
    robot.clear_overrides()
    assert await regs(client, 258) == [7]
    assert await regs(client, 262) == [0]


async def test_fail_reads_answers_exception_4(robot, client):
    robot.fail_reads({258, 261})
    assert await _exception_code(client.read_holding_registers(256, count=10)) == 4
    assert await _exception_code(client.read_input_registers(258, count=1)) == 4
    assert await _exception_code(client.read_coils(260, count=6)) == 4
    assert await regs(client, 256, 2) == [3, 15]  # untouched addresses still answer
    assert await _exception_code(client.read_holding_registers(160, count=1)) == 2  # 0x02 comes first
    robot.clear_overrides()
    assert len(await regs(client, 256, 10)) == 10


async def test_restart_keeps_the_port_and_counters(robot, machine):
    machine.set_counters(70000, 69000)
    await robot.tick(0)
    await robot.restart()
    client = await _client(robot.port)
    assert await regs(client, 128, 4) == [1, 70000 - 65536, 1, 69000 - 65536]
    client.close()
    await robot.stop()
    await robot.stop()  # idempotent
    client = AsyncModbusTcpClient("127.0.0.1", port=robot.port, timeout=1, retries=0)
    assert not await client.connect()
    await robot.start()
    assert await client.connect()
    assert len(await regs(client, 128, 4)) == 4
    client.close()


async def test_same_seed_same_registers():
    async def run() -> list[int]:
        machine = Machine(seed=42)
        async with ModbusRobot("ur-3", 0, machine, speed=0) as robot:
            for _ in range(120):
                await robot.tick(120)  # four hours of shifts, jobs and stops
            client = await _client(robot.port)
            words = [w for start, count in BLOCKS for w in await regs(client, start, count)]
            client.close()
            return words

    first, second = await run(), await run()
    assert first == second
    assert first[0:2] != [0, 0]  # it did make parts


async def test_background_ticking_runs_until_stopped():
    machine = Machine(seed=3)
    robot = ModbusRobot("ur-4", 0, machine, speed=600, tick_s=0.01)
    await robot.start()
    for _ in range(500):  # liveness only: wait for simulated time to pass, however slowly
        if machine.state.sim_time_s >= 60:
            break
        await asyncio.sleep(0.01)
    assert machine.state.sim_time_s >= 60
    await robot.stop()
    stopped_at = machine.state.sim_time_s
    await asyncio.sleep(0.05)
    assert machine.state.sim_time_s == stopped_at


async def test_a_blackholed_robot_times_out(robot):
    """How "the robot stops answering" looks to a client: ModbusIOException, and it recovers on resume."""
    proxy = FaultProxy("127.0.0.1", robot.port)
    await proxy.start()
    client = await _client(proxy.port, response_timeout_s=0.5)
    assert await regs(client, 256, 2) == [3, 15]
    await proxy.blackhole()
    with pytest.raises(ModbusIOException):
        await client.read_holding_registers(256, count=2)
    await proxy.resume()
    assert await regs(client, 256, 2) == [3, 15]
    client.close()
    await proxy.stop()
