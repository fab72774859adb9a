"""The device catalogue: classes with their rates and rules, devices, subsidy programs. devices.yaml is the
source; `sync` brings the database in line with it at start-up, retires what left the file (keeping its
history) and writes every change of a rate, rule or program to the audit log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from accounts import audit
from booking.sqlfiles import QUERIES
from common.errors import NotFound

ACTOR = "devices.yaml"


@dataclass(frozen=True, slots=True)
class Rules:
    min_booking: timedelta
    max_booking: timedelta
    granularity: timedelta
    horizon_days: int
    max_future_hours_per_org: int
    late_cancellation: timedelta
    no_show_after: timedelta
    late_cancellation_fee_share: Decimal
    no_show_fee_share: Decimal


@dataclass(frozen=True, slots=True)
class DeviceClass:
    id: str
    name: str
    name_zh: str | None
    hourly_rate: Decimal
    billing_basis: str
    metered_minimum_share: Decimal
    rules: Rules

    def row(self) -> dict[str, Any]:
        top = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rules"}
        return top | asdict(self.rules)


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    class_id: str
    name: str
    hourly_rate: Decimal | None
    retired: bool = False


@dataclass(frozen=True, slots=True)
class Program:
    id: str
    name: str
    share: Decimal
    classes: tuple[str, ...]
    valid_from: date
    valid_to: date
    annual_cap: Decimal


@dataclass(frozen=True, slots=True)
class Catalogue:
    classes: dict[str, DeviceClass]
    devices: dict[str, Device]
    programs: dict[str, Program]

    def bookable(self, device_id: str) -> bool:
        device = self.devices.get(device_id)
        return device is not None and not device.retired

    def class_devices(self, class_id: str) -> list[str]:
        return [d.id for d in self.devices.values() if d.class_id == class_id and not d.retired]

    def chosen(self, device_id: str | None, class_id: str | None) -> list[str]:
        """The devices a report's `device` and `class` filters choose, in id order; NotFound naming an unknown
        one (retired devices included: their history stays reportable)."""
        if class_id is not None and class_id not in self.classes:
            raise NotFound(f"no device class {class_id!r}")
        found = [d.id for d in self.devices.values() if class_id is None or d.class_id == class_id]
        if device_id is not None:
            if device_id not in found:
                raise NotFound(f"no device {device_id!r}" + (f" in class {class_id}" if class_id else ""))
            return [device_id]
        return sorted(found)

    def rate(self, device_id: str) -> Decimal:
        device = self.devices[device_id]
        return device.hourly_rate if device.hourly_rate is not None else self.classes[device.class_id].hourly_rate


async def sync(conn: AsyncConnection, catalogue: Catalogue, at: datetime) -> list[str]:
    """Run inside a transaction. Returns one line per change, for the log."""
    await QUERIES.lock_catalogue(conn)
    changes = await _plan(conn, catalogue, at)
    for change in changes:
        table, key = change.table, change.key
        if change.row is None:
            await table.retire(conn, id=key, at=at)
            await audit.record(conn, at, ACTOR, "retire", table.entity, key, before=change.was)
        else:
            await table.upsert(conn, **change.row)
            await audit.record(conn, at, ACTOR, "sync", table.entity, key, before=change.was, after=change.row)
    return [c.summary for c in changes]


async def differences(conn: AsyncConnection, catalogue: Catalogue, at: datetime, *, partial: bool = False) -> list[str]:
    """What `sync` would change, field by field, changing nothing: the processes that only read the catalogue
    refuse to start on a file that disagrees with the database, and name how. `partial`: the file holds part
    of the catalogue (a site's own file), so what it lacks is not a difference."""
    return [c.detail for c in await _plan(conn, catalogue, at) if not (partial and c.row is None)]


async def _plan(conn: AsyncConnection, catalogue: Catalogue, at: datetime) -> list[_Change]:
    def device_row(device: Device) -> Callable[[dict[str, Any] | None], dict[str, Any]]:
        def row(was: dict[str, Any] | None) -> dict[str, Any]:
            # A device retired in the file keeps the date it was first retired on.
            retired_at = ((was or {}).get("retired_at") or at) if device.retired else None
            return {
                "id": device.id,
                "class_id": device.class_id,
                "name": device.name,
                "hourly_rate": device.hourly_rate,
                "retired_at": retired_at,
            }

        return row

    def fixed(row: dict[str, Any]) -> Callable[[dict[str, Any] | None], dict[str, Any]]:
        return lambda _was: row | {"retired_at": None}

    tables = (
        (_Table("device_class", QUERIES.class_rows, QUERIES.upsert_class, QUERIES.retire_class),
         {c.id: fixed(c.row()) for c in catalogue.classes.values()}),
        (_Table("device", QUERIES.device_rows, QUERIES.upsert_device, QUERIES.retire_device),
         {d.id: device_row(d) for d in catalogue.devices.values()}),
        (_Table("subsidy_program", QUERIES.program_rows, QUERIES.upsert_program, QUERIES.retire_program),
         {p.id: fixed(asdict(p) | {"classes": list(p.classes)}) for p in catalogue.programs.values()}),
    )  # fmt: skip
    changes: list[_Change] = []
    for table, wanted in tables:
        changes += await _plan_table(conn, table, wanted)
    return changes


@dataclass(frozen=True, slots=True)
class _Table:
    entity: str
    rows: Any
    upsert: Any
    retire: Any


@dataclass(frozen=True, slots=True)
class _Change:
    table: _Table
    key: str
    was: dict[str, Any] | None
    row: dict[str, Any] | None  # None: retire it

    @property
    def summary(self) -> str:
        what = "retired (left devices.yaml)" if self.row is None else "updated" if self.was else "added"
        return f"{self.table.entity} {self.key} {what}"

    @property
    def detail(self) -> str:
        where = f"{self.table.entity} {self.key}"
        if self.row is None:
            return f"{where}: in the database, not in devices.yaml"
        if self.was is None:
            return f"{where}: in devices.yaml, not in the database"
        fields = [f"{k} {self.was.get(k)!s} in the database, {v!s} in devices.yaml"
                  for k, v in self.row.items() if self.was.get(k) != v]  # fmt: skip
        return f"{where}: " + "; ".join(fields)


async def _plan_table(
    conn: AsyncConnection,
    table: _Table,
    wanted: dict[str, Callable[[dict[str, Any] | None], dict[str, Any]]],
) -> list[_Change]:
    """Upsert what the file has and differs, retire what it no longer has."""
    changes: list[_Change] = []
    before = await _rows(conn, table.rows.sql)
    for key, make in wanted.items():
        was = before.get(key)
        row = make(was)
        if _differs(was, row):
            changes.append(_Change(table, key, was, row))
    for key, row in before.items():
        if key not in wanted and row["retired_at"] is None:
            changes.append(_Change(table, key, row, None))
    return changes


async def _rows(conn: AsyncConnection, sql: str) -> dict[str, dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql)
        return {row["id"]: row for row in await cur.fetchall()}


def _differs(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    return old is None or any(old.get(k) != v for k, v in new.items())
