"""Receivables as of a day: per customer, what is still open on its issued invoices, aged by days since the
invoice was issued (the center's calendar) in the buckets finance reports: 0-30, 31-60, 61-90 and over 90
days. Ageing counts from the issue day, not the due day, so the buckets do not move when the payment term
setting changes. Payments after `as_of` and credit notes issued after it do not count yet."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from common.money import ZERO, money
from common.rows import dict_rows
from oee.sqlfiles import QUERIES

BUCKETS = ("days_0_30", "days_31_60", "days_61_90", "days_over_90")


def bucket_of(age_days: int) -> str:
    if age_days <= 30:
        return BUCKETS[0]
    if age_days <= 60:
        return BUCKETS[1]
    return BUCKETS[2] if age_days <= 90 else BUCKETS[3]


@dataclass(slots=True)
class Receivable:
    organization_id: int
    organization_name: str
    invoices: int = 0
    days_0_30: Decimal = ZERO
    days_31_60: Decimal = ZERO
    days_61_90: Decimal = ZERO
    days_over_90: Decimal = ZERO
    total: Decimal = field(default=ZERO)


async def open_invoices(conn: AsyncConnection, as_of: date, zone: ZoneInfo) -> list[dict[str, Any]]:
    """Issued invoices with something still open as of the day (`open_amount`), by customer and issue time."""
    until = datetime.combine(as_of + timedelta(days=1), time(), zone)
    rows = await dict_rows(conn, QUERIES.open_invoices.sql, {"as_of": as_of, "until": until})
    found = [{**row, "open_amount": money(row["total"] - row["paid"])} for row in rows]
    return [row for row in found if row["open_amount"] > 0]


async def ageing(conn: AsyncConnection, as_of: date, zone: ZoneInfo) -> list[Receivable]:
    """One row per customer with something open, by name."""
    found: dict[int, Receivable] = {}
    for row in await open_invoices(conn, as_of, zone):
        open_amount = row["open_amount"]
        entry = found.setdefault(row["organization_id"], Receivable(row["organization_id"], row["organization_name"]))
        bucket = bucket_of((as_of - row["issued_at"].astimezone(zone).date()).days)
        setattr(entry, bucket, getattr(entry, bucket) + open_amount)
        entry.total += open_amount
        entry.invoices += 1
    return list(found.values())


def totals(rows: list[Receivable]) -> dict[str, Decimal]:
    return {name: sum((getattr(r, name) for r in rows), ZERO) for name in (*BUCKETS, "total")}


HEADER = ("客户", "发票数", "0-30天", "31-60天", "61-90天", "90天以上", "合计")


def ageing_csv(rows: list[Receivable], as_of: date) -> bytes:
    """UTF-8 with BOM so Excel opens the Chinese names; a totals line last."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([f"截至 {as_of.isoformat()}"])
    writer.writerow(HEADER)
    for r in rows:
        writer.writerow([r.organization_name, r.invoices, *(getattr(r, b) for b in BUCKETS), r.total])
    summed = totals(rows)
    writer.writerow(["合计", sum(r.invoices for r in rows), *(summed[b] for b in BUCKETS), summed["total"]])
    return out.getvalue().encode("utf-8-sig")
