"""What a sample is, and the rules that decide where it goes: numeric table, text table, state table,
or quarantine with a reason. The rules live here so the writer, the API and the gateway agree."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum
from typing import NamedTuple, final

DEVICE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SIGNAL = re.compile(r"^[a-z][a-z0-9_]{0,63}(\.[a-z0-9_]{1,64}){0,3}$")
CANONICAL_STATES = ("running", "setup", "idle", "down", "maintenance", "offline")
STATE_SIGNAL = "state"


class Quality(IntEnum):
    """OPC UA StatusCode severities, the common ground of the three protocols."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2


class Sample(NamedTuple):
    """One reading. Field order matches the COPY column order, so a numeric sample is written as is."""

    time: datetime
    device_id: str
    signal: str
    value: float | str
    quality: int = Quality.GOOD


@final  # the writer routes by `type(s) is Count`, which only narrows (for mypy) a final class
class Count(NamedTuple):
    """A cumulative counter's raw value. The writer turns it into a delta (`<signal>.delta`) against the
    baseline stored in the database, in the transaction that stores the delta (see telemetry.counters)."""

    time: datetime
    device_id: str
    signal: str
    raw: int
    modulus: int | None = None  # where the counter wraps around
    max_per_s: float | None = None  # the most the machine can count per second: a larger step is a reset
    epoch: str | None = None  # the value of the counter's reset_on signal: a change starts a new baseline
    unit: float = 1.0  # what one step of `raw` is worth in the signal's unit (0.01 for a meter counting 0.01 kWh)


@final
class Rejected(NamedTuple):
    time: datetime | None
    device_id: str
    signal: str
    value: str
    reason: str


