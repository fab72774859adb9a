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
