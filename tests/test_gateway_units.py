"""The protocol-free parts of the gateway: normalization rules, read planning, decoding, the spool."""

import asyncio
from datetime import timedelta

import pytest

from gateway.adapters.modbus import decode, plan_reads
from gateway.config import CounterRule, ModbusSignal, SignalCommon, StateRule
from gateway.normalize import DeviceNormalizer, Reading
from gateway.spool import Spool
from telemetry.model import Quality, Rejected, Sample
from tests.samples import at


def normalizer(signals=None, rules=None, heartbeat=60, counters=None):
    return DeviceNormalizer("robot-01", signals or {}, rules or [], timedelta(seconds=heartbeat), counters)


def values(out, signal):
    return [s.value for s in out.samples if s.signal == signal]


def test_counters_are_handed_on_when_they_change_with_their_rule_and_job():
    """The normalizer does not count (the writer does, against the stored baseline): it hands on each new
    raw value with the counter's rule and the value of its reset_on signal, read after the whole batch."""
    rule = CounterRule(modulus=1000, max_per_s=0.5, reset_on="job")
    n = normalizer({"parts_total": SignalCommon(counter=True)}, counters={"parts_total": rule})
    out = [n.process([Reading("parts_total", v, at(i))]) for i, v in enumerate([10, 13, 13])]
    assert [[(c.raw, c.modulus, c.max_per_s, c.epoch) for c in o.counts] for o in out] == [
        [(10, 1000, 0.5, None)],
        [(13, 1000, 0.5, None)],
        [],
    ]
    both = n.process([Reading("parts_total", 0, at(5)), Reading("job", "J-2", at(5))])
    assert [(c.raw, c.epoch) for c in both.counts] == [(0, "J-2")]
    assert n.process([Reading("parts_total", 2.5, at(6))]).rejected[0].reason == "a counter must be a whole number"
    n.offline(at(7))
    assert [c.raw for c in n.process([Reading("parts_total", 0, at(8))]).counts] == [0]  # first after recovery


def test_report_on_change_with_deadband_and_heartbeat():
    n = normalizer({"power_kw": SignalCommon(deadband=0.5)}, heartbeat=10)
    sent = [values(n.process([Reading("power_kw", v, at(i))]), "power_kw") for i, v in enumerate([1.0, 1.2, 1.6, 1.7])]
    assert sent == [[1.0], [], [1.6], []]
    assert values(n.heartbeat(at(20)), "power_kw") == [1.6]  # steady, but alive
    assert values(n.heartbeat(at(21)), "power_kw") == []


def test_a_change_read_at_a_heartbeats_instant_is_stored_after_it():
    """The store keeps one sample per signal and instant: a new value stamped at (or a device clock a little
    behind) the heartbeat that re-sent the old one must land after it, or the latest row is the old value."""
    n = normalizer({"parts_total": SignalCommon()}, heartbeat=10)
    n.process([Reading("parts_total", 24, at(0))])
    beat = n.heartbeat(at(20)).samples
    same = n.process([Reading("parts_total", 32, at(20))]).samples
    behind = n.process([Reading("parts_total", 33, at(19))]).samples
    times = [s.time for s in [*beat, *same, *behind] if s.signal == "parts_total"]
    assert [s.value for s in [*beat, *same, *behind] if s.signal == "parts_total"] == [24, 32, 33]
    assert times == sorted(set(times))


def test_scaling_range_and_bad_quality():
    n = normalizer({"tcp.x_mm": SignalCommon(scale=0.1, min=-2000, max=2000)})
    assert values(n.process([Reading("tcp.x_mm", 1234, at(0))]), "tcp.x_mm") == [123.4]
    out = n.process([Reading("tcp.x_mm", 30000, at(1))])
    assert out.samples == []
    assert [r.reason for r in out.rejected] == ["out of range [-2000.0, 2000.0]"]
    bad = n.process([Reading("tcp.x_mm", None, at(2), Quality.BAD)])
    assert [(s.value, s.quality) for s in bad.samples] == [(123.4, Quality.BAD)]
    assert (
        normalizer().process([Reading("x", None, at(0), Quality.BAD)]).rejected[0].reason == "bad quality and no value"
    )


def test_state_rules_first_match_wins_and_offline_is_its_own_state():
    rules = [
        StateRule(state="down", any=[{"signal": "estop", "eq": 1}, {"signal": "pstop", "eq": 1}]),
        StateRule(state="running", when={"signal": "mode", "eq": 7}),
        StateRule(state="idle"),
    ]
    n = normalizer(rules=rules)
    states = []
    for i, readings in enumerate([[("mode", 7)], [("pstop", 1)], [("pstop", 0)], [("mode", 5)]]):
        out = n.process([Reading(s, v, at(i)) for s, v in readings])
        states.append(values(out, "state"))
    assert states == [["running"], ["down"], ["running"], ["idle"]]
    assert values(n.offline(at(10)), "state") == ["offline"]
    assert values(n.offline(at(11)), "state") == []  # said once
    assert values(n.process([Reading("mode", 7, at(12))]), "state") == ["running"]


