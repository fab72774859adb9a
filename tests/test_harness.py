"""The harness itself: TimescaleDB really is active, the embedded backend really is plain, and the
broker really carries messages."""

import threading

import paho.mqtt.client as mqtt
import psycopg


def test_timescaledb_backend_has_the_extension(db_url):
    with psycopg.connect(db_url) as conn:
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        license = conn.execute("SHOW timescaledb.license").fetchone()
    assert version is not None
    assert license[0] == "apache"


def test_embedded_backend_is_plain_postgresql(embedded_backend):
    name, url = embedded_backend.create()
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone()[0] == 0
            assert conn.info.server_version >= 180000
    finally:
        embedded_backend.drop(name)


def test_mosquitto_delivers(mosquitto):
    received = threading.Event()
    payloads = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="harness-sub")
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_message = lambda c, u, m: (payloads.append(m.payload), received.set())
    sub.connect("127.0.0.1", mosquitto.port)
    sub.subscribe("harness/#", qos=1)
    sub.loop_start()
    try:
        assert subscribed.wait(10)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="harness-pub")
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        pub.publish("harness/x", b"hello", qos=1).wait_for_publish(10)
        pub.loop_stop()
        assert received.wait(10)
        assert payloads == [b"hello"]
    finally:
        sub.loop_stop()


def test_no_fabhub_variable_reaches_the_tests():
    """Whatever the developer's shell holds: tests/conftest.py takes FABHUB_* out for the run."""
    import os

    from fabhub.settings import Settings

    assert not [name for name in os.environ if name.startswith("FABHUB_")]
    settings = Settings()
    assert (settings.timezone, settings.database_url, settings.port) == ("Asia/Shanghai", None, 8000)


def test_a_hostile_environment_changes_nothing(tmp_path):
    """The test above, run by a pytest whose environment names a time zone on Mars and a database nowhere."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "FABHUB_TIMEZONE": "Mars/Olympus",
        "FABHUB_DATABASE_URL": "postgresql://127.0.0.1:1/nowhere",
        "FABHUB_PORT": "1",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'inner'}",
            f"{__file__}::test_no_fabhub_variable_reaches_the_tests",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
