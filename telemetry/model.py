"""What a sample is, and the rules that decide where it goes: numeric table, text table, state table,
or quarantine with a reason. The rules live here so the writer, the API and the gateway agree."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum
from typing import NamedTuple

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


class Rejected(NamedTuple):
    time: datetime | None
    device_id: str
    signal: str
    value: str
    reason: str


@dataclass(slots=True)
class Partition:
    """A batch split by destination table."""

    numeric: list[Sample] = field(default_factory=list)
    text: list[Sample] = field(default_factory=list)
    states: list[tuple[datetime, str, str, int]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def series(self) -> set[tuple[str, str, str]]:
        found = {(s.device_id, s.signal, "numeric") for s in self.numeric}
        found.update((s.device_id, s.signal, "text") for s in self.text)
        found.update((s[1], STATE_SIGNAL, "state") for s in self.states)
        return found


def valid_device_id(device_id: object) -> bool:
    return isinstance(device_id, str) and DEVICE_ID.match(device_id) is not None


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
    samples: Iterable[Sample],
    now: datetime,
    known_device: Callable[[str], bool] | None = None,
    max_future: timedelta = timedelta(minutes=5),
) -> Partition:
    """Route each sample, or reject it with a reason. Nothing is dropped: a rejected sample is kept.

    Deliberate choices: NaN and +-Inf are rejected (they are not measurements); out-of-order and late
    timestamps are accepted (replays after an outage are normal); timestamps more than `max_future`
    ahead of the clock are rejected (a device clock gone wrong would otherwise own the future).
    """
    out = Partition()
    horizon = now + max_future
    isfinite = math.isfinite
    seen_devices: dict[str, bool] = {}
    for s in samples:
        time, device_id, signal, value, quality = s
        reason = None
        ok = seen_devices.get(device_id)
        if ok is None:
            ok = seen_devices[device_id] = valid_device_id(device_id) and (
                known_device is None or known_device(device_id)
            )
        if not ok:
            reason = "unknown device" if valid_device_id(device_id) else "invalid device id"
        elif not isinstance(signal, str) or SIGNAL.match(signal) is None:
            reason = "invalid signal name"
        elif not isinstance(time, datetime) or time.tzinfo is None:
            reason = "timestamp without time zone"
        elif time > horizon:
            reason = "timestamp in the future"
        elif quality not in (0, 1, 2):
            reason = "invalid quality"
        elif signal == STATE_SIGNAL:
            if value in CANONICAL_STATES:
                out.states.append((time, device_id, value, quality))
                continue
            reason = "unknown state"
        elif type(value) is float:
            if isfinite(value):
                out.numeric.append(s)
                continue
            reason = "value is not finite"
        elif isinstance(value, str):
            if _storable_text(value):
                out.text.append(s)
                continue
            reason = "text is not valid UTF-8 or contains NUL"
        elif isinstance(value, int | float):  # ints, bools (a coil is 0/1), numpy floats
            number = float(value) if abs(value) < 1e300 else math.inf
            if isfinite(number):
                out.numeric.append(Sample(time, device_id, signal, number, quality))
                continue
            reason = "value is not finite"
        else:
            reason = f"unsupported value type {type(value).__name__}"
        out.rejected.append(reject(s, reason))
    return out
