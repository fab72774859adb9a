"""What lets several FabHub processes share one installation: production commands refuse to start on embedded
defaults, the catalogue has one writer and every reader refuses a devices file that disagrees with it, a
gateway reads only its site's devices, and statements cannot run away. Plain (not async) tests: the commands
run their own event loops."""

import asyncio
from pathlib import Path

import psycopg
import pytest
import yaml
from typer.testing import CliRunner

from fabhub.cli import app
from fabhub.database import make_pool
from fabhub.devices import load_devices
from fabhub.gateway_setup import gateway_devices
from fabhub.settings import Settings
from tests.http import REPO, SECRET, SHIPPED_SECRETS

runner = CliRunner()
SHIPPED = yaml.safe_load((REPO / "devices.yaml").read_text(encoding="utf-8"))
UNSET = {
    **SHIPPED_SECRETS,
    "FABHUB_DATABASE_URL": None,
    "FABHUB_SECRET_KEY": None,
    "FABHUB_MQTT_URL": None,
    "FABHUB_EMBEDDED": None,
}
NORTH = ("printer-01", "printer-02")


def _file(tmp_path, name: str, document: dict) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return str(path)


def _two_sites() -> dict:
    """The shipped center with two of its printers at a second site, "north"."""
    document = yaml.safe_load((REPO / "devices.yaml").read_text(encoding="utf-8"))
    for device in document["devices"]:
        if device["id"] in NORTH:
            device["site"] = "north"
    return document


@pytest.fixture
def env(db_url, tmp_path):
    """A migrated database with the two-site file's catalogue, and the settings every process shares."""
    env = {
        **UNSET,
        "FABHUB_DATABASE_URL": db_url,
        "FABHUB_SECRET_KEY": SECRET,
        "FABHUB_DEVICES": _file(tmp_path, "devices.yaml", _two_sites()),
        "FABHUB_DATA_DIR": str(tmp_path / "data"),
    }
    synced = runner.invoke(app, ["catalogue", "sync"], env=env)
    assert synced.exit_code == 0, synced.output
    return env


@pytest.mark.parametrize("command", [["serve"], ["serve", "--no-gateway"], ["gateway", "--site", "north"]])
def test_production_commands_refuse_to_start_on_embedded_defaults(tmp_path, command):
    env = {**UNSET, "FABHUB_DEVICES": str(REPO / "devices.yaml"), "FABHUB_DATA_DIR": str(tmp_path)}
    result = runner.invoke(app, command, env=env)
    assert result.exit_code == 2, result.output
    assert "FABHUB_DATABASE_URL is not set" in result.output
    assert "FABHUB_SECRET_KEY is not set" in result.output
    assert "--embedded" in result.output
    assert list(tmp_path.iterdir()) == []  # no embedded server started, no key generated


def test_an_empty_setting_counts_as_unset(tmp_path, db_url):
    env = {**UNSET, "FABHUB_DATABASE_URL": db_url, "FABHUB_SECRET_KEY": "", "FABHUB_DATA_DIR": str(tmp_path)}
    result = runner.invoke(app, ["serve", "--no-gateway"], env={**env, "FABHUB_DEVICES": str(REPO / "devices.yaml")})
    assert result.exit_code == 2, result.output
    assert "FABHUB_SECRET_KEY is not set" in result.output
    assert "FABHUB_DATABASE_URL" not in result.output


def test_a_file_that_disagrees_with_the_catalogue_is_refused_naming_the_difference(env, tmp_path):
    changed = _two_sites()
    changed["classes"]["cnc"]["hourly_rate"] = "200.00"
    changed["devices"] = [d for d in changed["devices"] if "robot-02" not in (d["id"], d.get("meters"))]
    other = {**env, "FABHUB_DEVICES": _file(tmp_path, "other.yaml", changed)}
    check = runner.invoke(app, ["catalogue", "check"], env=other)
    assert check.exit_code == 2, check.output
    assert "device_class cnc: hourly_rate 180.00 in the database, 200.00 in devices.yaml" in check.output
    assert "device robot-02: in the database, not in devices.yaml" in check.output
    assert str(tmp_path / "other.yaml") in check.output
    served = runner.invoke(app, ["serve", "--no-gateway"], env=other)
    assert served.exit_code == 2, served.output
    assert "device_class cnc: hourly_rate" in served.output
    # the one writer brings the database in line; readers then agree
    synced = runner.invoke(app, ["catalogue", "sync"], env=other)
    assert synced.exit_code == 0, synced.output
    assert "device robot-02 retired (left devices.yaml)" in synced.output
    assert "device_class cnc updated" in synced.output
    assert runner.invoke(app, ["catalogue", "check"], env=other).exit_code == 0
    assert runner.invoke(app, ["catalogue", "check"], env=env).exit_code == 2


def test_a_site_file_is_checked_for_its_own_devices_only(env, tmp_path):
    north = _two_sites()
    north["devices"] = [d for d in north["devices"] if d["id"] in NORTH]
    north["subsidy_programs"] = {}
    site_env = {**env, "FABHUB_DEVICES": _file(tmp_path, "north.yaml", north), "FABHUB_SITE": "north"}
    assert runner.invoke(app, ["catalogue", "check"], env=site_env).exit_code == 0
    whole = runner.invoke(app, ["catalogue", "check"], env={**site_env, "FABHUB_SITE": None})
    assert whole.exit_code == 2 and "device cnc-01: in the database, not in devices.yaml" in whole.output
    north["classes"]["printer"]["hourly_rate"] = "31.00"
    site_env["FABHUB_DEVICES"] = _file(tmp_path, "north.yaml", north)
    wrong = runner.invoke(app, ["catalogue", "check"], env=site_env)
    assert wrong.exit_code == 2 and "device_class printer: hourly_rate 30.00" in wrong.output


def test_a_site_gateway_reads_its_own_devices(env, tmp_path):
    devices = load_devices(Path(env["FABHUB_DEVICES"]), SHIPPED_SECRETS)
    assert devices.sites == ["main", "north"]
    served = gateway_devices(devices, SHIPPED_SECRETS, site="north")
    assert sorted(d.id for d in served) == sorted(NORTH)
    everyone = gateway_devices(devices, SHIPPED_SECRETS)
    assert len(everyone) == len([d for d in devices.devices if not d.retired]) > len(served)
    unknown = runner.invoke(app, ["gateway", "--site", "south"], env=env)
    assert unknown.exit_code == 2, unknown.output
    assert "no device has site 'south'" in unknown.output and "main, north" in unknown.output
    bad = runner.invoke(app, ["gateway", "--site", "North/1"], env=env)
    assert bad.exit_code == 2 and "site" in bad.output.lower(), bad.output


def test_a_statement_that_runs_away_is_cancelled(db_url):
    async def run() -> str:
        pool = make_pool(db_url, Settings(statement_timeout_s=0.2))
        await pool.open(wait=True)
        try:
            async with pool.connection() as conn:
                (shown,) = await (await conn.execute("SHOW statement_timeout")).fetchone()
                with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
                    await conn.execute("SELECT pg_sleep(5)")
            return shown
        finally:
            await pool.close()

    assert asyncio.run(run()) == "200ms"
