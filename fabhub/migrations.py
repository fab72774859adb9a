"""The one migration runner. Each domain package owns numbered SQL files in its `migrations/` folder;
they are applied package by package in dependency order (DESIGN.md's table), each file in its own
transaction, under an advisory lock so two FabHub processes starting together never both migrate."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Literal

import psycopg

from fabhub.sqlfiles import QUERIES

# Dependency order: a package's tables may reference those of packages before it.
PACKAGES: tuple[str, ...] = ("common", "outbox", "telemetry", "gateway", "accounts", "booking", "oee", "notify")
FILENAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
TimescaleMode = Literal["auto", "require", "off"]


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    package: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.package}/{self.version:03d}_{self.name}"


@dataclass(frozen=True, slots=True)
class MigrationReport:
    applied: list[str]
    timescaledb: bool


def discover(packages: Sequence[str] = PACKAGES) -> list[Migration]:
    found: list[Migration] = []
    for package in packages:
        folder = files(package) / "migrations"
        versions: set[int] = set()
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".sql"):
                continue
            match = FILENAME.match(entry.name)
            if match is None:
                raise MigrationError(f"{package}/migrations/{entry.name}: name must look like 001_name.sql")
            version = int(match.group(1))
            if version in versions:
                raise MigrationError(f"{package}/migrations: version {version:03d} appears twice")
            versions.add(version)
            found.append(Migration(package, version, match.group(2), entry.read_text(encoding="utf-8")))
    return found


async def migrate(
    conninfo: str,
    *,
    timescaledb: TimescaleMode = "auto",
    migrations: Sequence[Migration] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> MigrationReport:
    """Bring the database up to date; a no-op when it already is. Refuses to run when a migration that
    was applied has since been edited (its checksum changed): schema history is append-only."""
    todo = list(migrations) if migrations is not None else discover()
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await QUERIES.lock_migrations(conn)
        try:
            await QUERIES.create_migration_table(conn)
            active = await _ensure_timescaledb(conn, timescaledb)
            applied = {(p, v): (n, c) async for p, v, n, c in QUERIES.applied_migrations(conn)}
            done: list[str] = []
            for m in todo:
                previous = applied.get((m.package, m.version))
                if previous is not None:
                    if previous[1] != m.checksum:
                        raise MigrationError(f"{m.label} was changed after it was applied; add a new migration instead")
                    continue
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await QUERIES.record_migration(
                        conn, package=m.package, version=m.version, name=m.name, checksum=m.checksum
                    )
                done.append(m.label)
                if on_step is not None:
                    on_step(m.label)
        finally:
            await QUERIES.unlock_migrations(conn)
    return MigrationReport(done, active)


async def _ensure_timescaledb(conn: psycopg.AsyncConnection, mode: TimescaleMode) -> bool:
    if mode == "off":
        return False
    if await QUERIES.timescaledb_installable(conn):
        await QUERIES.create_timescaledb(conn)
        return True
    if mode == "require":
        raise MigrationError(
            "TimescaleDB is required (FABHUB_TIMESCALEDB=require) but the server does not have it "
            "installed and in shared_preload_libraries"
        )
    return False


async def pending(conninfo: str, migrations: Sequence[Migration] | None = None) -> list[str]:
    """The migrations the database lacks, without applying any: processes that do not migrate check this."""
    todo = list(migrations) if migrations is not None else discover()
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        try:
            applied = {(p, v) async for p, v, _n, _c in QUERIES.applied_migrations(conn)}
        except psycopg.errors.UndefinedTable:
            applied = set()
    return [m.label for m in todo if (m.package, m.version) not in applied]
