"""MQTT (paho-mqtt, VERSION2 callbacks). Printers that publish to the site broker share one connection;
a printer that is its own broker (a Bambu printer in LAN mode: mqtts://<ip>:8883, user bblp, its access
code, its own certificate) gets a connection of its own, opened and retried by its coordinator so a wrong
access code or certificate shows as that device's error. Both kinds are the same `MqttHub`: QoS 1 with a
persistent session, so reports sent while FabHub was away are delivered when it returns; subscriptions
renewed on every connect. Paho's network thread hands each message to asyncio through a bounded queue and
waits while it is full, so a slow database slows the broker's delivery instead of losing messages.

Per device, delta reports (P1-series printers send only what changed) are merged into the last known
report, and the configured JSON paths become readings. Malformed JSON, wrong types, impossible report
times and messages on topics no device owns are quarantined with the reason. A gateway subscribes to its
own devices' topics only, never to wildcards: on a central broker, another site's printers are not its news."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import ssl
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
import paho.mqtt.client as mqtt

from gateway.adapters.tls import LinkRefused, describe, tls_context
from gateway.config import MqttSettings, MqttSignal
from gateway.normalize import Emit, Reading
from telemetry.model import Rejected, reject

log = logging.getLogger(__name__)
UNKNOWN = "unknown"
BURST_WINDOW_S = 0.01
MAX_AHEAD = timedelta(minutes=5)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # a report time further ahead than this is a device clock gone wrong
Clock = Callable[[], datetime]
PUSHALL = {"pushing": {"sequence_id": "0", "command": "pushall"}}
CONNECTING = ThreadPoolExecutor(max_workers=16, thread_name_prefix="mqtt-connect")


class DeviceSilent(ConnectionError):
    pass


@dataclass(frozen=True)
class Lost:
    """In a device's inbox: the connection went away here."""

    reason: str


@dataclass(frozen=True)
class BrokerLink:
    """Where a connection goes and how it proves who it is."""

    host: str
    port: int
    client_id: str
    tls: Callable[[], ssl.SSLContext] | None = None  # made per connection: a CA file may appear or change
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str, client_id: str) -> BrokerLink:
        """The site broker: credentials in the URL (mqtts:// verifies the broker against the system's CAs)."""
        parts = urlsplit(url)
        tls = parts.scheme == "mqtts"
        return cls(
            parts.hostname or "127.0.0.1",
            parts.port or (8883 if tls else 1883),
            client_id,
            partial(tls_context, MqttSettings()) if tls else None,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )

    @classmethod
    def for_device(cls, device_id: str, endpoint: str, settings: MqttSettings) -> BrokerLink:
        """A device that is its own broker, with its settings' secrets already resolved."""
        parts = urlsplit(endpoint)
        tls = parts.scheme == "mqtts"
        return cls(
            parts.hostname or "127.0.0.1",
            parts.port or (8883 if tls else 1883),
            f"fabhub-{device_id}",
            partial(tls_context, settings, expected_cn=settings.serial) if tls else None,
            settings.username,
            settings.password,
        )


