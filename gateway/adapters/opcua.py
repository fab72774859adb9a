"""OPC UA (asyncua client). Nodes are addressed by node id or by browse path from the machine object
(prefixes such as `MT:` resolve through the server's namespace array, so indices never go in config).
Subscriptions carry each signal's sampling interval, queue size and deadband; nodes marked `poll`, or
servers that refuse a subscription, are read every poll interval. Alarms arrive as events. Source
timestamps are kept; a bad StatusCode becomes bad quality, not a value. A cheap read of the server
clock every poll interval tells, within two intervals, that the server is gone."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from asyncua import Client, Node, ua

from gateway.config import OpcUaEvents, OpcUaSettings, OpcUaSignal
from gateway.normalize import Emit, Reading
from telemetry.model import Quality, Rejected, reject

log = logging.getLogger(__name__)


class ServerUnreachable(ConnectionError):
    pass


class _Handler:
    """asyncua calls these in the event loop; they only queue. One handler per subscription, so an event
    subscription knows which events config (and signal) its events belong to."""

    def __init__(self, adapter: OpcUaAdapter, events: OpcUaEvents | None = None) -> None:
        self.adapter = adapter
        self.events = events

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        name = self.adapter.names.get(node.nodeid)
        if name is not None:
            self.adapter.inbox.put_nowait(self.adapter.checked(name, data.monitored_item.Value))

    def event_notification(self, event: Any) -> None:
        if self.events is not None:
            self.adapter.inbox.put_nowait(self.adapter.event_reading(event, self.events))

    def status_change_notification(self, status: Any) -> None:
        self.adapter.inbox.put_nowait(ServerUnreachable(f"subscription status {status.Status}"))


TEXT_TYPES = {ua.VariantType.String, ua.VariantType.LocalizedText, ua.VariantType.ByteString}


class OpcUaAdapter:
    def __init__(
        self,
        device_id: str,
        endpoint: str,
        settings: OpcUaSettings,
        signals: dict[str, OpcUaSignal],
        errors: Counter[str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.device_id = device_id
        self.endpoint = endpoint
        self.settings = settings
        self.signals = signals
        self.errors = errors
        self._clock = clock
        self.names: dict[ua.NodeId, str] = {}
        self.inbox: asyncio.Queue[Reading | Rejected | Exception] = asyncio.Queue()
        self.text: dict[str, bool] = {}  # signal -> its node's declared type is text (absent: unknown)
        self._client: Client | None = None
        self._polled: dict[str, Node] = {}
        self._namespaces: dict[str, int] = {}

    @property
    def interval(self) -> float:
        return self.settings.poll_interval.total_seconds()

    async def connect(self) -> None:
        s = self.settings
        client = Client(self.endpoint, timeout=s.timeout.total_seconds())
        client.session_timeout = 60_000  # ms; a lost gateway's session should not linger on the machine for an hour
        if s.security.mode != "None":
            client.application_uri = s.security.application_uri
            parts = [s.security.policy, s.security.mode, str(s.security.certificate), str(s.security.private_key)]
            if s.security.server_certificate is not None:
                parts.append(str(s.security.server_certificate))
            await client.set_security_string(",".join(parts))
        if s.username:
            client.set_user(s.username)
            client.set_password(s.password or "")
        self._client = client
        try:
            await client.connect()
            await self._prepare(client)
        except (OSError, TimeoutError, ua.UaError) as exc:
            raise ServerUnreachable(str(exc) or type(exc).__name__) from exc

    async def _prepare(self, client: Client) -> None:
        uris = await client.get_namespace_array()
        self._namespaces = {"0": 0}
        for prefix, uri in self.settings.all_namespaces.items():
            if uri in uris:
                self._namespaces[prefix] = uris.index(uri)
        machine = await client.nodes.objects.get_child(self._browse_path(self.settings.machine))
        subscription = await client.create_subscription(
            self.settings.publishing_interval.total_seconds() * 1000, _Handler(self)
        )
        self.names.clear()
        self._polled.clear()
        for name, spec in self.signals.items():
            try:
                node = (
                    client.get_node(spec.node) if spec.node else await machine.get_child(self._browse_path(spec.path))
                )
                self.names[node.nodeid] = name
                await self._learn_type(name, node)
                if spec.mode == "poll" or not await self._subscribe(subscription, node, spec):
                    self._polled[name] = node
            except ua.UaError as exc:
                self.errors[f"unresolved {name}"] += 1
                log.error("%s: cannot resolve %s (%s): %s", self.endpoint, name, spec.node or spec.path, exc)
        interval_ms = self.settings.publishing_interval.total_seconds() * 1000
        for events in self.settings.events:
            notifier = await machine.get_child(self._browse_path(events.path))
            event_type = await client.nodes.base_event_type.get_child(self._browse_path(events.event_type))
            event_subscription = await client.create_subscription(interval_ms, _Handler(self, events))
            await event_subscription.subscribe_events(notifier, event_type)

    async def _learn_type(self, name: str, node: Node) -> None:
        """The node's declared data type, so a server sending text for a number is caught."""
        try:
            self.text[name] = await node.read_data_type_as_variant_type() in TEXT_TYPES
        except (ua.UaError, ValueError, KeyError):
            self.text.pop(name, None)  # an enumeration or structure: no simple kind to hold it to

    async def _subscribe(self, subscription: Any, node: Node, spec: OpcUaSignal) -> bool:
        """A monitored item with this signal's sampling interval, queue and absolute deadband. Falls back to
        polling when the server refuses it."""
        mfilter = None
        if spec.deadband > 0:
            mfilter = ua.DataChangeFilter()
            mfilter.Trigger = ua.DataChangeTrigger.StatusValue
            mfilter.DeadbandType = ua.DeadbandType.Absolute
            mfilter.DeadbandValue = spec.deadband
        sampling = spec.sampling_interval or self.settings.publishing_interval
        try:
            # asyncua's public helpers cannot combine a deadband with a sampling interval; _subscribe can
            # (asyncua is pinned to the minor version for it).
            await subscription._subscribe(
                node,
                mfilter=mfilter,
                queuesize=spec.queue_size,
                sampling_interval=sampling.total_seconds() * 1000,
            )
        except ua.UaStatusCodeError as exc:
            self.errors["subscription refused"] += 1
            log.warning("%s: subscription refused for %s (%s): polling it", self.endpoint, node, exc)
            return False
        return True

    def _browse_path(self, path: str) -> list[str]:
        out = []
        for part in path.split("/"):
            prefix, _, name = part.rpartition(":")
            if prefix not in self._namespaces:
                raise ua.UaError(f"namespace prefix {prefix!r} of {part!r} is not on the server")
            out.append(f"{self._namespaces[prefix]}:{name}")
        return out

    async def close(self) -> None:
        if self._client is not None:
            try:
                await asyncio.wait_for(self._client.disconnect(), 2)
            except Exception as exc:  # the link is already gone: nothing to tell the server
                log.debug("%s: disconnect: %s", self.endpoint, exc)
            self._client = None

    async def run(self, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        next_poll = loop.time()
        while True:
            try:
                async with asyncio.timeout(max(0.0, next_poll - loop.time())):
                    items = [await self.inbox.get()]
            except TimeoutError:
                items = await self._poll()
                next_poll = loop.time() + self.interval
            while not self.inbox.empty():
                items.append(self.inbox.get_nowait())
            for item in items:
                if isinstance(item, Exception):
                    raise item
            await emit([i for i in items if type(i) is Reading], [i for i in items if type(i) is Rejected])

    async def _poll(self) -> list[Reading | Rejected]:
        client = self._client
        if client is None:
            raise ServerUnreachable("not connected")
        try:
            await client.nodes.server_state.read_value()  # the watchdog
            values = await client.read_attributes(list(self._polled.values())) if self._polled else []
        except (OSError, TimeoutError, ua.UaError, ConnectionError) as exc:
            raise ServerUnreachable(f"watchdog read failed: {exc or type(exc).__name__}") from exc
        return [self.checked(name, dv) for name, dv in zip(self._polled, values, strict=True)]

    def checked(self, name: str, dv: ua.DataValue) -> Reading | Rejected:
        """The reading, or its rejection when the value's type is not the node's declared one."""
        reading = self.reading(name, dv)
        declared_text = self.text.get(name)
        if reading.value is None or declared_text is None or isinstance(reading.value, str) == declared_text:
            return reading
        got = "text" if isinstance(reading.value, str) else type(reading.value).__name__
        reason = f"expected {'text' if declared_text else 'a number'}, got {got}"
        self.errors[f"quarantined: {reason}"] += 1
        return reject((reading.time, self.device_id, name, reading.value), reason)

    def reading(self, name: str, dv: ua.DataValue) -> Reading:
        time = dv.SourceTimestamp or dv.ServerTimestamp or self._clock()
        if time.tzinfo is None:
            time = time.replace(tzinfo=UTC)
        status = dv.StatusCode
        if status is not None and not status.is_good():
            self.errors[f"status {status.name}"] += 1
            return Reading(name, None, time, Quality.UNCERTAIN if status.is_uncertain() else Quality.BAD)
        value = dv.Value.Value if dv.Value is not None else None
        if isinstance(value, ua.LocalizedText):
            value = value.Text or ""
        return Reading(name, value, time)

    def event_reading(self, event: Any, events: OpcUaEvents) -> Reading:
        """An active alarm shows as its code and message; a cleared one as empty text."""
        fields = event.get_event_props_as_fields_dict()
        code = fields.get(events.code_field)
        message = fields.get("Message")
        active = fields.get(events.active_field) if events.active_field else None
        text = " ".join(str(_plain(v)) for v in (code, message) if v is not None and _plain(v) not in (None, ""))
        time = _plain(fields.get("Time")) or self._clock()
        if isinstance(time, datetime) and time.tzinfo is None:
            time = time.replace(tzinfo=UTC)
        return Reading(events.signal, "" if _plain(active) is False else text, time)


def _plain(value: Any) -> Any:
    value = getattr(value, "Value", value)  # Variant
    if isinstance(value, ua.LocalizedText):
        return value.Text
    return value
