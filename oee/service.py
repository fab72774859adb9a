"""OEE and utilisation from the telemetry state table and the bookings: the database cuts the state spans
to each device's planned time and to local days (the data is large), pandas does the arithmetic (where it
is clearest). Per device: planned = opening hours minus maintenance; per customer: its bookings, where a
completed booking's days are read from its frozen results (oee.results) and only the rest is computed live."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from psycopg import AsyncConnection
from psycopg.types.multirange import Multirange

from oee import metrics
from oee.energy import EnergyFacts
from oee.sqlfiles import QUERIES

MICRO_STOP = timedelta(minutes=2)
ONE_DAY = timedelta(days=1)
CATCH_UP = timedelta(days=31)
RECOMPUTE = 2
GROUPS = ("day", "week", "month", "total")
COLUMNS = ["device_id", "day", *[f"{c}_s" for c in metrics.TIMES], "parts_total", "parts_good", "ideal_cycle_s"]


class OeeService:
    def __init__(
        self,
        ideal_cycle_s: Mapping[str, float | None],
        counts_good: frozenset[str],
        energy: EnergyFacts,
        zone: ZoneInfo,
        clock: Callable[[], datetime],
        micro_stop: timedelta = MICRO_STOP,
    ) -> None:
        self.ideal_cycle_s = ideal_cycle_s
        self.counts_good = counts_good  # devices with a parts_good or parts_bad counter
        self.energy = energy
        self.zone = zone
        self.clock = clock
        self.micro_stop = micro_stop

    async def daily(
        self,
        conn: AsyncConnection,
        device_ids: list[str],
        start: datetime,
        end: datetime,
        organization_id: int | None = None,
    ) -> pd.DataFrame:
        """One row per device and local day: seconds per state inside the planned time, booked seconds,
        parts, and the figures. With `organization_id`, the planned time is that customer's bookings.
        Whole past days come from the nightly summary where it has them; the rest is computed live.
        For a customer, the days of its bookings with frozen results come from those (so raw-data retention
        never changes them), where the window holds the whole of that day's piece of the slot; the rest of its
        planned time is computed live."""
        if organization_id is None:
            first, last = self._whole_past_days(start, end)
            if first <= last:
                stored = await self._stored(conn, device_ids, first, last)
                parts = [stored]
                # Days the summary lacks for some device (not summarized yet) are computed live for those, a
                # run of consecutive days missing the same devices in one go (per-day results do not depend on
                # the window's length).
                have = set(zip(stored["device_id"], stored["day"], strict=True))
                runs: list[tuple[date, date, list[str]]] = []
                day = first
                while day <= last:
                    missing = [d for d in device_ids if (d, day) not in have]
                    if missing and runs and runs[-1][2] == missing and runs[-1][1] == day - ONE_DAY:
                        runs[-1] = (runs[-1][0], day, missing)
                    elif missing:
                        runs.append((day, day, missing))
                    day += ONE_DAY
                for run_first, run_last, missing in runs:
                    window = self._midnight(run_first), self._midnight(run_last + ONE_DAY)
                    parts.append(await self.live(conn, missing, *window))
                head = await self.live(conn, device_ids, start, self._midnight(first))
                tail = await self.live(conn, device_ids, self._midnight(last + ONE_DAY), end)
                return _in_order(metrics.figures(pd.concat([head, *parts, tail], ignore_index=True)))
        frozen = await self._frozen(conn, device_ids, start, end, organization_id)
        fresh = await self.live(conn, device_ids, start, end, organization_id, leave_out_frozen=True)
        if frozen.empty:
            return _in_order(metrics.figures(fresh))
        if fresh.empty:
            return _in_order(metrics.figures(_per_day(frozen)))
        return _in_order(metrics.figures(_per_day(pd.concat([frozen, fresh], ignore_index=True))))

    async def live(
        self,
        conn: AsyncConnection,
        device_ids: list[str],
        start: datetime,
        end: datetime,
        organization_id: int | None = None,
        *,
        leave_out_frozen: bool = False,
    ) -> pd.DataFrame:
        """The raw table (COLUMNS) computed from the state table and the samples. `leave_out_frozen`: a
        customer's planned time without the pieces `_frozen` reads from the stored results."""
        if end <= start or not device_ids:
            return _empty()
        params = {"device_ids": device_ids, "start": start, "end": end, "zone": self.zone.key}
        if organization_id is None:
            cur = await conn.execute(QUERIES.device_planned_time.sql, params)
        else:
            cur = await conn.execute(
                QUERIES.customer_planned_time.sql,
                params | {"organization_id": organization_id, "leave_out_frozen": leave_out_frozen},
            )
        planned: dict[str, Multirange] = dict(await cur.fetchall())
        ids = [d for d in device_ids if planned.get(d)]  # none, or nothing left once the frozen pieces are out
        if not ids:
            return _empty()
        params |= {
            "device_ids": ids,
            "planned": [planned[d] for d in ids],
            "now": self.clock(),
            "micro_stop": self.micro_stop,
            "organization_id": organization_id,
        }
        cur = await conn.execute(QUERIES.state_seconds.sql, params)
        times = pd.DataFrame(await cur.fetchall(), columns=["device_id", "day", "state", "seconds"])
        cur = await conn.execute(QUERIES.parts.sql, params)
        parts = pd.DataFrame(await cur.fetchall(), columns=["device_id", "day", "signal", "n"])
        return self._table(times, parts)

    async def summarize(self, conn: AsyncConnection, device_ids: list[str], now: datetime) -> list[date]:
        """The nightly job: stores every past local day of the last CATCH_UP days that lacks a summary, and
        always recomputes the last RECOMPUTE days, which late data (a spool replayed after an outage) may
        still change. Every device gets a row for every day, zeros included, so a day is complete."""
        today = now.astimezone(self.zone).date()
        params = {"device_ids": device_ids, "first": today - CATCH_UP, "last": today - ONE_DAY}
        days = {row[0] async for row in QUERIES.days_to_summarize(conn, **params)}
        days |= {today - ONE_DAY * i for i in range(1, RECOMPUTE + 1)}
        ordered = sorted(days)
        if ordered:  # one live computation over the whole span, then the wanted days stored in one batch
            raw = await self.live(conn, device_ids, self._midnight(ordered[0]), self._midnight(ordered[-1] + ONE_DAY))
            rows = [row for day in ordered for row in self._complete(raw, device_ids, day).to_dict("records")]
            async with conn.cursor() as cur:
                await cur.executemany(QUERIES.store_day.sql, [{**row, "computed_at": now} for row in rows])
        return ordered

    def _complete(self, raw: pd.DataFrame, device_ids: list[str], day: date) -> pd.DataFrame:
        index = pd.MultiIndex.from_product([device_ids, [day]], names=["device_id", "day"])
        full = raw.set_index(["device_id", "day"]).reindex(index)
        full[[f"{c}_s" for c in metrics.TIMES] + ["parts_total"]] = full[
            [f"{c}_s" for c in metrics.TIMES] + ["parts_total"]
        ].fillna(0.0)
        full = full.reset_index()
        full["parts_good"] = full["parts_good"].where(full["parts_good"].notna(), None)
        counting = full["device_id"].isin(self.counts_good)
        full.loc[counting & full["parts_good"].isna(), "parts_good"] = 0.0
        full["ideal_cycle_s"] = full["device_id"].map(lambda d: self.ideal_cycle_s.get(d))
        return full[COLUMNS].astype(object).where(full[COLUMNS].notna(), None)

    async def _stored(self, conn: AsyncConnection, device_ids: list[str], first: date, last: date) -> pd.DataFrame:
        cur = await conn.execute(QUERIES.stored_days.sql, {"device_ids": device_ids, "first": first, "last": last})
        return pd.DataFrame(await cur.fetchall(), columns=COLUMNS).astype({c: float for c in COLUMNS[2:]})

    async def _frozen(
        self,
        conn: AsyncConnection,
        device_ids: list[str],
        start: datetime,
        end: datetime,
        organization_id: int | None,
    ) -> pd.DataFrame:
        """The customer's frozen per-day booking results inside [start, end) (see `daily`); none without a
        customer (`organization_id` None matches no booking)."""
        if end <= start or not device_ids:
            return _empty()
        params = {
            "organization_id": organization_id,
            "device_ids": device_ids,
            "start": start,
            "end": end,
            "first_day": start.astimezone(self.zone).date(),
            "last_day": end.astimezone(self.zone).date(),
        }
        cur = await conn.execute(QUERIES.frozen_days.sql, params)
        return pd.DataFrame(await cur.fetchall(), columns=COLUMNS).astype({c: float for c in COLUMNS[2:]})

    def _midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(), self.zone)

    def _whole_past_days(self, start: datetime, end: datetime) -> tuple[date, date]:
        """The first and last local days wholly inside [start, end) and before today."""
        first = start.astimezone(self.zone).date()
        if self._midnight(first) < start:
            first += ONE_DAY
        last = end.astimezone(self.zone).date() - ONE_DAY
        today = self.clock().astimezone(self.zone).date()
        return first, min(last, today - ONE_DAY)

    def _table(self, times: pd.DataFrame, parts: pd.DataFrame) -> pd.DataFrame:
        wide = times.pivot_table(index=["device_id", "day"], columns="state", values="seconds", aggfunc="sum")
        wide = wide.reindex(columns=list(metrics.TIMES), fill_value=0.0).fillna(0.0)
        wide.columns = [f"{c}_s" for c in wide.columns]
        counts = parts.pivot_table(index=["device_id", "day"], columns="signal", values="n", aggfunc="sum")
        table = wide.join(counts, how="left").reset_index()
        total = _column(table, "parts_total.delta").fillna(0.0)
        # A day without a good-parts delta made no good parts, on a device that counts them; on one that does
        # not, quality is unknown rather than perfect.
        good = _column(table, "parts_good.delta").fillna(0.0)
        if "parts_bad.delta" in table and "parts_good.delta" not in table:
            good = total - _column(table, "parts_bad.delta").fillna(0.0)
        table["parts_total"] = total
        table["parts_good"] = good.where(table["device_id"].isin(self.counts_good))
        table["ideal_cycle_s"] = table["device_id"].map(lambda d: self.ideal_cycle_s.get(d)).astype(float)
        return table[COLUMNS]


