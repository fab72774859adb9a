"""OEE arithmetic (ISO 22400-2 as OPC 40501 Annex C quotes it) over a table of times and counts, with pandas:
one row per device and period in, the figures and the six big losses out. Offline time is reported on its
own and left out of the losses: planned time minus offline is the base of availability."""

from __future__ import annotations

import numpy as np
import pandas as pd

STATES = ("running", "setup", "idle", "down", "maintenance", "offline")
TIMES = ("planned", "booked", *STATES, "micro_stop")
COUNTS = ("parts_total", "parts_good")


def figures(table: pd.DataFrame) -> pd.DataFrame:
    """`table`: `<time>_s` seconds for TIMES, COUNTS, `ideal_cycle_s` (NaN when unknown). Adds availability,
    performance, quality, oee, utilisation, actual_utilisation (shares, NaN where undefined) and the losses
    in seconds. A performance above 1 is kept: it says the configured ideal cycle time is too long."""
    t = table.copy()
    observed = t["planned_s"] - t["offline_s"]
    t["observed_s"] = observed
    t["availability"] = _share(t["running_s"], observed)
    ideal_output_s = t["ideal_cycle_s"] * t["parts_total"]
    t["performance"] = _share(ideal_output_s, t["running_s"])
    t["quality"] = _share(t["parts_good"], t["parts_total"])
    t["oee"] = t["availability"] * t["performance"] * t["quality"]
    t["utilisation"] = _share(t["booked_s"], t["planned_s"])
    t["actual_utilisation"] = _share(t["running_s"], t["planned_s"])
    t["performance_suspect"] = t["performance"] > 1
    # The six big losses, as time: breakdowns and setup are states; micro-stops short idle spans; reduced
    # speed what running took beyond the ideal; scrap the ideal time of the bad parts.
    t["loss_down_s"] = t["down_s"]
    t["loss_setup_s"] = t["setup_s"]
    t["loss_micro_stop_s"] = t["micro_stop_s"]
    t["loss_reduced_speed_s"] = (t["running_s"] - ideal_output_s).clip(lower=0)
    t["loss_scrap_s"] = t["ideal_cycle_s"] * (t["parts_total"] - t["parts_good"])
    return t


def rollup(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Sums times and counts over `keys` (say device and week) and recomputes the figures from the sums:
    a week's OEE is not the mean of its days'. Counts of good parts stay unknown (NaN) only if all are."""
    summed = [f"{name}_s" for name in TIMES] + ["parts_total"]
    grouped = table.groupby(keys, sort=True)
    out = grouped[summed].sum()
    out["parts_good"] = grouped["parts_good"].sum(min_count=1)
    out["ideal_cycle_s"] = grouped["ideal_cycle_s"].first()
    return figures(out.reset_index())


def _share(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    with np.errstate(divide="ignore", invalid="ignore"):
        share = numerator.astype(float) / denominator.astype(float)
    return share.where(denominator > 0)
