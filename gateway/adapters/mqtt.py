"""MQTT (paho-mqtt, VERSION2 callbacks). One broker connection for every printer: QoS 1 with a persistent
session, so reports sent while FabHub was away are delivered when it returns; subscriptions renewed on
every connect. Paho's network thread hands each message to asyncio through a bounded queue and waits
while it is full, so a slow database slows the broker's delivery instead of losing messages.

Per device, delta reports (P1-series printers send only what changed) are merged into the last known
report, and the configured JSON paths become readings. Malformed JSON, wrong types and messages on
topics no device owns are quarantined with the reason."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as mqtt

from gateway.config import MqttSettings, MqttSignal
from gateway.normalize import Emit, Reading
from telemetry.model import Rejected, reject

log = logging.getLogger(__name__)
UNKNOWN = "unknown"
BURST_WINDOW_S = 0.01
Clock = Callable[[], datetime]


class DeviceSilent(ConnectionError):
    pass


class MqttHub:
    """The broker connection shared by the MQTT devices; dispatches messages by topic."""

    def __init__(self, url: str, client_id: str = "fabhub-gateway", queue_size: int = 10_000) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.tls = parts.scheme == "mqtts"
        self.username, self.password = parts.username, parts.password
        self.client_id = client_id
        # paho's thread appends here and wakes the loop once per burst, not once per message: handing the GIL
        # back and forth for every message would cost more than the messages themselves
        self.queue: deque[tuple[MqttAdapter | None, Any, int, int]] = deque()
        self._to_ack: deque[tuple[int, int]] = deque()  # (mid, qos) passed on, not yet acknowledged
        self._ack_timer: asyncio.TimerHandle | None = None
        self._stopping = False
        self._limit = queue_size
        self._room = threading.Event()  # cleared by paho's thread when the queue is full, set when drained
        self._room.set()
        self._wake_lock = threading.Lock()
        self._wake_pending = False
        self._arrived = asyncio.Event()
        self.connected = asyncio.Event()
        self.adapters: dict[str, MqttAdapter] = {}  # report topic -> adapter
        self.received = 0
        self.unknown = 0
        self.on_unknown: Callable[[Rejected], Awaitable[None]] | None = None
        self._patterns: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None

    def register(self, adapter: MqttAdapter) -> None:
        self.adapters[adapter.topic] = adapter
        self._patterns.add(adapter.wildcard)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,  # acknowledged when passed on, so a message cut by a stop is redelivered, not lost
        )
        if self.username:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.connect_async(self.host, self.port, keepalive=30)
        client.loop_start()
        self._client = client
        self._task = asyncio.create_task(self._dispatch())

    async def stop(self) -> None:
        """Stop passing messages on, then disconnect: what was passed on is acknowledged, the rest stays
        with the broker for the next session, so a stop neither loses nor duplicates."""
        self._stopping = True
        self._room.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        self._send_acks()
        if self._client is not None:
            for _ in range(100):  # the acknowledgements must reach the broker before we go, or it resends
                if not self._client.want_write():
                    break
                await asyncio.sleep(0.05)
            self._client.disconnect()
            await asyncio.to_thread(self._client.loop_stop)
            self._client = None
        self.queue.clear()

    def publish(self, topic: str, payload: dict) -> None:
        if self._client is not None:
            self._client.publish(topic, json.dumps(payload), qos=1)

    # paho's thread --------------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s:%d refused the connection: %s", self.host, self.port, reason)
            return
        log.info("MQTT connected to %s:%d (session present: %s)", self.host, self.port, flags.session_present)
        for pattern in sorted(self._patterns):
            client.subscribe(pattern, qos=1)
        self._call(self.connected.set)
        for adapter in list(self.adapters.values()):
            self._call(adapter.request_full_report)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        level = logging.WARNING if reason.is_failure else logging.INFO  # a failure is news, our own stop is not
        log.log(level, "MQTT disconnected from %s:%d: %s", self.host, self.port, reason)
        self._call(self.connected.clear)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._loop is None or self._loop.is_closed():
            return
        self._send_acks()
        # Decoding happens here, in paho's thread, so the event loop only takes finished readings: the GIL
        # then changes hands once per burst, not twice per message.
        adapter = self.adapters.get(message.topic)
        parsed = adapter.parse(message.payload) if adapter is not None else message.topic
        item = (adapter, parsed, message.mid, message.qos)
        # Blocks paho's thread only while the queue is full: the broker keeps the QoS 1 messages meanwhile.
        while len(self.queue) >= self._limit and self._client is not None:
            self._room.clear()
            self._room.wait(0.5)
        with self._wake_lock:
            self.queue.append(item)
            wake, self._wake_pending = not self._wake_pending, True
        if wake:
            self._loop.call_soon_threadsafe(self._arrived.set)

    def _call(self, fn: Callable[[], Any]) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn)

    # asyncio ----------------------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            await self._arrived.wait()
            # Let a burst gather: each wake-up makes the two threads trade the GIL, and trading it per
            # message halves what paho's thread can receive. 10 ms is nothing next to a live view's second.
            await asyncio.sleep(BURST_WINDOW_S)
            with self._wake_lock:
                self._arrived.clear()
                self._wake_pending = False
                burst = list(self.queue)
                self.queue.clear()
            self._room.set()
            await self._deliver(burst)
            if self._loop is not None and self._ack_timer is None:
                self._ack_timer = self._loop.call_later(BURST_WINDOW_S, self._send_acks_idle)

    def _send_acks(self) -> None:
        """Acknowledge what was passed on. Paho's thread does it as each new message comes in (acknowledging
        from the event loop costs a wake-up of paho's thread per message); when messages stop coming, a
        timer in the loop does it."""
        client = self._client
        while self._to_ack and client is not None:
            try:
                mid, qos = self._to_ack.popleft()
            except IndexError:  # the other thread took the last one
                return
            client.ack(mid, qos)

    def _send_acks_idle(self) -> None:
        self._ack_timer = None
        self._send_acks()

    async def _deliver(self, burst: list[tuple[MqttAdapter | None, Any, int, int]]) -> None:
        """Acknowledge, then pass on. Once stopping, neither: the broker keeps those for the next session.
        Acknowledgements are queued on paho's connection before its DISCONNECT, so a message passed on is
        never delivered again."""
        for adapter, parsed, mid, qos in burst:
            if self._stopping or self._client is None:
                return
            self._to_ack.append((mid, qos))
            self.received += 1
            if adapter is not None:
                adapter.deliver(parsed)
                continue
            self.unknown += 1
            if self.on_unknown is not None:
                where = (datetime.now(UTC), UNKNOWN, "topic", parsed)
                await self.on_unknown(reject(where, "message on a topic no device owns"))


class MqttAdapter:
    """A printer's view of the shared connection: its topic, its merged state, its silence."""

    def __init__(
        self,
        device_id: str,
        settings: MqttSettings,
        signals: dict[str, MqttSignal],
        hub: MqttHub,
        errors: Counter[str],
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.device_id = device_id
        self.settings = settings
        self.signals = signals
        self._paths = [(name, spec, tuple(spec.json_path.split("."))) for name, spec in signals.items()]
        self._last: dict[str, Any] = {}  # raw value per signal as last read: unchanged ones are not re-read
        self._reset = False
        self._busy = False
        self.topic = self._expand(settings.topic)
        self.wildcard = settings.topic.replace("{serial}", "+").replace("{device_id}", "+")
        self.request_topic = self._expand(settings.request_topic) if settings.request_topic else None
        self.errors = errors
        self._hub = hub
        self._clock = clock
        self.merged: dict[str, Any] = {}
        self._inbox: asyncio.Queue[tuple[list[Reading], list[Rejected]]] = asyncio.Queue()
        hub.register(self)

    def _expand(self, template: str) -> str:
        return template.replace("{serial}", self.settings.serial or "").replace("{device_id}", self.device_id)

    @property
    def interval(self) -> float:
        return self.settings.offline_after.total_seconds() / 2

    async def connect(self) -> None:
        """Reachable means: the broker is connected and the printer has spoken within `offline_after`."""
        timeout = self.settings.offline_after.total_seconds()
        self._reset = True  # after a loss, the first report sets every value afresh (parse() clears them)
        try:
            await asyncio.wait_for(self._hub.connected.wait(), timeout)
            self.request_full_report()
            first = await asyncio.wait_for(self._inbox.get(), timeout)
        except TimeoutError as exc:
            raise DeviceSilent(f"no report on {self.topic} for {timeout:g} s") from exc
        self._inbox.put_nowait(first)

    async def close(self) -> None:
        return None

    async def run(self, emit: Emit) -> None:
        timeout = self.settings.offline_after.total_seconds()
        while True:
            try:
                async with asyncio.timeout(timeout):
                    batch = [await self._inbox.get()]
            except TimeoutError as exc:
                raise DeviceSilent(f"no report on {self.topic} for {timeout:g} s") from exc
            while not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            self._busy = True
            try:
                await emit(
                    [r for readings, _ in batch for r in readings], [r for _, rejected in batch for r in rejected]
                )
            finally:
                self._busy = False
            if not self._hub.connected.is_set():
                raise DeviceSilent("broker connection lost")

    @property
    def idle(self) -> bool:
        """Nothing received is waiting to be passed on."""
        return self._inbox.empty() and not self._busy

    def request_full_report(self) -> None:
        if self.settings.pushall_on_connect and self.request_topic:
            self._hub.publish(self.request_topic, {"pushing": {"sequence_id": "0", "command": "pushall"}})

    def parse(self, payload: bytes) -> tuple[list[Reading], list[Rejected]]:
        """Decode one report into readings. Runs in paho's thread: it touches only this adapter's merged
        report and last values, which nothing else touches."""
        now = self._clock()
        if self._reset:
            self._last.clear()
            self._reset = False
        try:
            report = _parse(payload)
            if not isinstance(report, dict):
                raise ValueError(f"expected a JSON object, got {type(report).__name__}")
        except (ValueError, UnicodeDecodeError) as exc:
            text = payload[:1000].decode(errors="replace")
            return [], [reject((now, self.device_id, "payload", text), f"malformed JSON: {exc}")]
        if self.settings.merge_deltas:
            _merge(self.merged, report)
        else:
            self.merged = report
        return self._readings(now)

    def deliver(self, parsed: tuple[list[Reading], list[Rejected]]) -> None:
        for r in parsed[1]:
            self.errors[f"quarantined: {r.reason.split(':')[0]}"] += 1
        self._inbox.put_nowait(parsed)

    def _readings(self, now: datetime) -> tuple[list[Reading], list[Rejected]]:
        readings, rejected = [], []
        last = self._last
        for name, spec, path in self._paths:
            value = _lookup(self.merged, path)
            if value is None or (name in last and last[name] == value and type(last[name]) is type(value)):
                continue  # a full report repeats what did not change; the normalizer's heartbeat covers it
            last[name] = value
            converted = self._convert(value, spec)
            if isinstance(converted, str) and spec.type != "text":
                rejected.append(reject((now, self.device_id, name, value), converted))
                continue
            readings.append(Reading(name, converted, now))
        return readings, rejected

    def _convert(self, value: Any, spec: MqttSignal) -> Any:
        """Printers send numbers as numbers or as text ("22"); anything else for a number field is an error
        message (returned as the reason)."""
        if spec.type == "text":
            return value if isinstance(value, str) else json.dumps(value)
        if isinstance(value, bool):
            return float(value)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return f"not a number: {value[:50]!r}"
        return f"expected a number, got {type(value).__name__}"


def _parse(payload: bytes) -> Any:
    """orjson for speed; the standard parser for what orjson refuses but Python's json reads (NaN,
    Infinity), so one odd field costs that field (quarantined as not finite), not the whole report."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return json.loads(payload)


def _merge(into: dict[str, Any], delta: dict[str, Any]) -> None:
    for key, value in delta.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _lookup(doc: Any, path: tuple[str, ...]) -> Any:
    """The value at a dotted path (list items by index), or None when the report does not have it."""
    for part in path:
        if type(doc) is dict:
            doc = doc.get(part)
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return None
    return doc
