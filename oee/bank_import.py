"""Bank statement CSV import. Columns (a header row, in any order, English or as Chinese bank exports name
them): date (日期/交易日期, YYYY-MM-DD or YYYY/MM/DD), amount (金额/收入金额, CNY, incoming only), reference
(附言/摘要/用途) and payer (付款人/对方户名). The file is UTF-8 (a BOM is fine) or GBK, as Chinese banks export.

A file with any bad row imports nothing: every problem is reported with its line number. A row whose
reference names an issued invoice's number and whose amount fits the open amount is recorded as a payment
(a partial payment too); every other row is kept as unmatched for finance to assign or dismiss. Each row's
hash (its fields and its occurrence in the file) is unique, so importing the same file again records nothing
twice."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from psycopg import AsyncConnection

from accounts import audit
from accounts.model import Principal
from common.errors import Conflict, Invalid, NotFound
from common.money import money
from common.rows import dict_rows
from oee.payments import Payments
from oee.sqlfiles import QUERIES

MAX_BYTES = 512 * 1024
MAX_ROWS = 5000
COLUMNS = {
    "date": ("date", "日期", "交易日期", "记账日期"),
    "amount": ("amount", "金额", "收入金额", "贷方金额"),
    "reference": ("reference", "附言", "摘要", "用途"),
    "payer": ("payer", "付款人", "对方户名", "付款人名称"),
}
NUMBER = re.compile(r"FH\d{4}-\d{6}")


@dataclass(frozen=True, slots=True)
class BankRow:
    line: int
    booked_on: date
    amount: Decimal
    reference: str
    payer: str


def decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise Invalid(f"the file is larger than {MAX_BYTES // 1024} KiB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gbk")
    except UnicodeDecodeError:
        raise Invalid("the file is neither UTF-8 nor GBK text") from None


def _day(text: str) -> date:
    """YYYY-MM-DD or YYYY/MM/DD, as a calendar day (no time zone: the bank's booking day)."""
    return date.fromisoformat(text.strip().replace("/", "-"))


def parse(text: str) -> list[BankRow]:
    """Every row or an Invalid naming each bad line (line 1 is the header)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return _rows(reader)
    except csv.Error as exc:
        raise Invalid(f"line {reader.line_num}: {exc}") from None


def _rows(reader: Any) -> list[BankRow]:
    header = [h.strip().lower() for h in next(reader, [])]
    where: dict[str, int] = {}
    for name, aliases in COLUMNS.items():
        found = [i for i, h in enumerate(header) if h in aliases]
        if not found:
            raise Invalid(f"line 1: the header has no {name} column ({' / '.join(aliases)})")
        where[name] = found[0]
    rows: list[BankRow] = []
    problems: list[str] = []
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(rows) >= MAX_ROWS:
            raise Invalid(f"more than {MAX_ROWS} rows: split the statement")
        if len(cells) < len(header):
            problems.append(f"line {line}: {len(cells)} columns, the header has {len(header)}")
            continue
        try:
            booked_on = _day(cells[where["date"]])
        except ValueError:
            problems.append(f"line {line}: date {cells[where['date']]!r} is not YYYY-MM-DD")
            continue
        try:
            amount = Decimal(cells[where["amount"]].strip().replace(",", ""))
        except InvalidOperation:
            problems.append(f"line {line}: amount {cells[where['amount']]!r} is not a number")
            continue
        if not amount.is_finite() or amount <= 0 or amount >= Decimal("1e10") or money(amount) != amount:
            problems.append(f"line {line}: amount {cells[where['amount']]!r} must be above 0 with at most 2 decimals")
            continue
        reference, payer = cells[where["reference"]].strip(), cells[where["payer"]].strip()
        if "\x00" in reference + payer:
            problems.append(f"line {line}: text cannot contain NUL characters")
            continue
        rows.append(BankRow(line, booked_on, money(amount), reference, payer))
    if problems:
        raise Invalid("; ".join(problems), problems=problems)
    return rows


def row_hashes(rows: list[BankRow]) -> list[str]:
    """Two identical rows in one statement are two payments: the occurrence number tells them apart."""
    seen: Counter[tuple[Any, ...]] = Counter()
    hashes = []
    for row in rows:
        key = (row.booked_on.isoformat(), str(row.amount), row.reference, row.payer)
        seen[key] += 1
        hashes.append(hashlib.sha256("\x1f".join([*key, str(seen[key])]).encode()).hexdigest())
    return hashes


class BankImport:
    def __init__(self, payments: Payments, clock: Callable[[], datetime]) -> None:
        self.payments = payments
        self.clock = clock

    async def load(self, conn: AsyncConnection, filename: str, data: bytes, principal: Principal) -> dict[str, Any]:
        """Parses, stores and matches in one transaction: a failure leaves nothing behind."""
        rows = parse(decode(data))
        now = self.clock()
        counts = Counter({"matched": 0, "unmatched": 0, "duplicates": 0})
        async with conn.transaction():
            statement_id = await QUERIES.insert_statement(conn, filename=filename[:200], by=principal.id, now=now)
            for row, row_hash in zip(rows, row_hashes(rows), strict=True):
                row_id = await QUERIES.insert_bank_row(
                    conn,
                    statement_id=statement_id,
                    line=row.line,
                    booked_on=row.booked_on,
                    amount=row.amount,
                    reference=row.reference,
                    payer=row.payer,
                    row_hash=row_hash,
                )
                if row_id is None:
                    counts["duplicates"] += 1
                    continue
                matched = await self._match(conn, row_id, row, principal)
                counts["matched" if matched else "unmatched"] += 1
            await audit.record(conn, now, principal, "import", "bank_statement", statement_id, after=dict(counts))
        return {"id": statement_id, **counts}

    async def _match(self, conn: AsyncConnection, row_id: int, row: BankRow, principal: Principal) -> bool:
        for number in NUMBER.findall(row.reference.upper()):
            invoice_id = await QUERIES.invoice_by_number(conn, number=number)
            if invoice_id is None:
                continue
            try:
                payment_id = await self.payments.record(
                    conn, invoice_id, row.amount, row.booked_on, "bank_transfer", row.reference, principal
                )
            except Conflict:
                continue  # more than is open: finance decides
            await QUERIES.match_bank_row(
                conn, id=row_id, status="matched", payment_id=payment_id, reason=None, by=None, now=None
            )
            return True
        return False

    async def _unmatched(self, conn: AsyncConnection, row_id: int) -> dict[str, Any]:
        found = await dict_rows(conn, QUERIES.lock_bank_row.sql, {"id": row_id})
        if not found:
            raise NotFound(f"no bank statement row {row_id}")
        row = found[0]
        if row["status"] != "unmatched":
            raise Conflict(f"bank statement row {row_id} is {row['status']} already")
        return row

    async def assign(self, conn: AsyncConnection, row_id: int, invoice_id: int, principal: Principal) -> int:
        """Records the reviewed row as a payment of the invoice; the overpayment rule still holds."""
        now = self.clock()
        async with conn.transaction():
            row = await self._unmatched(conn, row_id)
            payment_id = await self.payments.record(
                conn, invoice_id, row["amount"], row["booked_on"], "bank_transfer", row["reference"], principal
            )
            await QUERIES.match_bank_row(
                conn, id=row_id, status="assigned", payment_id=payment_id, reason=None, by=principal.id, now=now
            )
        return payment_id

    async def dismiss(self, conn: AsyncConnection, row_id: int, reason: str, principal: Principal) -> None:
        now = self.clock()
        async with conn.transaction():
            await self._unmatched(conn, row_id)
            await QUERIES.match_bank_row(
                conn, id=row_id, status="dismissed", payment_id=None, reason=reason, by=principal.id, now=now
            )
            await audit.record(conn, now, principal, "dismiss", "bank_row", row_id, reason=reason)

    async def statements(
        self, conn: AsyncConnection, limit: int = 50, statement_id: int | None = None
    ) -> list[dict[str, Any]]:
        """The latest imports (or the one asked for), newest first, with their rows counted by status."""
        return await dict_rows(conn, QUERIES.bank_statements.sql, {"limit": limit, "id": statement_id})

    async def rows(self, conn: AsyncConnection, statement_id: int) -> list[dict[str, Any]]:
        if not await QUERIES.statement_exists(conn, id=statement_id):
            raise NotFound(f"no bank statement {statement_id}")
        return await dict_rows(conn, QUERIES.bank_rows.sql, {"statement_id": statement_id})
