"""A simulated printer serving its own broker as a Bambu Lab printer in LAN mode does, seen by a bare paho client
as a consumer would: TLS with the printer's own certificate pinned (CN = serial, no host name), user `bblp` and
the access code, nothing else accepted. The clock is driven by explicit ticks (speed 0)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from simulators.machine import Machine
from simulators.mqtt_printer import MqttPrinter, printer_profile
from simulators.printer_broker import LanPrinter, PrinterBroker
from tests.mqtt_listener import Listener

CODE = "31415926"
PUSHALL = json.dumps({"pushing": {"sequence_id": "0", "command": "pushall", "version": 1, "push_target": 1}})
_ids = itertools.count()


@dataclass
class Outcome:
    reason: str | None = None  # the CONNACK as paho names it; None when none came
    peer_cert: bytes | None = None  # DER, as the client saw it during the handshake
    lost: bool = False  # the connection closed before any CONNACK


def try_connect(
    port: int, context: ssl.SSLContext | None, username: str | None = None, password: str | None = None
) -> Outcome:
    """One connection attempt, without paho's retries: what a consumer learns from it. TLS errors raise."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-probe-{next(_ids)}")
    if context is not None:
        client.tls_set_context(context)
    if username is not None:
        client.username_pw_set(username, password)
    outcome = Outcome()

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        outcome.reason = str(reason)

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    if context is not None:
        outcome.peer_cert = client.socket().getpeercert(binary_form=True)
    deadline = time.monotonic() + 10  # a safety net against hanging, not a measurement
    while outcome.reason is None and time.monotonic() < deadline:
        if client.loop(0.1) != mqtt.MQTT_ERR_SUCCESS:
            outcome.lost = outcome.reason is None
            break
    if outcome.reason == "Success":
        client.disconnect()
    return outcome


def consumer(broker: PrinterBroker, context: ssl.SSLContext | None = None) -> Listener:
    """A subscriber on a printer's broker, as the gateway connects: pinned certificate, bblp + code."""
    return Listener(broker, broker.report_topic, tls=context or broker.client_ssl_context(), login=("bblp", CODE))


async def pushall(listener: Listener, broker: PrinterBroker) -> dict[str, Any]:
    listener.client.publish(broker.request_topic, PUSHALL, qos=1)
    return await listener.report()


async def pushall_until_answered(listener: Listener, broker: PrinterBroker, printer: MqttPrinter) -> dict[str, Any]:
    """After a restart the printer may be back on its broker after this consumer, so ask until it answers;
    then read on to the printer's latest report, as earlier questions may have been answered too."""
    while True:
        listener.client.publish(broker.request_topic, PUSHALL, qos=1)
        try:
            report = await listener.report(timeout=0.5)
            break
        except TimeoutError:
            continue
    while report["sequence_id"] != printer.state["sequence_id"]:
        report = await listener.report()
    return report


def lan_printer(serial: str, cert_dir: Path, **kw: Any) -> LanPrinter:
    kw.setdefault("speed", 0)
    return LanPrinter(serial, Machine(5, printer_profile()), access_code=CODE, cert_dir=cert_dir, **kw)


async def test_reports_and_pushall_reach_a_consumer_over_tls(tmp_path: Path) -> None:
    serial = "01P00A451200001"
    async with lan_printer(serial, tmp_path, mode="delta") as p:
        assert p.url == f"mqtts://127.0.0.1:{p.broker.port}" and p.broker.port > 0
        async with consumer(p.broker) as listener:
            full = await pushall(listener, p.broker)
            assert full["command"] == "push_status" and full["gcode_state"] == "IDLE"
            assert full == p.printer.state
            p.printer.machine.force("running", 7200)
            await p.printer.tick(60)
            delta = await listener.report()
            assert delta["gcode_state"] == "RUNNING" and delta["sequence_id"] == p.printer.state["sequence_id"]
            assert set(delta) < set(full)  # a P1-style delta, while pushall still answers with everything
            again = await pushall(listener, p.broker)
            assert set(again) == set(full) and again == p.printer.state