def test_a_state_starts_when_the_values_deciding_it_changed_not_at_the_newest_reading():
    """OPC UA hands over a batch of values with their source times: the state takes the time of the value
    that changed it, even when the batch also carries newer, unrelated or unchanged readings."""
    rules = [StateRule(state="running", when={"signal": "mode", "eq": 7}), StateRule(state="idle")]
    n = normalizer({"speed": SignalCommon()}, rules=rules, heartbeat=3600)
    first = n.process([Reading("mode", 5, at(0))])
    assert [(s.time, s.value) for s in first.samples if s.signal == "state"] == [(at(0), "idle")]
    out = n.process([Reading("speed", 100.0, at(9)), Reading("mode", 7, at(4)), Reading("mode", 7, at(8))])
    assert [(s.time, s.value) for s in out.samples if s.signal == "state"] == [(at(4), "running")]
    later = n.process([Reading("mode", 7, at(20)), Reading("mode", 5, at(15))])  # out of order in a batch
    assert [(s.time, s.value) for s in later.samples if s.signal == "state"] == [(at(15), "idle")]


def test_map_rule():
    rule = StateRule(map="gcode_state", values={"RUNNING": "running", "FAILED": "down"})
    n = normalizer(rules=[rule])
    assert values(n.process([Reading("gcode_state", "FAILED", at(0))]), "state") == ["down"]
    assert values(n.process([Reading("gcode_state", "SLICING", at(1))]), "state") == []  # unmapped: unchanged


def test_reads_are_coalesced_within_the_limits():
    signals = {
        "a": ModbusSignal(address=128, type="uint32"),
        "b": ModbusSignal(address=130, type="uint32"),
        "c": ModbusSignal(address=140, type="float32"),
        "d": ModbusSignal(address=258),
        "e": ModbusSignal(address=0, table="coil", type="bit"),
        "f": ModbusSignal(address=300, type="string", length=100),
    }
    plan = [(r.table, r.address, r.count) for r in plan_reads(signals, max_gap=0)]
    assert plan == [
        ("holding", 128, 4),
        ("holding", 140, 2),
        ("holding", 258, 1),
        ("holding", 300, 100),
        ("coil", 0, 1),
    ]
    wide = [(r.table, r.address, r.count) for r in plan_reads(signals, max_gap=10)]
    assert wide == [("holding", 128, 14), ("holding", 258, 1), ("holding", 300, 100), ("coil", 0, 1)]
    # 125 registers at most per read
    assert all(r.count <= 125 for r in plan_reads(signals, max_gap=100))


@pytest.mark.parametrize(
    ("spec", "words", "value"),
    [
        (ModbusSignal(address=0, type="int16"), [0xFFFE], -2.0),
        (ModbusSignal(address=0, type="uint32"), [0x0001, 0x1170], 70000.0),
        (ModbusSignal(address=0, type="uint32", word_order="little"), [0x1170, 0x0001], 70000.0),
        (ModbusSignal(address=0, type="float32"), [0x4049, 0x0FDB], pytest.approx(3.1415927)),
        (ModbusSignal(address=0, type="int16", byte_order="little"), [0x0100], 1.0),
        (ModbusSignal(address=0, type="bit", bit=3), [0b1000], 1.0),
        (ModbusSignal(address=0, type="string", length=3), [0x4F31, 0x3030, 0x0000], "O100"),
    ],
)
def test_decoding(spec, words, value):
    assert decode(spec, words) == value


async def test_spool_keeps_order_survives_restart_and_applies_its_policy(tmp_path):
    spool = Spool(tmp_path, max_bytes=10_000)
    batches = [[Sample(at(i), "robot-01", "power_kw", float(i), 0)] for i in range(3)]
    batches[1].append(Rejected(at(1), "robot-01", "x", "garbage", "malformed"))
    for b in batches:
        await spool.put(b)
    again = Spool(tmp_path, max_bytes=10_000)  # a restart finds the backlog
    assert again.backlog
    assert again.depth == 4
    replayed = []
    done = asyncio.Event()

    async def write(batch):
        replayed.append(batch)
        if len(replayed) == 3:
            done.set()

    task = asyncio.create_task(again.drain(write))
    await asyncio.wait_for(done.wait(), 10)
    task.cancel()
    assert replayed == batches
    assert not again.backlog
    assert list(tmp_path.glob("*.batch")) == []
    small = Spool(tmp_path / "small", max_bytes=200)
    for b in batches:
        await small.put(b * 2)
    assert small.stats.dropped > 0
    assert small.size <= 200


def test_the_demo_lifts_the_counters_physical_limit_by_its_speed():
    from fabhub.center import at_speed
    from fabhub.devices import load_devices
    from tests.http import REPO

    shipped = load_devices(REPO / "devices.yaml")
    fast = at_speed(shipped, 60)
    assert [d.max_rate for d in fast.devices] == [d.max_rate * 60 for d in shipped.devices]
    assert at_speed(shipped, 1) is shipped
