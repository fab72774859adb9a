"""DESIGN.md's package table, for SQL: each package owns the tables its migrations create, and another
package's SQL reads them only through what the owner publishes (views and functions its migrations declare
with a `-- published:` line), and only if the package table lets it import the owner. The Python side of the
table is import-linter's ([tool.importlinter] in pyproject.toml, run by `make test`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("outbox", "telemetry", "gateway", "accounts", "booking", "oee", "notify", "fabhub")
# Whose published relations a package's SQL may read: the packages it may import (DESIGN.md).
MAY_READ: dict[str, frozenset[str]] = {
    "outbox": frozenset(),
    "telemetry": frozenset(),
    "gateway": frozenset(),
    "accounts": frozenset(),
    "booking": frozenset({"accounts"}),
    "oee": frozenset({"telemetry", "booking", "accounts"}),
    "notify": frozenset({"booking", "accounts"}),
}
COMPOSITION_ROOT = "fabhub"  # may read anything

NAME = re.compile(r"^--\s*name:\s*(\S+).*$", re.MULTILINE)  # aiosql; the name may end in an operator ($ ! ^ ...)
PUBLISHED = re.compile(r"^--\s*published:\s*(.+)$", re.MULTILINE)
FUNCTION = re.compile(r"\bCREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+([a-z_][a-z0-9_]*)\s*\(", re.IGNORECASE)
COPY = re.compile(r"^\s*COPY\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # DO blocks and plpgsql bodies fall back to commands


@dataclass(frozen=True)
class Statement:
    package: str
    file: str
    name: str
    sql: str


def _statements(package: str, folder: str) -> Iterator[Statement]:
    for path in sorted((ROOT / package / folder).glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        rel = str(path.relative_to(ROOT))
        if folder == "sql":  # aiosql: several named statements, each after its `-- name:` comment
            parts = NAME.split(text)
            for i in range(1, len(parts), 2):
                yield Statement(package, rel, parts[i], parts[i + 1])
        else:
            yield Statement(package, rel, path.name, text)


def _parse(stmt: Statement) -> list[exp.Expression]:
    try:
        return [tree for tree in sqlglot.parse(stmt.sql, read="postgres") if tree is not None]
    except sqlglot.errors.ParseError:
        if COPY.match(_strip_comments(stmt.sql)):  # `COPY t (...) FROM STDIN (FORMAT BINARY)`
            return []
        raise


def _strip_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--")).strip()


def _relations(stmt: Statement) -> set[str]:
    """The tables, views and (our) functions one statement reads or writes."""
    found: set[str] = set()
    copy = COPY.match(_strip_comments(stmt.sql))
    if copy:
        found.add(copy.group(1))
    for tree in _parse(stmt):
        ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            if table.find_ancestor(exp.Lock) is not None:  # FOR UPDATE OF <alias>
                continue
            if isinstance(table.this, exp.Identifier) and table.name not in ctes:
                found.add(table.name)
        found.update(call.name for call in tree.find_all(exp.Anonymous))
    return found


@dataclass(frozen=True)
class Schema:
    owner: dict[str, str]  # relation -> the package whose migrations create it
    published: dict[str, str]  # relation -> owner, for those the owner publishes


def _schema() -> Schema:
    owner: dict[str, str] = {}
    published: dict[str, str] = {}
    for package in PACKAGES:
        for stmt in _statements(package, "migrations"):
            for name in FUNCTION.findall(stmt.sql):
                owner.setdefault(name, package)
            for tree in _parse(stmt):
                if isinstance(tree, exp.Create) and tree.kind in ("TABLE", "VIEW"):
                    table = tree.this.find(exp.Table)
                    assert table is not None, stmt.file
                    owner.setdefault(table.name, package)
            for line in PUBLISHED.findall(stmt.sql):
                for name in (n.strip() for n in line.split(",")):
                    if name:
                        published[name] = package
    return Schema(owner, published)


SCHEMA = _schema()
QUERIES = [s for p in PACKAGES for s in _statements(p, "sql")]


def test_the_parser_sees_the_schema_and_the_queries():
    assert SCHEMA.owner["telemetry_state"] == "telemetry"
    assert SCHEMA.owner["organization"] == "accounts"
    assert SCHEMA.owner["booking"] == "booking"
    assert SCHEMA.owner["booking_open_hours"] == "booking"
    assert SCHEMA.owner["invoice"] == "oee"
    assert len(QUERIES) > 150
    state_seconds = next(s for s in QUERIES if s.name == "state-seconds")
    assert {"state_change", "booking_slot"} <= _relations(state_seconds)


def test_published_relations_are_created_by_their_publisher():
    assert SCHEMA.published, "no package publishes anything"
    wrong = {
        name: (by, SCHEMA.owner.get(name)) for name, by in SCHEMA.published.items() if SCHEMA.owner.get(name) != by
    }
    assert not wrong, f"published by one package, created by another (or by none): {wrong}"


def _foreign(package: str, relations: set[str]) -> list[str]:
    """The relations of other packages that `package`'s SQL may not touch, each with the reason."""
    violations = []
    for relation in sorted(relations):
        owner = SCHEMA.owner.get(relation)
        if owner is None or owner == package:  # ours, a temporary table or PostgreSQL's catalogue
            continue
        if owner not in MAY_READ[package]:
            violations.append(f"{relation} ({owner}; {package} may not use {owner})")
        elif SCHEMA.published.get(relation) != owner:
            violations.append(f"{relation} is {owner}'s own, not published by it")
    return violations


def test_views_read_other_packages_only_through_what_they_publish():
    """Each view as its package's migrations leave it (a later CREATE OR REPLACE wins): migrations are
    append-only, so an old definition is corrected by a new migration, not by an edit."""
    for package in MAY_READ:
        views: dict[str, tuple[str, set[str]]] = {}
        for stmt in _statements(package, "migrations"):
            for tree in _parse(stmt):
                if isinstance(tree, exp.Create) and tree.kind == "VIEW":
                    name = tree.this.find(exp.Table).name
                    views[name] = (stmt.file, {t.name for t in tree.expression.find_all(exp.Table)})
        for name, (file, read) in views.items():
            assert not _foreign(package, read), f"{file}: view {name}: {_foreign(package, read)}"


@pytest.mark.parametrize("package", sorted(MAY_READ))
def test_sql_touches_other_packages_tables_only_through_what_they_publish(package):
    violations = [
        f"{stmt.file} {stmt.name}: {why}"
        for stmt in QUERIES
        if stmt.package == package
        for why in _foreign(package, _relations(stmt))
    ]
    assert not violations, "\n".join(violations)


def test_the_composition_root_sql_parses():
    for stmt in (s for s in QUERIES if s.package == COMPOSITION_ROOT):
        _relations(stmt)
