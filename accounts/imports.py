"""Importing users in bulk (a CSV file the admin pages parse into rows). Every row is checked against the
rules and the database before anything is written, and the import then creates all of them in one
transaction or none: a file is never half imported, and a row's problems name its line in the file."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from psycopg import AsyncConnection

from accounts import checks, passwords, uscc, users
from accounts.model import Principal, Role
from accounts.sqlfiles import QUERIES
from common.errors import Invalid

MAX_ROWS = 500  # hashing each password takes tens of milliseconds


@dataclass(frozen=True, slots=True)
class ImportRow:
    line: int  # where the row is in the file, for the reader
    email: str
    name: str
    role: str
    organization: str  # credit code or id; empty for staff
    password: str = ""  # empty: one is made up and shown once after the import


@dataclass(slots=True)
class CheckedRow:
    row: ImportRow
    email: str = ""
    role: Role | None = None
    organization_id: int | None = None
    organization_name: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Imported:
    user_id: int
    email: str
    made_up_password: str | None


async def check_rows(conn: AsyncConnection, rows: Sequence[ImportRow]) -> list[CheckedRow]:
    """Each row with its problems: the user's fields, the organization, emails repeated in the file or taken."""
    if not rows:
        raise Invalid("the file has no rows to import")
    if len(rows) > MAX_ROWS:
        raise Invalid(f"at most {MAX_ROWS} rows at once; this file has {len(rows)}")
    checked = [await _check(conn, row) for row in rows]
    first_line: dict[str, int] = {}
    for c in checked:
        if c.email and c.email in first_line:
            c.problems.append(f"the email {c.email} is on line {first_line[c.email]} too")
        first_line.setdefault(c.email, c.row.line)
    emails = [c.email for c in checked if c.email]
    taken = {row[0] async for row in QUERIES.emails_taken(conn, emails=emails)}
    for c in checked:
        if c.email in taken:
            c.problems.append(users.email_taken(c.email))
    return checked


async def import_users(
    conn: AsyncConnection, rows: Sequence[ImportRow], *, at: datetime, actor: Principal | str
) -> list[Imported]:
    """Creates every row's user, or none: Invalid (with the checked rows as `rows`) if any row has a problem,
    and a Conflict from a row taken meanwhile rolls back the rows before it."""
    checked = await check_rows(conn, rows)
    bad = [c for c in checked if c.problems]
    if bad:
        raise Invalid(f"{len(bad)} of {len(checked)} rows have problems; nothing was imported", rows=checked)
    created = []
    async with conn.transaction():
        for c in checked:
            assert c.role is not None  # a row without problems has its role
            password = c.row.password or secrets.token_urlsafe(12)
            user_id = await users.create_user(
                conn,
                email=c.email,
                name=c.row.name,
                role=c.role,
                organization_id=c.organization_id,
                password=password,
                at=at,
                actor=actor,
            )
            created.append(Imported(user_id, c.email, None if c.row.password else password))
    return created


async def _check(conn: AsyncConnection, row: ImportRow) -> CheckedRow:
    c = CheckedRow(row)
    for check in (_email, _name, _role, _password):
        try:
            check(c)
        except Invalid as exc:
            c.problems.append(exc.detail)
    org_known = True
    if row.organization.strip():
        org_known = await _organization(conn, c)
    if c.role is not None and org_known:
        try:
            await users.check_membership(conn, c.role, c.organization_id)
        except Invalid as exc:
            c.problems.append(exc.detail)
    return c


def _email(c: CheckedRow) -> None:
    c.email = checks.email(c.row.email)


def _name(c: CheckedRow) -> None:
    checks.name(c.row.name, "a user's name")


def _role(c: CheckedRow) -> None:
    c.role = users.parse_role(c.row.role.strip().lower())


def _password(c: CheckedRow) -> None:
    if c.row.password:
        try:
            passwords.check_policy(c.row.password)
        except passwords.WeakPassword as exc:
            raise Invalid(str(exc)) from None


async def _organization(conn: AsyncConnection, c: CheckedRow) -> bool:
    """Finds the organization by id or credit code; False (with the problem noted) when there is none."""
    value = c.row.organization.strip()
    if value.isdigit() and len(value) < 19:
        row = await QUERIES.organization(conn, id=int(value))
    else:
        try:
            code = uscc.validate(value)
        except uscc.InvalidCode as exc:
            c.problems.append(str(exc))
            return False
        row = await QUERIES.organization_by_code(conn, uscc=code)
    if row is None:
        c.problems.append(f"no organization has the credit code or id {value}")
        return False
    c.organization_id, c.organization_name = row[0], row[1]
    return True
