"""An ingest worker: takes the site gateways' messages from the central broker and writes them to the
database. Any number run side by side as members of one MQTT 5 shared subscription, so the broker deals
each message to one of them.

A message is acknowledged only after the transaction holding it committed (paho's manual_ack): a worker
killed at any instant leaves its unacknowledged messages with the broker, which delivers them again when
its session comes back (a restart with the same client id) or to another member. A redelivered message
stores nothing twice (gateway.wire). Several messages go into one transaction, bounded in items and age,
and are acknowledged together after it.

Two transactions are in flight at a time, as in the gateway's BatchWriter: while one is being committed,
the next batch is gathered and copied, so neither this process nor the database waits for the other
(one at a time ran at about half the single-process rate in bench/scale.py). Acknowledgements still go
out in the order the messages came, as MQTT asks of a receiver.

A worker that stops keeps its session, and Mosquitto goes on dealing it a share of the messages while it
is away: they wait for its restart under the same client id. Retiring a worker for good is therefore a
step of its own (`leave`): it leaves the shared subscription, stores what its session still holds, and
ends the session.

Given where health goes, a worker also takes the publishing gateways' health rounds (a second shared
subscription, `fabhub/v1/+/health`) and writes each to the health table after the samples of its batch,
acknowledging it after that, in order with the rest. A malformed round is quarantined with its reason like a
malformed samples message; a round the database refuses is logged and acknowledged: neither stops the
worker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from tenacity import AsyncRetrying, retry_if_exception_type, wait_random_exponential

from gateway import wire
from gateway.central import CentralLink, on_loop
from gateway.health import HealthReport, HealthSink
from gateway.spool import Item
from telemetry.model import Rejected

log = logging.getLogger(__name__)
GROUP = "fabhub-ingest"


@dataclass(slots=True)
class IngestStats:
    messages: int = 0
    items: int = 0
    batches: int = 0
    health: int = 0  # health rounds written
    health_refused: int = 0  # by the database: logged and acknowledged


@dataclass(frozen=True, slots=True)
class Arrival:
    """A message as paho's thread hands it over, still encoded."""

    session: int  # which connection it came on: an acknowledgement is only valid on that one
    mid: int
    qos: int
    topic: str
    payload: bytes | bytearray


@dataclass(frozen=True, slots=True)
class Received:
    session: int
    mid: int
    qos: int
    items: list[Item]
    health: HealthReport | None = None


@dataclass(slots=True)
class Taken:
    """A batch of messages on its way to the database; acknowledged when it and every earlier one committed."""

    messages: list[Received]
    committed: bool = False


