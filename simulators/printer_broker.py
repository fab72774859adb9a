"""A Bambu Lab printer in LAN mode is itself the MQTT broker: `mqtts://<printer-ip>:8883`, user `bblp`, the LAN
access code as password, and a certificate of its own (CN = the serial, signed by no public CA, naming no host).
`PrinterBroker` serves that in this process with amqtt, so consumers are tested against what they meet on a real
printer (pinned certificate, refused credentials) without a Mosquitto installed; `LanPrinter` puts an
`MqttPrinter` on it.

A printer keeps its certificate for life, so the key and certificate are kept in a directory, named by serial
(one directory serves many printers), and reused: a consumer that pinned the fingerprint still trusts the printer
after it restarts.
"""

from __future__ import annotations

import datetime as dt
import hmac
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from simulators.machine import Machine
from simulators.mqtt_printer import MqttPrinter

USERNAME = "bblp"  # the only user a printer in LAN mode knows
CERT_DAYS = 3650


class AccessCodeAuth(BaseAuthPlugin):
    """What a printer accepts: `bblp` with its access code, nobody else and never anonymous. Refusing here makes
    amqtt answer CONNACK 5 (not authorized), as the printer does."""

    @dataclass
    class Config:
        access_code: str

    async def authenticate(self, *, session: Session) -> bool:
        password = (session.password or "").encode()
        # compare_digest: the code is the printer's only secret, so do not leak it through timing
        same = hmac.compare_digest(password, self.config.access_code.encode())
        return session.username == USERNAME and same


def _load_or_make_cert(serial: str, cert_dir: Path) -> tuple[Path, Path, x509.Certificate]:
    cert_path, key_path = cert_dir / f"{serial}.crt", cert_dir / f"{serial}.key"
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not cn or cn[0].value != serial:
            raise ValueError(f"{cert_path} is not the certificate of {serial}")
        return cert_path, key_path, cert
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))  # a consumer's clock a little behind still accepts it
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .sign(key, hashes.SHA256())
    )
    cert_dir.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # a private key readable by its owner only
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, cert


class PrinterBroker:
    """The broker one printer serves: one TLS listener, `bblp` + access code only.

    The port is chosen on the first start (0 means a free one) and kept across restarts, as a printer keeps its
    address, so a consumer that lost it can reconnect to the same URL.

    amqtt 0.12.1 drops the session of a client id as soon as another CONNECT with that id arrives, before it
    checks the credentials: a refused client using the simulated printer's id (`fabhub-sim-<serial>`) silently
    cuts the printer off its own broker. Consumers must use ids of their own, as they should anyway."""

    def __init__(
        self, serial: str, access_code: str, cert_dir: str | Path, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        if not access_code:
            raise ValueError("a printer in LAN mode always has an access code")
        self.serial = serial
        self.access_code = access_code
        self.cert_dir = Path(cert_dir)
        self.host = host
        self.port = port
        self.report_topic = f"device/{serial}/report"
        self.request_topic = f"device/{serial}/request"
        self.cert_path, self.key_path, cert = _load_or_make_cert(serial, self.cert_dir)
        self.fingerprint = cert.fingerprint(hashes.SHA256()).hex()
        self._broker: Broker | None = None

    @property
    def url(self) -> str:
        return f"mqtts://{self.host}:{self.port}"

    def client_ssl_context(self) -> ssl.SSLContext:
        """Trust exactly this printer's certificate. No host name check: the certificate names the serial, not
        the address, which is how consumers of real printers have to connect too."""
        context = ssl.create_default_context(cafile=self.cert_path)
        context.check_hostname = False
        return context

    async def start(self) -> None:
        config: dict[str, Any] = {
            "listeners": {
                # amqtt requires a listener called "default"; it is the only one, so nothing listens in clear
                "default": {
                    "type": "tcp",
                    "bind": f"{self.host}:{self.port}",
                    "ssl": True,
                    "certfile": str(self.cert_path),
                    "keyfile": str(self.key_path),
                }
            },
            # only this plugin: amqtt's defaults would add anonymous access and $SYS topics
            "plugins": {f"{__name__}.{AccessCodeAuth.__qualname__}": {"access_code": self.access_code}},
        }
        broker = Broker(config)
        await broker.start()
        self._broker = broker
        if self.port == 0:
            # amqtt does not say which port it got for port 0, and picking a free port beforehand races with other
            # processes; so read it off the listening socket
            self.port = broker._servers["default"].instance.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._broker is not None:
            broker, self._broker = self._broker, None
            await broker.shutdown()

    async def __aenter__(self) -> PrinterBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class LanPrinter:
    """A printer as a consumer meets it in LAN mode: its own broker, with the simulated printer publishing through
    it over TLS as `bblp`. `printer` and `broker` are there from construction, so a test can drive the machine or
    inject faults before or after start().

    Many at once, e.g. for the demo or a benchmark::

        async with contextlib.AsyncExitStack() as stack:
            printers = [
                await stack.enter_async_context(LanPrinter(serial, Machine(n), access_code=code, cert_dir=d))
                for n, serial in enumerate(serials)
            ]
            urls = [p.broker.url for p in printers]
    """

    def __init__(
        self,
        serial: str,
        machine: Machine,
        *,
        access_code: str,
        cert_dir: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        **printer_kw: Any,
    ) -> None:
        """`printer_kw` goes to MqttPrinter (mode, speed, stringly, seed, report_interval_s)."""
        self.broker = PrinterBroker(serial, access_code, cert_dir, host=host, port=port)
        self.printer = MqttPrinter(
            serial,
            host,
            port,  # replaced by the broker's own once it listens
            machine,
            tls=self.broker.client_ssl_context(),
            username=USERNAME,
            password=access_code,
            **printer_kw,
        )

    @property
    def serial(self) -> str:
        return self.broker.serial

    @property
    def url(self) -> str:
        return self.broker.url

    async def start(self) -> None:
        await self.broker.start()
        self.printer.broker_port = self.broker.port
        try:
            await self.printer.start()
        except BaseException:
            await self.broker.stop()
            raise

    async def stop(self) -> None:
        try:
            await self.printer.stop()
        finally:
            await self.broker.stop()

    async def __aenter__(self) -> LanPrinter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
