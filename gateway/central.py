"""The connection to the central broker that site gateways publish to and ingest workers read from: MQTT 5
with a persistent session (clean_start False, a session expiry), so QoS 1 messages in flight when either
side goes away are delivered when it comes back. Credentials come from the environment or the URL's
userinfo; `mqtts://` verifies the broker against the system's CAs or a given CA file."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

DEFAULT_SESSION_EXPIRY_S = 24 * 3600  # a day: a worker or gateway down longer has been replaced


@dataclass(frozen=True)
class CentralLink:
    host: str
    port: int
    path: str
    client_id: str
    tls: bool = False
    ca_file: Path | None = None
    username: str | None = None
    password: str | None = None
    session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S

    @classmethod
    def from_url(
        cls,
        url: str,
        client_id: str,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
    ) -> CentralLink:
        """Explicit credentials (from the environment) win over the URL's userinfo."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"a central broker URL is mqtt:// or mqtts://, not {parts.scheme or url!r}")
        tls = parts.scheme == "mqtts"
        return cls(
            parts.hostname or "127.0.0.1",
            parts.port or (8883 if tls else 1883),
            parts.path,
            client_id,
            tls,
            ca_file,
            username or (unquote(parts.username) if parts.username else None),
            password or (unquote(parts.password) if parts.password else None),
        )

    def client(self, *, manual_ack: bool = False) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=manual_ack,
        )
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            client.tls_set_context(ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None))
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        return client

    def connect(self, client: mqtt.Client, receive_maximum: int) -> None:
        """Connect in the background (paho reconnects by itself) to the persistent session."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho leaves it unannotated
        props.SessionExpiryInterval = self.session_expiry_s
        props.ReceiveMaximum = receive_maximum
        client.connect_async(self.host, self.port, keepalive=30, clean_start=False, properties=props)
        client.loop_start()


def on_loop(loop: Any, fn: Callable[[], Any]) -> None:
    """Run `fn` on the asyncio loop from paho's thread, unless the loop is gone."""
    if not loop.is_closed():
        loop.call_soon_threadsafe(fn)
