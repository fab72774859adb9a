"""`fabhub jobs`: list the scheduled jobs, run one now on the configured database (migrated with its
catalogue, else refused), skip it while another process holds its lock. Plain (not async) tests: the command runs its own event loop."""

import json
import uuid

import psycopg
import pytest
from typer.testing import CliRunner

from fabhub.cli import app
from tests.http import REPO

runner = CliRunner()
DEVICES = str(REPO / "devices.yaml")


@pytest.fixture
def env(db_url):
    env = {"FABHUB_DATABASE_URL": db_url, "FABHUB_DEVICES": DEVICES}
    synced = runner.invoke(app, ["catalogue", "sync"], env=env)
    assert synced.exit_code == 0, synced.output
    return env


@pytest.fixture
def empty_db_url(timescale_backend):
    """A database no FabHub process has migrated yet."""
    name = f"empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(timescale_backend.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield timescale_backend.url(name)
    timescale_backend.drop(name)


def test_list_shows_each_job_with_its_interval_and_description():
    result = runner.invoke(app, ["jobs", "list"], env={"FABHUB_DEVICES": DEVICES})
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header == "name\tevery\tdescription"
    rows = [line.split("\t") for line in lines]
    assert all(len(row) == 3 and row[2] for row in rows), rows
    names = [row[0] for row in rows]
    assert names == sorted(set(names))
    assert ["telemetry-rollup", "1m", "one-minute rollups of numeric samples"] in rows
    assert ["oee-summary", "1h", "per-device daily OEE summary of past days"] in rows
    assert {"booking-lifecycle", "telemetry-retention", "login-expiry"} <= set(names)


def test_run_needs_a_migrated_database_and_prints_the_result(empty_db_url):
    env = {"FABHUB_DATABASE_URL": empty_db_url, "FABHUB_DEVICES": DEVICES}
    refused = runner.invoke(app, ["jobs", "run", "oee-summary"], env=env)
    assert refused.exit_code == 2 and "run `fabhub migrate`" in refused.output, refused.output
    migrated = runner.invoke(app, ["migrate"], env=env)
    assert migrated.exit_code == 0 and "catalogue: device cnc-01 added" in migrated.output, migrated.output
    result = runner.invoke(app, ["jobs", "run", "oee-summary"], env=env)
    assert result.exit_code == 0, result.output
    days = json.loads(result.stdout)  # the days it summarized: the last 31 past days
    assert len(days) == 31 and days == sorted(days)
    with psycopg.connect(empty_db_url) as conn:
        (rows,) = conn.execute("SELECT count(*) FROM oee_daily WHERE day = %s", (days[-1],)).fetchone()
        (devices,) = conn.execute("SELECT count(*) FROM device WHERE retired_at IS NULL").fetchone()
    assert rows == devices > 0  # the catalogue was synced, so every device has its row


def test_run_is_skipped_while_another_process_holds_the_job(env, db_url):
    with psycopg.connect(db_url) as other, other.transaction():
        other.execute("SELECT pg_advisory_xact_lock(hashtext('fabhub.job'), hashtext('telemetry-rollup'))")
        result = runner.invoke(app, ["jobs", "run", "telemetry-rollup"], env=env)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == "skipped: another process holds it"
    result = runner.invoke(app, ["jobs", "run", "telemetry-rollup"], env=env)
    assert result.exit_code == 0, result.output
    assert "watermark" in json.loads(result.stdout)


def test_an_unknown_job_lists_the_names(env):
    result = runner.invoke(app, ["jobs", "run", "coffee"], env=env)
    assert result.exit_code == 2
    assert "no job 'coffee'" in result.output
    assert "oee-summary" in result.output and "telemetry-rollup" in result.output


def test_a_failing_job_exits_1_with_the_reason(env, monkeypatch):
    from datetime import timedelta

    from fabhub import cli
    from fabhub.jobs import Job

    async def boom(conn, now):
        raise RuntimeError("the printer caught fire")

    monkeypatch.setattr(
        cli, "_job_list", lambda settings, devices, pool=None: [Job("boom", timedelta(hours=1), boom, "fails")]
    )
    result = runner.invoke(app, ["jobs", "run", "boom"], env=env)
    assert result.exit_code == 1
    assert "job boom failed" in result.output and "the printer caught fire" in result.output


def test_an_unreachable_database_exits_1():
    env = {"FABHUB_DATABASE_URL": "postgresql://127.0.0.1:1/nowhere", "FABHUB_DEVICES": DEVICES}
    result = runner.invoke(app, ["jobs", "run", "telemetry-rollup"], env=env)
    assert result.exit_code == 1
