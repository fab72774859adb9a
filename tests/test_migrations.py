"""The migration runner: ordered, recorded, idempotent, safe under concurrency, append-only."""

import asyncio
import dataclasses
import uuid

import psycopg
import pytest

from fabhub.migrations import MigrationError, discover, migrate


def _fresh(backend):
    with psycopg.connect(backend.admin_url, autocommit=True) as conn:
        name = f"empty_{uuid.uuid4().hex[:12]}"
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, backend.url(name)


def _applied(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT package, version FROM fabhub_migration ORDER BY 1, 2").fetchall()


def _tables(url):
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2"
        ).fetchall()


async def test_second_run_is_a_no_op(backend):
    name, url = _fresh(backend)
    try:
        first = await migrate(url, timescaledb="auto")
        schema = _tables(url)
        second = await migrate(url, timescaledb="auto")
        assert first.applied == [m.label for m in discover()]
        assert second.applied == []
        assert _tables(url) == schema
        assert _applied(url) == sorted((m.package, m.version) for m in discover())
        assert first.timescaledb is backend.timescaledb
    finally:
        backend.drop(name)


async def test_concurrent_runners_apply_each_migration_once(timescale_backend):
    name, url = _fresh(timescale_backend)
    try:
        reports = await asyncio.gather(*(migrate(url, timescaledb="require") for _ in range(4)))
        applied = [label for r in reports for label in r.applied]
        assert sorted(applied) == sorted(m.label for m in discover())
        assert sum(1 for r in reports if r.applied) == 1
        assert _applied(url) == sorted((m.package, m.version) for m in discover())
    finally:
        timescale_backend.drop(name)


async def test_edited_migration_is_refused(db_url):
    edited = [dataclasses.replace(m, sql=m.sql + "\n-- edited") if m.version == 1 else m for m in discover()]
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(db_url, migrations=edited)


async def test_require_timescaledb_fails_clearly_without_it(embedded_backend):
    name, url = _fresh(embedded_backend)
    try:
        with pytest.raises(MigrationError, match="TimescaleDB is required"):
            await migrate(url, timescaledb="require")
    finally:
        embedded_backend.drop(name)


def test_hypertables_and_chunk_intervals(db_url):
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT hypertable_name, time_interval FROM timescaledb_information.dimensions ORDER BY 1"
        ).fetchall()
    intervals = {name: interval.total_seconds() / 3600 for name, interval in rows}
    assert intervals == {
        "telemetry_rollup_1m": 24 * 7,
        "telemetry_sample": 1,
        "telemetry_state": 24 * 7,
        "telemetry_text_sample": 24,
    }


def test_bucket_function_follows_the_backend(any_db_url, backend):
    with psycopg.connect(any_db_url) as conn:
        body = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'telemetry_bucket'").fetchone()[0]
    assert ("time_bucket" in body) is backend.timescaledb
    assert ("date_bin" in body) is not backend.timescaledb


def test_migration_files_are_numbered_without_gaps():
    by_package = {}
    for m in discover():
        by_package.setdefault(m.package, []).append(m.version)
    for versions in by_package.values():
        assert versions == list(range(1, len(versions) + 1))