class IngestWorker:
    def __init__(
        self,
        link: CentralLink,
        write: Callable[[list[Item]], Awaitable[Any]],
        *,
        health: HealthSink | None = None,
        group: str = GROUP,
        batch_size: int = 5000,
        max_age: float = 0.2,
        receive_maximum: int = 100,
        concurrency: int = 2,
    ) -> None:
        """`write` returns once the items are committed, waiting out a database that is away (the
        BatchWriter's deliver_retrying). `health`: where the gateways' health rounds go (the HealthTable); a
        database away is waited out here. Without it, the worker takes no health rounds.
        `receive_maximum`: messages the broker may hand over unacknowledged; with up to wire.MAX_ITEMS items
        each, it bounds this process's memory."""
        self.link = link
        self.subscription = f"$share/{group}/{wire.SUBSCRIPTION}"
        self.subscriptions = [self.subscription]
        if health is not None:
            self.subscriptions.append(f"$share/{group}/{wire.HEALTH_SUBSCRIPTION}")
        self._health = health
        self.batch_size = batch_size
        self.max_age = max_age
        self.receive_maximum = receive_maximum
        self.concurrency = concurrency
        self._write = write
        self._inbox: deque[Received] = deque()
        self._unacked: deque[Taken] = deque()
        self._gathering = asyncio.Lock()  # one loop gathers the next batch while the other commits
        self._arrivals: deque[Arrival] = deque()  # appended by paho's thread, taken by the event loop
        self._items_waiting = 0
        self._session = 0
        self._arrived = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.unsubscribed = asyncio.Event()
        self._leaving = False
        self._end_session = False
        self._last_arrival = 0.0  # time.monotonic() of the latest message
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self.stats = IngestStats()

    async def run(self) -> None:
        """Until cancelled; what was taken but not committed then is not acknowledged (redelivered)."""
        self._loop = asyncio.get_running_loop()
        client = self.link.client(manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        self._client = client
        self.link.connect(client, receive_maximum=self.receive_maximum)
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.concurrency):
                    group.create_task(self._work())
        finally:
            if self._end_session:
                props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]  # paho leaves it unannotated
                props.SessionExpiryInterval = 0
                client.disconnect(properties=props)
            else:
                client.disconnect()
            await asyncio.to_thread(client.loop_stop)
            self._client = None

    async def leave(self, quiet: float = 2.0) -> None:
        """Retire this worker (this client id) for good: leave the shared subscription, store and
        acknowledge what the broker still holds for the session until nothing came for `quiet` seconds,
        then end the session. Cancelled before that, the session stays, with what it holds."""
        self._leaving = True
        task = asyncio.create_task(self.run())
        try:
            await self.unsubscribed.wait()
            while True:  # polled: the broker says nothing when a session has no more to deliver
                still = quiet - (time.monotonic() - self._last_arrival)
                if still <= 0 and not self._arrivals and not self._inbox and not self._unacked:
                    break
                await asyncio.sleep(max(still, quiet / 10))
            self._end_session = True
            log.info("left %s: its session held no more messages", self.subscriptions)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            async with self._gathering:
                await self._gather()
                batch = self._take()
            if batch is not None:
                await self._commit(batch)

    async def _gather(self) -> None:
        """Until a batch is full or its first message is `max_age` old."""
        await self._arrived.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_age
        self._receive()
        while self._items_waiting < self.batch_size and len(self._inbox) < self.receive_maximum:
            left = deadline - loop.time()
            if left <= 0:
                break
            self._arrived.clear()
            if not self._arrivals:
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except TimeoutError:
                    break
            self._receive()

    def _receive(self) -> None:
        """Decode what arrived, here on the event loop: decoded in paho's thread, the two threads took turns
        at the GIL, and each of the loop's socket waits for the database cost it a switch interval (5 ms),
        which made a worker's transactions three times as long."""
        while self._arrivals:
            arrival = self._arrivals.popleft()
            health = None
            if wire.is_health(arrival.topic):
                decoded = wire.decode_health(arrival.topic, arrival.payload)
                if isinstance(decoded, Rejected):
                    log.warning("health round quarantined: %s", decoded.reason)
                    items: list[Item] = [decoded]
                else:
                    items, health = [], decoded
            else:
                items = wire.decode(arrival.topic, arrival.payload)
            self._inbox.append(Received(arrival.session, arrival.mid, arrival.qos, items, health))
            self._items_waiting += len(items)

    def _take(self) -> Taken | None:
        self._receive()
        taken: list[Received] = []
        items = 0
        while self._inbox and (not taken or items + len(self._inbox[0].items) <= self.batch_size):
            message = self._inbox.popleft()
            taken.append(message)
            items += len(message.items)
        self._items_waiting -= items
        if not self._inbox and not self._arrivals:
            self._arrived.clear()
        if not taken:
            return None
        self._unacked.append(Taken(taken))
        return self._unacked[-1]

    async def _commit(self, batch: Taken) -> None:
        items = [item for message in batch.messages for item in message.items]
        if items:
            await self._write(items)
        for message in batch.messages:
            if message.health is not None:
                await self._write_health(message.health)
        self.stats.batches += 1
        self.stats.messages += len(batch.messages)
        self.stats.items += len(items)
        batch.committed = True
        client = self._client
        while self._unacked and self._unacked[0].committed:
            for message in self._unacked.popleft().messages:
                # after a reconnect the broker delivers the old session's unacknowledged messages again
                if client is not None and message.session == self._session:
                    client.ack(message.mid, message.qos)

    async def _write_health(self, report: HealthReport) -> None:
        """Retried while the database is away (the round is acknowledged only once written); refused by it, the
        round is logged and dropped: the gateway sends the next within its round time."""
        assert self._health is not None
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(psycopg.OperationalError),
                wait=wait_random_exponential(multiplier=0.2, max=5),
            ):
                with attempt:
                    await self._health.report(
                        report.gateway_id, report.site, report.heartbeat, report.statuses, report.figures
                    )
        except psycopg.Error as exc:
            self.stats.health_refused += 1
            log.error("health round of %s (site %s) refused by the database: %s", report.gateway_id, report.site, exc)
        else:
            self.stats.health += 1

    # paho's thread ----------------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("central broker %s:%d refused the connection: %s", self.link.host, self.link.port, reason)
            return
        self._session += 1  # only this thread writes it
        log.info("ingesting from %s:%d (session present: %s)", self.link.host, self.link.port, flags.session_present)
        if self._leaving:
            client.unsubscribe(self.subscriptions)
        else:
            client.subscribe([(s, 1) for s in self.subscriptions])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("central broker refused the subscriptions %s: %s", self.subscriptions, reasons)
        else:
            log.info("subscribed to %s", self.subscriptions)  # from here on the broker deals this worker its share
            if self._loop is not None:
                on_loop(self._loop, self.subscribed.set)

    def _on_unsubscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        log.info("left the shared subscriptions %s: taking what the session still holds", self.subscriptions)
        self._last_arrival = time.monotonic()
        if self._loop is not None:
            on_loop(self._loop, self.unsubscribed.set)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("central broker %s:%d went away: %s", self.link.host, self.link.port, reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._last_arrival = time.monotonic()
        self._arrivals.append(Arrival(self._session, message.mid, message.qos, message.topic, message.payload))
        if self._loop is not None:
            on_loop(self._loop, self._arrived.set)