def group(daily: pd.DataFrame, by: str, keys: tuple[str, ...] = ("device_id",)) -> pd.DataFrame:
    """Days into weeks (ISO, starting Monday), months or one total per key."""
    if by not in GROUPS:
        raise ValueError(f"group by one of {', '.join(GROUPS)}")
    table = daily.copy()
    days = pd.to_datetime(table["day"])
    if by == "day":
        table["period"] = days.dt.date
    elif by == "week":
        table["period"] = (days - pd.to_timedelta(days.dt.day_of_week, unit="D")).dt.date
    elif by == "month":
        table["period"] = days.dt.to_period("M").dt.start_time.dt.date
    else:
        table["period"] = None
    return metrics.rollup(table.fillna({"period": ""}), [*keys, "period"])


def _per_day(table: pd.DataFrame) -> pd.DataFrame:
    """One row per device and day again, where frozen booking results and live pieces (or several bookings)
    share a day: times and counts summed, good parts unknown only if unknown in every piece."""
    grouped = table.groupby(["device_id", "day"], sort=False)
    summed = grouped[[f"{c}_s" for c in metrics.TIMES] + ["parts_total"]].sum()
    summed["parts_good"] = grouped["parts_good"].sum(min_count=1)
    summed["ideal_cycle_s"] = grouped["ideal_cycle_s"].first()
    return summed.reset_index()[COLUMNS]


def _in_order(table: pd.DataFrame) -> pd.DataFrame:
    """By device, then day, whichever way each day was computed (summary or live)."""
    return table.sort_values(["device_id", "day"], ignore_index=True, kind="stable")


def _column(table: pd.DataFrame, name: str) -> pd.Series:
    return table[name].astype(float) if name in table else pd.Series(float("nan"), index=table.index)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=COLUMNS).astype({c: float for c in COLUMNS[2:]})
