"""A bare paho subscriber for the tests: what a consumer of the simulated printers' broker receives."""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl
from typing import Any, Protocol

import paho.mqtt.client as mqtt

from simulators.mqtt_printer import MqttPrinter

_ids = itertools.count()


class Broker(Protocol):
    port: int


class Listener:
    """A bare paho subscriber handing what arrives to the event loop."""

    def __init__(
        self, broker: Broker, *topics: str, tls: ssl.SSLContext | None = None, login: tuple[str, str] | None = None
    ) -> None:
        """`tls` and `login` for a printer's own broker (pinned certificate, bblp and the access code)."""
        self.broker = broker
        self.topics = topics
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.subscribed = asyncio.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-listener-{next(_ids)}")
        if tls is not None:
            self.client.tls_set_context(tls)
        if login is not None:
            self.client.username_pw_set(*login)

    async def __aenter__(self) -> Listener:
        loop = asyncio.get_running_loop()
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in self.topics])
        self.client.on_subscribe = lambda *_: loop.call_soon_threadsafe(self.subscribed.set)
        self.client.on_message = lambda _c, _u, m: loop.call_soon_threadsafe(
            self.queue.put_nowait, (m.topic, m.payload)
        )
        self.client.reconnect_delay_set(1, 2)
        self.client.connect_async("127.0.0.1", self.broker.port)
        self.client.loop_start()
        await asyncio.wait_for(self.subscribed.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    async def message(self, timeout: float = 10) -> tuple[str, bytes]:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def report(self, timeout: float = 10) -> dict[str, Any]:
        topic, payload = await self.message(timeout)
        assert topic.endswith("/report")
        return json.loads(payload)["print"]

    async def reports_until(self, printer: MqttPrinter) -> list[dict[str, Any]]:
        """Every report up to the printer's latest, which a tick may precede with reports of changes."""
        reports = [await self.report()]
        while reports[-1]["sequence_id"] != printer.state["sequence_id"]:
            reports.append(await self.report())
        return reports
