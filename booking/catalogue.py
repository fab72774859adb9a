"""The device catalogue: classes with their rates and rules, devices, subsidy programs. devices.yaml is the
source; `sync` brings the database in line with it at start-up, retires what left the file (keeping its
history) and writes every change of a rate, rule or program to the audit log."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from accounts import audit
from booking.sqlfiles import QUERIES

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

    def rate(self, device_id: str) -> Decimal:
        device = self.devices[device_id]
        return device.hourly_rate if device.hourly_rate is not None else self.classes[device.class_id].hourly_rate


async def sync(conn: AsyncConnection, catalogue: Catalogue, at: datetime) -> list[str]:
    """Run inside a transaction. Returns one line per change, for the log."""
    await QUERIES.lock_catalogue(conn)
    changes: list[str] = []
    before = await _rows(conn, QUERIES.class_rows.sql)
    for cls in catalogue.classes.values():
        row = cls.row() | {"retired_at": None}
        if _differs(before.get(cls.id), row):
            await QUERIES.upsert_class(conn, **row)
            await audit.record(conn, at, ACTOR, "sync", "device_class", cls.id, before=before.get(cls.id), after=row)
            changes.append(f"class {cls.id} {'updated' if cls.id in before else 'added'}")
    for class_id, row in before.items():
        if class_id not in catalogue.classes and row["retired_at"] is None:
            await QUERIES.retire_class(conn, id=class_id, at=at)
            await audit.record(conn, at, ACTOR, "retire", "device_class", class_id, before=row)
            changes.append(f"class {class_id} retired")

    before = await _rows(conn, QUERIES.device_rows.sql)
    for device in catalogue.devices.values():
        was = before.get(device.id)
        retired_at = (was or {}).get("retired_at") or at if device.retired else None
        row = {"id": device.id, "class_id": device.class_id, "name": device.name}
        row |= {"hourly_rate": device.hourly_rate, "retired_at": retired_at}
        if _differs(was, row):
            await QUERIES.upsert_device(conn, **row)
            await audit.record(conn, at, ACTOR, "sync", "device", device.id, before=was, after=row)
            changes.append(f"device {device.id} {'updated' if was else 'added'}")
    for device_id, row in before.items():
        if device_id not in catalogue.devices and row["retired_at"] is None:
            await QUERIES.retire_device(conn, id=device_id, at=at)
            await audit.record(conn, at, ACTOR, "retire", "device", device_id, before=row)
            changes.append(f"device {device_id} retired (left devices.yaml)")

    before = await _rows(conn, QUERIES.program_rows.sql)
    for program in catalogue.programs.values():
        row = asdict(program) | {"classes": list(program.classes), "retired_at": None}
        if _differs(before.get(program.id), row):
            await QUERIES.upsert_program(conn, **row)
            await audit.record(
                conn, at, ACTOR, "sync", "subsidy_program", program.id, before=before.get(program.id), after=row
            )
            changes.append(f"subsidy program {program.id} {'updated' if program.id in before else 'added'}")
    for program_id, row in before.items():
        if program_id not in catalogue.programs and row["retired_at"] is None:
            await QUERIES.retire_program(conn, id=program_id, at=at)
            await audit.record(conn, at, ACTOR, "retire", "subsidy_program", program_id, before=row)
            changes.append(f"subsidy program {program_id} retired")
    return changes


async def _rows(conn: AsyncConnection, sql: str) -> dict[str, dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql)
        return {row["id"]: row for row in await cur.fetchall()}


def _differs(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    return old is None or any(old.get(k) != v for k, v in new.items())