class MqttHub:
    """One broker connection and the devices it carries; dispatches messages by topic. The site broker's
    is started once and reconnects by itself (`start`); a device's own is opened by its coordinator
    (`open`), which sees why it failed and retries with the device's backoff."""

    def __init__(self, link: BrokerLink, queue_size: int = 10_000) -> None:
        self.link = link
        self.host, self.port = link.host, link.port
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
        self.refused: str | None = None  # why the broker last refused us
        self._connack: asyncio.Future[str | None] | None = None
        self.adapters: dict[str, MqttAdapter] = {}  # report topic -> adapter
        self.received = 0
        self.unknown = 0
        self.on_unknown: Callable[[Rejected], Awaitable[None]] | None = None
        self._patterns: set[str] = set()
        self._suback_mid: int | None = None  # the subscription whose acknowledgement makes the hub ready
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None

    def register(self, adapter: MqttAdapter) -> None:
        self.adapters[adapter.topic] = adapter
        self._patterns.add(adapter.topic)

    def _new_client(self, *, reconnect: bool) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.link.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,  # acknowledged when passed on, so a message cut by a stop is redelivered, not lost
            reconnect_on_failure=reconnect,
        )
        if self.link.username is not None:
            client.username_pw_set(self.link.username, self.link.password)
        if self.link.tls is not None:
            client.tls_set_context(self.link.tls())
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _begin(self, client: mqtt.Client) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._room.set()
        self._client = client
        self._task = asyncio.create_task(self._dispatch())

    async def start(self) -> None:
        """The shared connection: paho connects in the background and reconnects by itself."""
        client = self._new_client(reconnect=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._begin(client)
        client.connect_async(self.host, self.port, keepalive=30)
        client.loop_start()

    async def open(self, answer_within: float) -> None:
        """A device's own connection, now: raises why it cannot be had (unreachable, certificate, refused
        login) for the coordinator to show and retry; paho does not reconnect it behind our back."""
        try:
            client = self._new_client(reconnect=False)
        except ValueError as exc:  # a CA file that cannot be read: this device's problem, retried like others
            raise LinkRefused(str(exc)) from exc
        loop = asyncio.get_running_loop()
        self._connack = loop.create_future()
        client.connect_timeout = answer_within
        try:
            # its own threads: a printer that accepts TCP and never finishes TLS holds one for answer_within
            # seconds, and must not starve the default pool the spool writes through
            await loop.run_in_executor(CONNECTING, client.connect, self.host, self.port, 30)
        except ssl.SSLError as exc:  # a certificate we do not trust, or a handshake that failed
            raise LinkRefused(describe(exc)) from exc
        self._begin(client)
        client.loop_start()
        try:
            refused = await asyncio.wait_for(self._connack, answer_within)
        except TimeoutError as exc:
            raise DeviceSilent(f"no answer to CONNECT from {self.host}:{self.port} in {answer_within:g} s") from exc
        finally:
            self._connack = None
        if refused is not None:
            raise LinkRefused(refused)

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
        self.connected.clear()
        self.queue.clear()
        self._to_ack.clear()

    def publish(self, topic: str, payload: dict) -> None:
        if self._client is not None:
            self._client.publish(topic, json.dumps(payload), qos=1)

    # paho's thread --------------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            refused = _refusal(reason)
            if refused != self.refused:  # the site broker retries by itself: say it once, not every second
                log.warning("MQTT broker %s:%d refused the connection: %s", self.host, self.port, refused)
            self.refused = refused
            self._call(lambda: self._answered(refused))
            return
        self.refused = None
        log.info("MQTT connected to %s:%d (session present: %s)", self.host, self.port, flags.session_present)
        self._call(lambda: self._answered(None))
        if not self._patterns:
            self._ready()
            return
        # Ready only once the broker acknowledged the subscriptions: on a new session, a report (or the answer
        # to the full-report request below) sent before that would be dropped by the broker.
        _, self._suback_mid = client.subscribe([(pattern, 1) for pattern in sorted(self._patterns)])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if mid == self._suback_mid:
            refused = [str(r) for r in reasons if r.is_failure]
            if refused:
                log.warning("MQTT broker %s:%d refused subscriptions: %s", self.host, self.port, ", ".join(refused))
            self._ready()

    def _ready(self) -> None:
        self._call(self.connected.set)
        for adapter in list(self.adapters.values()):
            self._call(adapter.request_full_report)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        level = logging.WARNING if reason.is_failure else logging.INFO  # a failure is news, our own stop is not
        log.log(level, "MQTT disconnected from %s:%d: %s", self.host, self.port, reason)
        self._call(self.connected.clear)
        if not self._stopping:  # in line with the messages before it, so none is taken as after the loss
            self._enqueue((None, Lost(f"connection to {self.host}:{self.port} lost: {reason}"), 0, 0))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._loop is None or self._loop.is_closed():
            return
        self._send_acks()
        # Decoding happens here, in paho's thread, so the event loop only takes finished readings: the GIL
        # then changes hands once per burst, not twice per message.
        adapter = self.adapters.get(message.topic)
        parsed = adapter.parse(message.payload) if adapter is not None else message.topic
        # Blocks paho's thread only while the queue is full: the broker keeps the QoS 1 messages meanwhile.
        while len(self.queue) >= self._limit and self._client is not None:
            self._room.clear()
            self._room.wait(0.5)
        self._enqueue((adapter, parsed, message.mid, message.qos))

    def _enqueue(self, item: tuple[MqttAdapter | None, Any, int, int]) -> None:
        if self._loop is None or self._loop.is_closed():
            return
        with self._wake_lock:
            self.queue.append(item)
            wake, self._wake_pending = not self._wake_pending, True
        if wake:
            self._loop.call_soon_threadsafe(self._arrived.set)

    def _answered(self, refused: str | None) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(refused)

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
            if isinstance(parsed, Lost):
                for each in self.adapters.values():
                    each.deliver(parsed)
                continue
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
    """A printer's view of its connection (its own, or the shared one): its topic, its merged state, its
    silence."""

    def __init__(
        self,
        device_id: str,
        settings: MqttSettings,
        signals: dict[str, MqttSignal],
        hub: MqttHub,
        clock: Clock = lambda: datetime.now(UTC),
        *,
        own: bool = False,
    ) -> None:
        self.device_id = device_id
        self.settings = settings
        self.signals = signals
        self._paths = [(name, spec, tuple(spec.json_path.split("."))) for name, spec in signals.items()]
        self._time_path = tuple(settings.time_json.split(".")) if settings.time_json else None
        self._last: dict[str, Any] = {}  # raw value per signal as last read: unchanged ones are not re-read
        self._reset = False
        self._busy = False
        self.topic = self._expand(settings.topic)
        self.request_topic = self._expand(settings.request_topic) if settings.request_topic else None
        self._hub = hub
        self._own = own  # the connection is this device's: opened and closed with it
        self._clock = clock
        self.merged: dict[str, Any] = {}
        self._inbox: asyncio.Queue[tuple[list[Reading], list[Rejected]] | Lost] = asyncio.Queue()
        self._asked_at = 0.0
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
        self._drop_losses()  # they belong to a connection being replaced
        if self._own:
            await self._hub.open(timeout)
        try:
            await asyncio.wait_for(self._hub.connected.wait(), timeout)
            self.request_full_report()
            first = await asyncio.wait_for(self._inbox.get(), timeout)
        except TimeoutError as exc:
            why = f" (the broker refused us: {self._hub.refused})" if self._hub.refused else ""
            raise DeviceSilent(f"no report on {self.topic} for {timeout:g} s{why}") from exc
        if isinstance(first, Lost):
            raise DeviceSilent(first.reason)
        self._inbox.put_nowait(first)

    async def close(self) -> None:
        if self._own:
            await self._hub.stop()

    async def run(self, emit: Emit) -> None:
        timeout = self.settings.offline_after.total_seconds()
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout(timeout):
                    batch = [await self._inbox.get()]
            except TimeoutError as exc:
                raise DeviceSilent(f"no report on {self.topic} for {timeout:g} s") from exc
            while not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            reports = [b for b in batch if not isinstance(b, Lost)]
            self._busy = True
            try:
                await emit(
                    [r for readings, _ in reports for r in readings], [r for _, rejected in reports for r in rejected]
                )
            finally:
                self._busy = False
            lost = next((b for b in batch if isinstance(b, Lost)), None)
            if lost is not None:
                raise DeviceSilent(lost.reason)
            every = self.settings.pushall_every
            if every is not None and loop.time() - self._asked_at >= every.total_seconds():
                self.request_full_report()

    def _drop_losses(self) -> None:
        kept = [item for item in _drain(self._inbox) if not isinstance(item, Lost)]
        for item in kept:
            self._inbox.put_nowait(item)

    @property
    def idle(self) -> bool:
        """Nothing received is waiting to be passed on."""
        return self._inbox.empty() and not self._busy

    def request_full_report(self) -> None:
        """P1 and A1 printers send only what changed: ask for everything after connecting and now and then."""
        if self.settings.pushall_on_connect and self.request_topic:
            self._asked_at = asyncio.get_running_loop().time()
            self._hub.publish(self.request_topic, PUSHALL)

    def parse(self, payload: bytes | bytearray) -> tuple[list[Reading], list[Rejected]]:
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
        when = now
        if self._time_path is not None:
            stamp = _lookup(report, self._time_path)
            if stamp is not None:  # a delta report without it: received now
                problem, when = _report_time(stamp, now)
                if problem is not None:
                    text = payload[:1000].decode(errors="replace")
                    return [], [reject((now, self.device_id, "payload", text), problem)]
        if self.settings.merge_deltas:
            _merge(self.merged, report)
        else:
            self.merged = report
        return self._readings(when)

    def deliver(self, parsed: tuple[list[Reading], list[Rejected]] | Lost) -> None:
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


def _refusal(reason: Any) -> str:
    """CONNACK 4 and 5 (MQTT 3.1.1; 134 and 135 in MQTT 5) are the credentials; say so plainly."""
    if getattr(reason, "value", None) in (4, 5, 134, 135):
        return f"not authorized ({reason}): wrong user name or password (a Bambu printer's: its LAN access code)"
    return f"refused: {reason}"


def _drain(queue: asyncio.Queue[Any]) -> list[Any]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def _report_time(stamp: Any, now: datetime) -> tuple[str | None, datetime]:
    """A report's own time: epoch seconds or milliseconds (number or numeric text), or ISO 8601 with an
    offset. A time that cannot be one, or lies ahead of our clock, refuses the report (its reason, now)."""
    when: datetime | None = None
    number: float | None = None
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        number = float(stamp)
    elif isinstance(stamp, str):
        try:
            number = float(stamp)
        except ValueError:
            with contextlib.suppress(ValueError):
                when = datetime.fromisoformat(stamp)
            if when is not None and when.tzinfo is None:
                return f"report time {stamp!r} has no UTC offset", now
    if number is not None and math.isfinite(number) and 0 < number < 1e14:
        when = datetime.fromtimestamp(number / 1000 if number >= 1e11 else number, UTC)
    if when is None:
        return f"report time {str(stamp)[:50]!r} is neither epoch seconds, milliseconds nor ISO 8601", now
    if when < EARLIEST:
        return f"report time {when.isoformat()} is before 2000: the device's clock is not set", now
    if when > now + MAX_AHEAD:
        return f"report time {when.isoformat()} is ahead of the gateway's clock", now
    return None, when


def _parse(payload: bytes | bytearray) -> Any:
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