@dataclass(slots=True)
class Partition:
    """A batch split by destination table, with the series it is the first to touch."""

    numeric: list[Sample] = field(default_factory=list)
    text: list[Sample] = field(default_factory=list)
    states: list[tuple[datetime, str, str, int]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    counts: list[Count] = field(default_factory=list)
    new_series: set[tuple[str, str, str]] = field(default_factory=set)


class SeriesCache:
    """What the writer has learnt about each (device, signal): why it cannot be stored, or the kinds of
    value already registered for it. Checks that depend only on the series then run once, not once per
    sample; at 6,000 series every batch meets each series about once, so the cache outlives batches."""

    def __init__(self, known_device: Callable[[str], bool] | None, limit: int = 100_000) -> None:
        self.known_device = known_device
        self.limit = limit
        self.entries: dict[tuple[object, object], str | set[str]] = {}

    def lookup(self, device_id: object, signal: object) -> str | set[str]:
        key = (device_id, signal)
        entry = self.entries.get(key)
        if entry is None:
            if len(self.entries) >= self.limit:  # a flood of garbage names must not grow it forever
                self.entries.clear()
            entry = self.entries[key] = series_problem(device_id, signal, self.known_device) or set()
        return entry

    def forget(self, series: set[tuple[str, str, str]]) -> None:
        """Registration of these series was rolled back: register them again next time."""
        for device_id, signal, kind in series:
            entry = self.entries.get((device_id, signal))
            if isinstance(entry, set):
                entry.discard(kind)


def valid_device_id(device_id: object) -> bool:
    return isinstance(device_id, str) and DEVICE_ID.match(device_id) is not None


def series_problem(device_id: object, signal: object, known_device: Callable[[str], bool] | None) -> str | None:
    """Why samples of this (device, signal) cannot be stored, or None."""
    if not valid_device_id(device_id):
        return "invalid device id"
    if known_device is not None and not known_device(device_id):  # type: ignore[arg-type]
        return "unknown device"
    if not isinstance(signal, str) or SIGNAL.match(signal) is None:
        return "invalid signal name"
    return None


def reject(sample: Sample | tuple, reason: str) -> Rejected:
    """Keep what can be kept of a refused sample, in a form the quarantine table always accepts."""
    time, device_id, signal, value = sample[:4]
    text = value if isinstance(value, str) else repr(value)
    return Rejected(
        time if isinstance(time, datetime) and time.tzinfo is not None else None,
        _printable(device_id, 64),
        _printable(signal, 200),
        _printable(text, 1000),
        reason,
    )


def _printable(value: object, limit: int) -> str:
    return str(value)[:limit].encode(errors="replace").decode().replace("\x00", "\\x00")


def _storable_text(value: str) -> bool:
    if "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def partition(
    samples: Iterable[Sample | Count | Rejected],
    now: datetime,
    cache: SeriesCache,
    max_future: timedelta = timedelta(minutes=5),
) -> Partition:
    """Route each sample, or reject it with a reason. Nothing is dropped: a rejected sample is kept.

    Deliberate choices: NaN and +-Inf are rejected (they are not measurements); out-of-order and late
    timestamps are accepted (replays after an outage are normal); timestamps more than `max_future`
    ahead of the clock are rejected (a device clock gone wrong would otherwise own the future).
    This is the writer's hot loop, so series-level checks come from the cache.
    """
    out = Partition()
    horizon = now + max_future
    isfinite = math.isfinite
    known = cache.entries.get
    numeric = out.numeric
    for s in samples:
        if type(s) is Rejected:  # refused upstream (the gateway), kept here with its reason
            out.rejected.append(s)
            continue
        if type(s) is Count:
            _route_count(out, s, horizon, cache)
            continue
        time, device_id, signal, value, quality = s
        try:
            kinds = known((device_id, signal))
        except TypeError:  # an unhashable id or name: garbage from a device, not a crash
            kinds = "invalid device id"
        if kinds is None:
            kinds = cache.lookup(device_id, signal)
        kind = "numeric"
        if isinstance(kinds, str):
            reason = kinds
        elif not isinstance(time, datetime) or time.tzinfo is None:
            reason = "timestamp without time zone"
        elif time > horizon:
            reason = "timestamp in the future"
        elif quality not in (0, 1, 2):
            reason = "invalid quality"
        elif type(value) is float:
            if isfinite(value):
                numeric.append(s)
                if kind not in kinds:
                    _register(out, kinds, device_id, signal, kind)
                continue
            reason = "value is not finite"
        elif signal == STATE_SIGNAL:
            if value in CANONICAL_STATES:
                out.states.append((time, device_id, value, quality))
                if "state" not in kinds:
                    _register(out, kinds, device_id, signal, "state")
                continue
            reason = "unknown state"
        elif isinstance(value, str):
            if _storable_text(value):
                out.text.append(s)
                if "text" not in kinds:
                    _register(out, kinds, device_id, signal, "text")
                continue
            reason = "text is not valid UTF-8 or contains NUL"
        elif isinstance(value, int | float):  # ints, bools (a coil is 0/1), numpy floats
            number = float(value) if abs(value) < 1e300 else math.inf
            if isfinite(number):
                numeric.append(Sample(time, device_id, signal, number, quality))
                if kind not in kinds:
                    _register(out, kinds, device_id, signal, kind)
                continue
            reason = "value is not finite"
        else:
            reason = f"unsupported value type {type(value).__name__}"
        out.rejected.append(reject(s, reason))
    return out


def _route_count(out: Partition, count: Count, horizon: datetime, cache: SeriesCache) -> None:
    problem = cache.lookup(count.device_id, count.signal)
    if type(problem) is str:
        reason = problem
    elif not isinstance(count.time, datetime) or count.time.tzinfo is None:
        reason = "timestamp without time zone"
    elif count.time > horizon:
        reason = "timestamp in the future"
    elif type(count.raw) is not int or count.raw < 0:
        reason = "a counter is a whole number of at least 0"
    elif type(count.unit) not in (int, float) or not 0 < count.unit < math.inf:
        reason = "a counter's unit is a positive number"
    else:
        out.counts.append(count)
        return
    out.rejected.append(reject(count, reason))


def register_numeric(out: Partition, cache: SeriesCache, device_id: str, signal: str) -> None:
    """Note a numeric series the batch may be the first to write (the writer's derived series)."""
    kinds = cache.lookup(device_id, signal)
    if isinstance(kinds, set) and "numeric" not in kinds:
        _register(out, kinds, device_id, signal, "numeric")


def _register(out: Partition, kinds: set[str], device_id: str, signal: str, kind: str) -> None:
    kinds.add(kind)
    out.new_series.add((device_id, signal, kind))
