"""The gateway's sink when it publishes to the central broker instead of writing to the database: the
same interface as the BatchWriter, and the same buffering and spooling (telemetry.batcher), so `Gateway`
does not know.

A batch counts as delivered when the broker has acknowledged every message of it (QoS 1). While the
broker is away, or a batch is not acknowledged in time, batches go to the disk spool and are replayed in
order when it returns; a batch both spooled and later retransmitted by paho's session reaches the ingest
workers twice, which store it once (see gateway.wire).

HealthPublisher sends the gateway's health rounds through the same connection, beside the batches."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt

from gateway import wire
from gateway.central import CentralLink, on_loop
from gateway.coordinator import DeviceStatus
from gateway.health import GatewayFigures, HealthReport
from gateway.spool import Item, Spool
from telemetry.batcher import Batcher

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PublishStats:
    submitted: int = 0
    written: int = 0  # items the broker acknowledged (the gateway's "written")
    messages: int = 0
    retries: int = 0


class Publisher(Batcher):
    destination = "central broker"
    transient = (ConnectionError, TimeoutError)
    stats: PublishStats

    def __init__(
        self,
        link: CentralLink,
        site: str,
        spool: Spool,
        *,
        batch_size: int = 5000,
        max_age: float = 0.2,
        capacity: int = 200_000,
        ack_timeout: float = 10.0,
        max_inflight: int = 1000,
    ) -> None:
        super().__init__(batch_size=batch_size, max_age=max_age, capacity=capacity, overflow=spool)
        self.link = link
        self.site = wire.site_of(site)
        self.ack_timeout = ack_timeout
        self._spool = spool
        self._max_inflight = max_inflight
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._waiting: dict[int, asyncio.Future[None] | None] = {}  # None: a message nobody waits for
        self._early: set[int] = set()  # acknowledged before publish() returned its mid
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats = PublishStats()

    async def start(self) -> None:
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        client = self.link.client()
        client.max_inflight_messages_set(self._max_inflight)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client
        self.link.connect(client, receive_maximum=self._max_inflight)
        await super().start()

    async def close(self, grace: float = 30.0) -> list[Item]:
        """Publish what is queued (within `grace`); the rest goes to the spool, for the next start."""
        left = await super().close(grace)
        if self._client is not None:
            self._client.disconnect()
            await asyncio.to_thread(self._client.loop_stop)
            self._client = None
        return left

    async def deliver(self, batch: list[Item]) -> None:
        """Publish and wait for the broker's acknowledgement of every message; raises when it cannot."""
        client = self._client
        if client is None or not self.connected.is_set():
            raise ConnectionError(f"not connected to {self.link.host}:{self.link.port}")
        messages = wire.encode(self.site, batch)
        waits = [self._publish(client, where, payload) for where, payload in messages]
        await asyncio.wait_for(asyncio.gather(*waits), self.ack_timeout)
        self.stats.messages += len(messages)
        self.stats.written += len(batch)

    def _publish(self, client: mqtt.Client, where: str, payload: bytes) -> asyncio.Future[None]:
        assert self._loop is not None
        done: asyncio.Future[None] = self._loop.create_future()
        self._send(client, where, payload, done)
        return done

    def publish_unawaited(self, where: str, payload: bytes) -> None:
        """One QoS 1 message outside the batches (a health round): neither spooled nor waited for, and
        queued behind nothing of the spool, so it never holds up samples. ConnectionError while the broker
        is away, so that rounds nobody needs do not pile up in paho's queue meanwhile."""
        client = self._client
        if client is None or not self.connected.is_set():
            raise ConnectionError(f"not connected to {self.link.host}:{self.link.port}")
        self._send(client, where, payload, None)

    def _send(self, client: mqtt.Client, where: str, payload: bytes, done: asyncio.Future[None] | None) -> None:
        info = client.publish(where, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"publish refused: {mqtt.error_string(info.rc)}")
        with self._lock:
            if info.mid not in self._early:
                self._waiting[info.mid] = done
                return
            self._early.discard(info.mid)
        if done is not None:
            done.set_result(None)

    # paho's thread ----------------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("central broker %s:%d refused the connection: %s", self.link.host, self.link.port, reason)
            return
        log.info("publishing to %s:%d (session present: %s)", self.link.host, self.link.port, flags.session_present)
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        if reason.is_failure:
            log.warning("central broker %s:%d went away: %s", self.link.host, self.link.port, reason)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            if mid not in self._waiting:
                self._early.add(mid)
                return
            done = self._waiting.pop(mid)
        if done is not None and self._loop is not None:
            on_loop(self._loop, lambda: _settle(done, reason))


def _settle(done: asyncio.Future[None], reason: Any) -> None:
    if done.done():  # given up on (ack timeout): the batch went to the spool
        return
    if reason.is_failure:
        done.set_exception(ConnectionError(f"the broker refused a message: {reason}"))
    else:
        done.set_result(None)


class HealthPublisher:
    """The HealthSink of a gateway that publishes: each round one message on `fabhub/v1/<site>/health`
    through the Publisher's connection, for ingest workers to write to the health table. Only the latest
    round matters, so a round is not spooled and not waited for: one lost with the connection is followed by
    the next within `every` seconds, and while the broker is away `report` raises ConnectionError (the
    gateway logs it once) and the site's devices read unknown centrally, as they should."""

    def __init__(self, publisher: Publisher, *, every: float = 5.0) -> None:
        self.publisher = publisher
        self.every = every

    async def report(
        self,
        gateway_id: str,
        site: str | None,
        now: datetime,
        statuses: Sequence[DeviceStatus],
        figures: GatewayFigures,
    ) -> None:
        """`site`: the publisher's, whatever is given, as its topic is what the broker's access control and
        the workers go by."""
        report = HealthReport(gateway_id, self.publisher.site, now, statuses, figures)
        self.publisher.publish_unawaited(*wire.encode_health(self.publisher.site, report))
