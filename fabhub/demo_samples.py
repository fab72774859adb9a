"""What the machines would have reported during the demo month's plan: states (on in the morning, set up and
running in each session, down in a fault, maintenance in a window, off at night), part counts at the end of
each run, and energy as a meter would (`energy_kwh.delta`, the kWh since the previous sample every ten
minutes, following the state: base load when idle, load with scatter when running, nothing while off) with
the mean `power_kw` of those ten minutes, from the machine's power meters where it has them. Pure: the plan
in, samples out."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from fabhub.demo_plan import Plan
from telemetry import Sample

STEP = timedelta(minutes=10)
SWITCH_ON, SWITCH_OFF = 7.75, 20.25  # local hours the technicians power the machines up and down
# kW drawn in each state, by class: a 5-axis machining centre, a UR cell, a desktop FDM printer.
POWER_KW = {
    "cnc": {"idle": 3.0, "setup": 4.5, "running": 11.0, "down": 1.5, "maintenance": 0.8},
    "robot": {"idle": 0.6, "setup": 1.0, "running": 2.8, "down": 0.4, "maintenance": 0.2},
    "printer": {"idle": 0.04, "setup": 0.15, "running": 0.35, "down": 0.04, "maintenance": 0.0},
}


def state_changes(
    plan: Plan, devices: list[str], until: datetime, zone: ZoneInfo
) -> dict[str, list[tuple[datetime, str]]]:
    """Per device, its state rows in time order, repeats dropped; `offline` from `until` on (nobody watched)."""
    changes: dict[str, list[tuple[datetime, str]]] = {d: [] for d in devices}
    night_faults = [f for f in plan.faults if f.device in changes]
    for day in plan.days:
        midnight = datetime.combine(day, time(), zone)
        for device, rows in changes.items():
            off = midnight + timedelta(hours=SWITCH_OFF)
            # a machine that faulted after hours stayed on until then
            if not any(f.device == device and off <= f.start < off + timedelta(hours=12) for f in night_faults):
                rows.append((off, "offline"))
            rows.append((midnight + timedelta(hours=SWITCH_ON), "idle"))
    for fault in night_faults:
        changes[fault.device] += [(fault.start, "down"), (fault.end, "idle")]
    for window in plan.maintenance:
        if window.device in changes:
            changes[window.device] += [(window.start, "maintenance"), (window.end, "idle")]
    for s in plan.sessions:
        if s.cancelled_late or not s.running_min:
            continue
        rows = changes[s.device]
        rows += [(s.start + timedelta(minutes=3), "setup"), (s.run_from, "running"), (s.run_to, "idle")]
        broke = s.fault()
        if broke is not None:
            rows += [(broke.start, "down"), (broke.end, "running")]
    result = {}
    for device, rows in changes.items():
        rows = [*sorted((r for r in rows if r[0] < until), key=lambda r: r[0]), (until, "offline")]
        result[device] = [r for i, r in enumerate(rows) if i == 0 or rows[i - 1][1] != r[1]]
    return result


def parts(plan: Plan, ideal_cycle_s: Mapping[str, float | None], rng: random.Random) -> list[Sample]:
    """Each part as the machine's counter reports it: one at the end of each cycle of the run (the cycle at the
    session's performance, scattered by up to 10 %, the fault's down time skipped), a few of them scrap; so a
    booking's report has cycle times to show."""
    samples = []
    for s in plan.sessions:
        ideal = ideal_cycle_s.get(s.device)
        if not s.running_min or s.cancelled_late or not ideal or s.device.startswith("printer"):
            continue
        fault = s.fault()
        at, cycle = s.run_from, ideal / s.performance
        while True:
            at += timedelta(seconds=cycle * rng.uniform(0.9, 1.1))
            if fault is not None and at > fault.start and at - fault.start < fault.end - fault.start:
                at += fault.end - fault.start  # the part under way when the fault came is finished after it
            if at > s.run_to:
                break
            samples.append(Sample(at, s.device, "parts_total.delta", 1.0))
            if rng.random() >= 0.02:
                samples.append(Sample(at, s.device, "parts_good.delta", 1.0))
    return samples


def energy(
    sources: Sequence[str], device_class: str, rows: list[tuple[datetime, str]], rng: random.Random
) -> list[Sample]:
    """Ten-minute energy and mean power of one machine, integrated over its states, as its `sources` (its
    power meters, shared equally, or the machine itself) report it; none while it is off."""
    loads = POWER_KW.get(device_class, POWER_KW["robot"])
    buckets: dict[datetime, float] = {}
    for (start, state), (end, _) in itertools.pairwise(rows):
        kw = loads.get(state, 0.0)
        if not kw:
            continue
        at = start
        while at < end:
            bucket_end = datetime.fromtimestamp((at.timestamp() // 600 + 1) * 600, at.tzinfo)
            stop = min(end, bucket_end)
            scatter = rng.uniform(0.85, 1.15) if state == "running" else 1.0
            buckets[bucket_end] = buckets.get(bucket_end, 0.0) + kw * scatter * (stop - at).total_seconds() / 3600
            at = stop
    samples = []
    for at, kwh in sorted(buckets.items()):
        share = kwh / len(sources)
        for source in sources:
            samples += [
                Sample(at, source, "energy_kwh.delta", round(share, 4)),
                Sample(at, source, "power_kw", round(share * 3600 / STEP.total_seconds(), 3)),
            ]
    return samples