@pytest.mark.parametrize(
    ("username", "password"),
    [("bblp", "27182818"), ("bblp", CODE + "0"), ("bblp", ""), ("admin", CODE), ("", CODE), (None, None)],
    ids=["wrong-code", "longer-code", "no-code", "other-user", "no-user", "anonymous"],
)
async def test_anything_but_bblp_and_the_code_is_not_authorized(
    tmp_path: Path, username: str | None, password: str | None
) -> None:
    async with PrinterBroker("01S00C000000002", CODE, tmp_path) as broker:
        refused = await asyncio.to_thread(try_connect, broker.port, broker.client_ssl_context(), username, password)
        assert refused.reason == "Not authorized"
        accepted = await asyncio.to_thread(try_connect, broker.port, broker.client_ssl_context(), "bblp", CODE)
        assert accepted.reason == "Success"


async def test_the_certificate_names_the_serial_and_matches_the_fingerprint(tmp_path: Path) -> None:
    serial = "01S00C000000003"
    async with PrinterBroker(serial, CODE, tmp_path) as broker:
        seen = await asyncio.to_thread(try_connect, broker.port, broker.client_ssl_context(), "bblp", CODE)
        assert seen.reason == "Success" and seen.peer_cert is not None
        assert hashlib.sha256(seen.peer_cert).hexdigest() == broker.fingerprint
        assert len(broker.fingerprint) == 64 and broker.fingerprint == broker.fingerprint.lower()
        cert = x509.load_der_x509_certificate(seen.peer_cert)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == serial
        assert cert.issuer == cert.subject  # self-signed: no public CA vouches for a printer
        assert cert == x509.load_pem_x509_certificate(broker.cert_path.read_bytes())
        assert broker.key_path.stat().st_mode & 0o077 == 0

        # what makes consumers pin the certificate: neither the system's CAs nor a host name check accept it
        for context in (ssl.create_default_context(), ssl.create_default_context(cafile=broker.cert_path)):
            with pytest.raises(ssl.SSLCertVerificationError):
                await asyncio.to_thread(try_connect, broker.port, context, "bblp", CODE)
        # nor does another printer's certificate
        other = PrinterBroker("01S00C000000099", CODE, tmp_path)
        assert other.fingerprint != broker.fingerprint
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.to_thread(try_connect, broker.port, other.client_ssl_context(), "bblp", CODE)


async def test_a_plain_connection_gets_no_mqtt(tmp_path: Path) -> None:
    async with PrinterBroker("01S00C000000004", CODE, tmp_path) as broker:
        plain = await asyncio.to_thread(try_connect, broker.port, None, "bblp", CODE)
        assert plain.reason is None and plain.lost


async def test_a_restarted_printer_keeps_its_certificate_and_address(tmp_path: Path) -> None:
    serial = "01P00A451200005"
    async with lan_printer(serial, tmp_path) as p:
        pinned = p.broker.client_ssl_context()  # what a consumer configured once
        url, fingerprint, pem = p.url, p.broker.fingerprint, p.broker.cert_path.read_bytes()
        async with consumer(p.broker, pinned) as listener:
            await pushall_until_answered(listener, p.broker, p.printer)
            await p.broker.stop()  # the printer reboots: every connection drops
            await p.broker.start()
            assert p.url == url and p.broker.fingerprint == fingerprint
            assert p.broker.cert_path.read_bytes() == pem
            # both the printer and the consumer came back on their own
            report = await pushall_until_answered(listener, p.broker, p.printer)
            assert report == p.printer.state

    again = PrinterBroker(serial, CODE, tmp_path)  # the same printer, another process
    assert again.fingerprint == fingerprint
    elsewhere = PrinterBroker(serial, CODE, tmp_path / "other")  # a new printer with the same serial is not it
    assert elsewhere.fingerprint != fingerprint
