"""Cumulative counters become production deltas here, against a baseline stored in the database and
updated in the same transaction as the deltas it produced.

Why there: a baseline kept in the gateway's memory and saved now and then counts the increments since
the last save again after a crash; one committed with its deltas cannot disagree with them, so a crash at
any instant, a replayed spool or a second delivery counts every part exactly once. Deriving deltas at
query time from the raw values (as Prometheus does) was the other way; it was not taken because the raw
values go with the 30-day retention while OEE and bills must not, an implausible step could then only be
ignored silently at every query instead of quarantined once with its reason, and every OEE query would
pay for the window scan.

The rules, in order: the first value ever seen is the baseline; a value not newer than the baseline was
counted already (a replay, or a batch overtaken by a later one: the later delta covers it); a changed
`reset_on` value starts a new baseline; going up counts the difference; going down is a wrap-around
when the counter was in the upper half of its range, else a reset (what it shows now was made since); a
step larger than the machine could make in the time since the baseline is a reset too, quarantined with
its reason and never counted."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from psycopg import AsyncConnection

from telemetry.model import Count, Partition, Rejected, Sample, SeriesCache, register_numeric, reject
from telemetry.sqlfiles import QUERIES

log = logging.getLogger(__name__)
DELTA_SUFFIX = ".delta"


@dataclass(frozen=True, slots=True)
class Baseline:
    raw: int
    time: datetime
    epoch: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    delta: int
    problem: str | None = None  # why a step was not counted


def step(base: Baseline | None, count: Count) -> Step | None:
    """What `count` adds to production after `base`; None when it was counted already."""
    if base is None:
        return Step(0)
    if count.time <= base.time:
        return None
    if base.epoch is not None and count.epoch is not None and count.epoch != base.epoch:
        return Step(0)
    if count.raw >= base.raw:
        delta, what = count.raw - base.raw, "step"
    elif count.modulus is not None and base.raw - count.raw > count.modulus // 2:
        delta, what = count.modulus - base.raw + count.raw, "wrap-around"
    else:
        delta, what = count.raw, "restart"
    if count.max_per_s is not None and delta > 0:
        seconds = (count.time - base.time).total_seconds()
        most = math.floor(seconds * count.max_per_s) + 1  # one part may finish at any instant
        if delta > most:
            return Step(
                0,
                f"counter {what} of {delta} ({base.raw} -> {count.raw}) in {seconds:.0f} s is more than the"
                f" machine can make ({most}): taken as a reset, not counted",
            )
    return Step(delta)


@dataclass(slots=True)
class Counted:
    """What the counts of one batch add to its transaction."""

    deltas: list[Sample] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    baselines: dict[tuple[str, str], Baseline] = field(default_factory=dict)

    def merged_into(self, part: Partition, cache: SeriesCache) -> Partition:
        """The batch with its deltas and counter quarantines, for one attempt at writing it."""
        if not self.deltas and not self.rejected:
            return part
        out = Partition(
            [*part.numeric, *self.deltas], part.text, part.states, [*part.rejected, *self.rejected], part.counts
        )
        out.new_series = set(part.new_series)
        for d in self.deltas:
            register_numeric(out, cache, d.device_id, d.signal)
        return out


def count(counts: Sequence[Count], stored: dict[tuple[str, str], Baseline]) -> Counted:
    """Deltas of a batch's counts in time order, from the stored baselines (left unchanged)."""
    out = Counted(baselines=dict(stored))
    for c in sorted(counts, key=lambda c: c.time):
        key = (c.device_id, c.signal)
        result = step(out.baselines.get(key), c)
        if result is None:
            continue
        out.baselines[key] = Baseline(c.raw, c.time, c.epoch)
        if result.problem is not None:
            log.warning("%s %s: %s", c.device_id, c.signal, result.problem)
            out.rejected.append(reject((c.time, c.device_id, c.signal, c.raw), result.problem))
        elif result.delta > 0:
            value = float(result.delta) if c.unit == 1 else round(result.delta * c.unit, 9)  # 0.01 x 3 is 0.03
            out.deltas.append(Sample(c.time, c.device_id, c.signal + DELTA_SUFFIX, value))
    return out


async def count_in_transaction(conn: AsyncConnection, counts: Sequence[Count]) -> Counted:
    """Lock the baselines of the batch's counters, count, and store the new baselines: the caller's
    transaction then commits the deltas and their baselines together, or neither."""
    if not counts:
        return Counted()
    keys = sorted({(c.device_id, c.signal) for c in counts})
    device_ids, signals = [k[0] for k in keys], [k[1] for k in keys]
    await QUERIES.lock_counters(conn, device_ids=device_ids, signals=signals)
    rows = QUERIES.lock_baselines(conn, device_ids=device_ids, signals=signals)
    stored = {(r[0], r[1]): Baseline(int(r[2]), r[3], r[4]) async for r in rows}
    counted = count(counts, stored)
    changed = sorted(k for k, b in counted.baselines.items() if stored.get(k) != b)
    if changed:
        await QUERIES.save_baselines(
            conn,
            [
                {"device_id": d, "signal": s, "raw": b.raw, "time": b.time, "epoch": b.epoch}
                for (d, s), b in ((k, counted.baselines[k]) for k in changed)
            ],
        )
    return counted
