"""Energy counters as meters report them: decimal kWh counted in steps of their resolution, scaled integer
registers wrapping where their type does, steps gathered inside the deadband until the heartbeat, and the
wire format of site gateways from before decimal counters still decoded."""

from datetime import timedelta

import orjson

from fabhub.center import at_speed
from fabhub.devices import load_devices
from gateway import wire
from gateway.config import GatewayDevice, ModbusSettings, ModbusSignal
from gateway.normalize import DeviceNormalizer, Reading
from telemetry.counters import count
from telemetry.model import Count
from tests.http import REPO
from tests.samples import at

HEARTBEAT = timedelta(seconds=60)


def rules(**signals: ModbusSignal):
    device = GatewayDevice("meter-1", "modbus", "tcp://127.0.0.1:1", ModbusSettings(), signals, [], HEARTBEAT)
    return device.counter_rules()


def test_a_float_kwh_register_counts_in_steps_and_never_wraps():
    spec = ModbusSignal(address=0x401E, type="float32", counter=True, resolution=0.01, deadband=0.02, max_per_s=0.1)
    rule = rules(energy_kwh=spec)["energy_kwh"]
    assert (rule.modulus, rule.unit, rule.every) == (None, 0.01, 2)
    assert rule.max_per_s == 0.1 / 0.01  # kWh a second, in steps


def test_a_scaled_uint32_register_wraps_at_its_width_in_the_signals_unit():
    spec = ModbusSignal(address=10, type="uint32", counter=True, scale=0.01)
    rule = rules(energy_kwh=spec)["energy_kwh"]
    assert (rule.modulus, rule.unit) == (2**32, 0.01)
    base = count([Count(at(0), "m", "energy_kwh", 2**32 - 5, rule.modulus, None, None, rule.unit)], {}).baselines
    later = count([Count(at(60), "m", "energy_kwh", 7, rule.modulus, None, None, rule.unit)], base)
    assert [d.value for d in later.deltas] == [0.12]  # 12 steps of 0.01 kWh across the wrap


def test_steps_inside_the_deadband_wait_for_the_heartbeat_and_a_reset_goes_at_once():
    spec = ModbusSignal(address=0x401E, type="float32", counter=True, resolution=0.01, deadband=0.05)
    n = DeviceNormalizer("meter-1", {"energy_kwh": spec}, [], HEARTBEAT, rules(energy_kwh=spec))

    def handed(value: float, second: float) -> list[int]:
        return [c.raw for c in n.process([Reading("energy_kwh", value, at(second))]).counts]

    assert handed(12.3400001, 0) == [1234]  # float32 noise rounds to the step
    assert handed(12.36, 1) == []  # 2 steps: inside the deadband of 5
    assert handed(12.40, 2) == [1240]
    assert handed(12.41, 3) == []
    assert handed(12.42, 63) == [1242]  # the heartbeat hands on what was gathered
    assert handed(0.01, 64) == [1]  # the meter was cleared: a reset is never held back


def test_counts_from_a_gateway_before_decimal_counters_decode_as_whole_steps():
    payload = orjson.dumps(
        {"v": 1, "devices": {"robot-01": {"c": [[at(0).isoformat()], ["parts_total"], [5], [None], [None], [None]]}}}
    )
    assert wire.decode(wire.topic("north"), payload) == [Count(at(0), "robot-01", "parts_total", 5)]
    new = wire.encode("north", [Count(at(0), "meter-1", "energy_kwh", 1234, None, 10.0, None, 0.01)])
    assert wire.decode(new[0][0], new[0][1]) == [Count(at(0), "meter-1", "energy_kwh", 1234, None, 10.0, None, 0.01)]


def test_the_demo_lifts_an_energy_counters_limit_by_its_speed():
    shipped = load_devices(REPO / "devices.yaml")
    fast = at_speed(shipped, 60)
    meter = fast.device("meter-cnc-01")
    assert meter is not None and meter.signals["energy_kwh"].max_per_s == 0.1 * 60
