"""From protocol readings to canonical samples, per device: scaling, plausibility checks, counter deltas
with reset and rollover detection, report-on-change with a heartbeat, and the device state derived by
the rules of `devices.yaml`. Protocol-free, so the three adapters behave the same."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from gateway.config import CounterRule, SignalCommon, StateRule, derive_state
from telemetry.model import Count, Quality, Rejected, Sample, reject

log = logging.getLogger(__name__)


class Reading(NamedTuple):
    """One value as an adapter decoded it, before any FabHub rule was applied."""

    signal: str
    value: Any
    time: datetime
    quality: int = Quality.GOOD


Emit = Callable[[list[Reading], list[Rejected]], Awaitable[None]]


@dataclass
class Output:
    samples: list[Sample] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    counts: list[Count] = field(default_factory=list)  # raw counter values, for the writer to count

    @property
    def items(self) -> list[Sample | Count | Rejected]:
        return [*self.samples, *self.counts, *self.rejected]


@dataclass
class _Emitted:
    value: float | str
    quality: int
    time: datetime


class DeviceNormalizer:
    def __init__(
        self,
        device_id: str,
        signals: Mapping[str, SignalCommon],
        rules: list[StateRule],
        heartbeat: timedelta,
        counters: dict[str, CounterRule] | None = None,
    ) -> None:
        self.device_id = device_id
        self._signals = signals
        self._rules = rules
        self._rule_signals = {name for rule in rules for name in rule.signals()}
        self._heartbeat = heartbeat
        self._counters = counters or {}
        self.values: dict[str, Any] = {}  # latest good value of each signal: what the state rules see
        self._changed: dict[str, datetime] = {}  # when each value last changed: the time of a state it decides
        self._emitted: dict[str, _Emitted] = {}
        self._counted: dict[str, tuple[int, datetime]] = {}  # each counter's raw value as last handed on, and when
        self.state: str | None = None
        self._state_time: datetime | None = None

    @property
    def heartbeat_every(self) -> timedelta:
        return self._heartbeat

    # -- readings ---------------------------------------------------------------------------------

    def process(self, readings: Iterable[Reading]) -> Output:
        out = Output()
        latest: datetime | None = None
        counted: list[tuple[str, int, datetime]] = []
        for reading in readings:
            counter = self._one(reading, out)
            if counter is not None:
                counted.append(counter)
            latest = reading.time if latest is None or reading.time > latest else latest
        for signal, raw, time in counted:  # after the batch's other values, so a reset_on change is seen
            self._count(signal, raw, time, out)
        if latest is not None:
            self._derive(latest, out)
        return out

    def _one(self, r: Reading, out: Output) -> tuple[str, int, datetime] | None:
        """Handle one reading; a counter's good raw value is returned, to be counted after the batch."""
        spec = self._signals.get(r.signal)
        value = r.value
        if r.quality != Quality.GOOD and value is None:
            previous = self._emitted.get(r.signal)
            if previous is None:
                self._reject(out, r, "bad quality and no value")
            else:  # the device vouches for nothing: repeat what we had, marked with its quality
                self._emit(out, r.signal, previous.value, r.quality, r.time)
            return None
        if isinstance(value, bool):
            value = float(value)
        if isinstance(value, str):
            self._emit(out, r.signal, value, r.quality, r.time)
            if r.quality == Quality.GOOD:
                self._keep(r.signal, value, r.time)
            return None
        if not isinstance(value, int | float):
            self._reject(out, r, f"expected a number or text, got {type(value).__name__}")
            return None
        if spec is not None and not spec.counter:
            value = value * spec.scale + spec.offset
        number = float(value)
        if not math.isfinite(number):
            self._reject(out, r, "value is not finite")
            return None
        if spec is not None and not _in_range(number, spec):
            self._reject(out, r, f"out of range [{spec.min}, {spec.max}]")
            return None
        self._emit(out, r.signal, number, r.quality, r.time, spec.deadband if spec is not None else 0.0)
        if r.quality != Quality.GOOD:
            return None
        self._keep(r.signal, number, r.time)
        if spec is not None and spec.counter:
            if spec.resolution is not None:  # a decimal counter (float kWh): counted in steps of its resolution
                return r.signal, round(number / spec.resolution), r.time
            if number != int(number):
                self._reject(out, r, "a counter must be a whole number")
                return None
            return r.signal, int(number), r.time
        return None

    def _keep(self, signal: str, value: float | str, time: datetime) -> None:
        if signal not in self.values or self.values[signal] != value:
            self._changed[signal] = time
        self.values[signal] = value

    def _emit(
        self,
        out: Output,
        signal: str,
        value: float | str,
        quality: int,
        time: datetime,
        deadband: float = 0.0,
    ) -> None:
        previous = self._emitted.get(signal)
        if (
            previous is None
            or previous.quality != quality
            or _moved(previous.value, value, deadband)
            or time - previous.time >= self._heartbeat
        ):
            if previous is not None and time <= previous.time:
                # read after a sample stored at this or a later instant (a heartbeat stamped by our clock, a
                # device clock a little behind ours): just after it, or the store keeps the older value
                time = previous.time + timedelta(microseconds=1)
            out.samples.append(Sample(time, self.device_id, signal, value, quality))
            self._emitted[signal] = _Emitted(value, quality, time)

    def _count(self, signal: str, raw: int, time: datetime, out: Output) -> None:
        """Hand a counter's value on when it changed (or is the first since start or recovery): the writer
        counts it against the baseline stored in the database (telemetry.counters), never here."""
        rule = self._counters.get(signal, CounterRule())
        last = self._counted.get(signal)
        if last is not None:
            raw_then, then = last
            if raw == raw_then:
                return
            if 0 < raw - raw_then < rule.every and time - then < self._heartbeat:
                return  # inside its deadband: gathered into a later step (a reset is handed on at once)
        self._counted[signal] = (raw, time)
        epoch = None if rule.reset_on is None else self.values.get(rule.reset_on)
        epoch_text = None if epoch is None else str(epoch)
        out.counts.append(Count(time, self.device_id, signal, raw, rule.modulus, rule.max_per_s, epoch_text, rule.unit))

    def _reject(self, out: Output, r: Reading, reason: str) -> None:
        out.rejected.append(reject((r.time, self.device_id, r.signal, r.value), reason))

    # -- state ------------------------------------------------------------------------------------

    def _derive(self, latest: datetime, out: Output) -> None:
        if self.state == "offline" and not self.values:
            return
        state = derive_state(self._rules, self.values)
        if state is None:
            return
        if state != self.state:
            # the state began when the values that decide it last changed (their source times), not when
            # the newest reading of the batch was taken
            decided = [self._changed[s] for s in self._rule_signals if s in self._changed]
            self._set_state(state, max(decided, default=latest), out)
        else:
            self._set_state(state, latest, out)

    def _set_state(self, state: str, time: datetime, out: Output) -> None:
        stale = self._state_time is not None and time - self._state_time >= self._heartbeat
        if state != self.state or stale:
            if self._state_time is not None and time <= self._state_time:
                time = self._state_time + timedelta(microseconds=1)  # one state per instant
            out.samples.append(Sample(time, self.device_id, "state", state, Quality.GOOD))
            self.state, self._state_time = state, time

    def offline(self, time: datetime) -> Output:
        """The device cannot be reached: its state is unknown from now on (never counted as down).
        Values are forgotten so the first readings after recovery decide the state afresh."""
        out = Output()
        self.values.clear()
        self._changed.clear()
        self._emitted.clear()
        self._counted.clear()
        if self.state != "offline":
            self._set_state("offline", time, out)
        return out

    def heartbeat(self, now: datetime) -> Output:
        """Re-send what has not changed for a heartbeat, so a steady value still shows it is alive."""
        out = Output()
        for signal, last in list(self._emitted.items()):
            if now - last.time >= self._heartbeat:
                out.samples.append(Sample(now, self.device_id, signal, last.value, last.quality))
                self._emitted[signal] = _Emitted(last.value, last.quality, now)
        if self.state is not None:
            self._set_state(self.state, now, out)
        return out


def _moved(old: float | str, new: float | str, deadband: float) -> bool:
    if isinstance(old, float) and isinstance(new, float) and deadband > 0:
        return abs(old - new) > deadband
    return old != new


def _in_range(value: float, spec: SignalCommon) -> bool:
    return (spec.min is None or value >= spec.min) and (spec.max is None or value <= spec.max)
