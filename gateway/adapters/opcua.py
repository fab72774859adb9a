"""OPC UA (asyncua client). Nodes are addressed by node id or by browse path from the machine object
(prefixes such as `MT:` resolve through the server's namespace array, so indices never go in config).
Subscriptions carry each signal's sampling interval, queue size and deadband; nodes marked `poll`, or
servers that refuse a subscription, are read every poll interval. Alarms arrive as events. A bad StatusCode
becomes bad quality, not a value. A cheap read of the server clock every poll interval tells, within two
intervals, that the server is gone.

Values as the companion specifications (Machinery, MachineTool) use them: a NodeId (a state machine's
CurrentState/Id) becomes the text `nsu=<namespace URI>;i=<n>` (`s=`, `g=`, `b=` for the other identifier
types; plain `i=<n>` in namespace 0), so it means the same on every server whatever its namespace indices; a
LocalizedText becomes its text, a QualifiedName its name. An enumeration stays its number, and when its
DataType tells the names (EnumStrings or EnumValues, read once per node at connect) the name comes too, as
the text signal `<signal>.name`. A reading's time is the value's SourceTimestamp (else its ServerTimestamp,
else our clock); a server clock that runs ahead of ours is counted once and our clock used instead."""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import Client, Node, ua
from asyncua.common.ua_utils import get_base_data_type
from asyncua.crypto import security_policies

from gateway.config import OpcUaEvents, OpcUaSettings, OpcUaSignal
from gateway.normalize import Emit, Reading
from telemetry.model import SIGNAL, Quality, Rejected, reject

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
            for item in self.adapter.checked(name, data.monitored_item.Value):
                self.adapter.inbox.put_nowait(item)

    def event_notification(self, event: Any) -> None:
        if self.events is not None:
            self.adapter.inbox.put_nowait(self.adapter.event_reading(event, self.events))

    def status_change_notification(self, status: Any) -> None:
        self.adapter.inbox.put_nowait(ServerUnreachable(f"subscription status {status.Status}"))


# Built-in DataTypes (ns=0, by id) whose values the adapter hands on as text.
TEXT_TYPES = {
    ua.VariantType.String,
    ua.VariantType.LocalizedText,
    ua.VariantType.ByteString,
    ua.VariantType.NodeId,
    ua.VariantType.ExpandedNodeId,
    ua.VariantType.QualifiedName,
    ua.VariantType.Guid,
}
UA_URI = "http://opcfoundation.org/UA/"  # namespace 0 of every server
BASE_DATA_TYPE, ENUMERATION = ua.ObjectIds.BaseDataType, ua.ObjectIds.Enumeration
NAME_SUFFIXES = (".name", "_name")  # the enumeration name's signal: the first that makes a valid signal name
CLOCK_AHEAD = timedelta(minutes=5)  # a server time further ahead than this is a wrong server clock
CLOCK_AHEAD_ERROR = "server clock ahead of ours"


class _NotReadable(ValueError):
    """A value that cannot be handed on as it is: the reason goes to the quarantine."""


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
        self.enum_names: dict[str, dict[int, str]] = {}  # signal -> its enumeration's names by value
        self.name_signals: dict[str, str] = {}  # signal -> the text signal carrying its enumeration name
        self._client: Client | None = None
        self._polled: dict[str, Node] = {}
        self._namespaces: dict[str, int] = {}
        self._uris: list[str] = []  # the server's namespace array: index -> URI
        self._clock_ahead_counted = False

    @property
    def interval(self) -> float:
        return self.settings.poll_interval.total_seconds()

    async def connect(self) -> None:
        s = self.settings
        client = Client(self.endpoint, timeout=s.timeout.total_seconds())
        client.session_timeout = 60_000  # ms; a lost gateway's session should not linger on the machine for an hour
        if s.security.mode != "None":
            client.application_uri = s.security.application_uri
            await client.set_security(
                getattr(security_policies, f"SecurityPolicy{s.security.policy}"),
                str(s.security.certificate),
                str(s.security.private_key),
                s.security.private_key_password,  # resolved from the environment by the composition root
                str(s.security.server_certificate) if s.security.server_certificate is not None else None,
                getattr(ua.MessageSecurityMode, s.security.mode),
            )
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
        self._uris = list(uris)
        self._clock_ahead_counted = False
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
        self.enum_names.clear()
        self.name_signals.clear()
        enumerations: dict[ua.NodeId, dict[int, str]] = {}  # DataType -> names, read once per connect
        for name, spec in self.signals.items():
            try:
                node = (
                    client.get_node(spec.node)
                    if spec.node
                    else await machine.get_child(self._browse_path(spec.path or ""))
                )
                self.names[node.nodeid] = name
                await self._learn_type(name, node, enumerations)
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

    async def _learn_type(self, name: str, node: Node, enumerations: dict[ua.NodeId, dict[int, str]]) -> None:
        """The node's declared data type, so a server sending text for a number is caught; for an enumeration
        also the names of its values."""
        try:
            data_type = Node(node.session, await node.read_data_type())
            base = (await get_base_data_type(data_type)).nodeid.Identifier
        except (ua.UaError, ValueError, KeyError):
            self.text.pop(name, None)  # no built-in type to hold it to
            return
        if base == BASE_DATA_TYPE:
            self.text.pop(name, None)  # any value at all
            return
        self.text[name] = base in TEXT_TYPES
        if base != ENUMERATION:
            return
        if data_type.nodeid not in enumerations:
            enumerations[data_type.nodeid] = await self._enumeration(data_type)
        names = enumerations[data_type.nodeid]
        signal = self._name_signal(name)
        if names and signal is not None:
            self.enum_names[name] = names
            self.name_signals[name] = signal

    async def _enumeration(self, data_type: Node) -> dict[int, str]:
        """An enumeration's names by value, from its EnumStrings (the names in value order) or EnumValues
        (value, display name) property; empty when the server has neither."""
        for prop in ("0:EnumStrings", "0:EnumValues"):
            try:
                values = await (await data_type.get_child(prop)).read_value()
                if prop == "0:EnumStrings":
                    names = {i: text.Text for i, text in enumerate(values) if text.Text}
                else:
                    names = {int(v.Value): v.DisplayName.Text for v in values if v.DisplayName.Text}
            except (ua.UaError, AttributeError, TypeError, ValueError):
                continue
            if names:
                return names
        log.info("%s: enumeration %s tells no names: its values come as numbers only", self.endpoint, data_type)
        return {}

    def _name_signal(self, name: str) -> str | None:
        """`<signal>.name` where that is a valid signal name (else `<signal>_name`), unless config already
        uses the name for a signal of its own."""
        for suffix in NAME_SUFFIXES:
            candidate = name + suffix
            if SIGNAL.match(candidate):
                if candidate in self.signals:
                    log.warning(
                        "%s: %s is configured, so %s's enumeration name is not sent", self.device_id, candidate, name
                    )
                    return None
                return candidate
        log.warning("%s: no signal name fits the enumeration name of %s: only its number is sent", self.device_id, name)
        return None

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
                    items: list[Reading | Rejected | Exception] = [await self.inbox.get()]
            except TimeoutError:
                items = [*await self._poll()]
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
            values = await client.uaclient.read(_read_both(self._polled.values())) if self._polled else []
        except (OSError, TimeoutError, ua.UaError, ConnectionError) as exc:
            raise ServerUnreachable(f"watchdog read failed: {exc or type(exc).__name__}") from exc
        return [item for name, dv in zip(self._polled, values, strict=True) for item in self.checked(name, dv)]

    def checked(self, name: str, dv: ua.DataValue) -> list[Reading | Rejected]:
        """The reading (and its enumeration name), or its rejection when the value's type is not the node's
        declared one or cannot be told as text."""
        time = self._time(name, dv.SourceTimestamp, dv.ServerTimestamp)
        name_signal = self.name_signals.get(name)
        status = dv.StatusCode
        if status is not None and not status.is_good():
            self.errors[f"status {status.name}"] += 1
            quality = Quality.UNCERTAIN if status.is_uncertain() else Quality.BAD
            return [Reading(s, None, time, quality) for s in (name, name_signal) if s is not None]
        raw = dv.Value.Value if dv.Value is not None else None
        try:
            value = self._plain_value(raw)
        except _NotReadable as exc:
            return [reject((time, self.device_id, name, raw), str(exc))]
        declared_text = self.text.get(name)
        if value is not None and declared_text is not None and isinstance(value, str) != declared_text:
            got = "text" if isinstance(value, str) else type(value).__name__
            return [
                reject(
                    (time, self.device_id, name, value),
                    f"expected {'text' if declared_text else 'a number'}, got {got}",
                )
            ]
        out: list[Reading | Rejected] = [Reading(name, value, time)]
        if name_signal is not None and isinstance(value, int) and not isinstance(value, bool):
            text = self.enum_names[name].get(value)
            if text is None:
                out.append(reject((time, self.device_id, name_signal, value), "not a value of its enumeration"))
            else:
                out.append(Reading(name_signal, text, time))
        return out

    def _plain_value(self, value: Any) -> Any:
        """A value as FabHub keeps it: the structured text types of OPC UA become plain text."""
        if isinstance(value, ua.LocalizedText):
            return value.Text or ""
        if isinstance(value, ua.QualifiedName):
            return value.Name or ""
        if isinstance(value, ua.NodeId):
            return self.node_id_text(value)
        if isinstance(value, uuid.UUID):
            return str(value)
        return value

    def node_id_text(self, node_id: ua.NodeId) -> str:
        """`nsu=<namespace URI>;i=<n>` (s=, g=, b= for string, GUID and opaque identifiers), plain `i=<n>` in
        namespace 0: the same on every server, whatever index the namespace has there. A null NodeId (no
        state, no target) is empty text."""
        if node_id.is_null():
            return ""
        identifier = node_id.Identifier
        if isinstance(identifier, int):
            key = f"i={identifier}"
        elif isinstance(identifier, str):
            key = f"s={identifier}"
        elif isinstance(identifier, uuid.UUID):
            key = f"g={identifier}"
        elif isinstance(identifier, bytes):
            key = f"b={base64.b64encode(identifier).decode('ascii')}"
        else:
            raise _NotReadable(f"a NodeId with a {type(identifier).__name__} identifier")
        uri = getattr(node_id, "NamespaceUri", None)  # an ExpandedNodeId may name its namespace itself
        index = node_id.NamespaceIndex
        if not uri and index != 0:
            if index >= len(self._uris):
                raise _NotReadable(f"NodeId namespace index {index} is not in the server's namespace array")
            uri = self._uris[index]
        server = getattr(node_id, "ServerIndex", 0)
        prefix = f"svr={server};" if server else ""
        if not uri or uri == UA_URI:
            return prefix + key
        return f"{prefix}nsu={uri.replace('%', '%25').replace(';', '%3B')};{key}"

    def _time(self, name: str, *stamps: datetime | None) -> datetime:
        """The first timestamp the server gave (a null one is none), or our clock; a time further ahead of our
        clock than CLOCK_AHEAD is a wrong server clock: counted once per connection, our clock used."""
        now = self._clock()
        for stamp in stamps:
            if stamp is None or stamp.year <= 1601:  # 1601-01-01 is OPC UA's null DateTime
                continue
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
            if stamp - now > CLOCK_AHEAD:
                if not self._clock_ahead_counted:
                    self._clock_ahead_counted = True
                    self.errors[CLOCK_AHEAD_ERROR] += 1
                    log.warning(
                        "%s: the server's time of %s is %s ahead of ours: its clock is wrong; using ours",
                        self.device_id,
                        name,
                        stamp - now,
                    )
                return now
            return stamp
        return now

    def event_reading(self, event: Any, events: OpcUaEvents) -> Reading:
        """An active alarm shows as its code and message; a cleared one as empty text."""
        fields = event.get_event_props_as_fields_dict()
        code = fields.get(events.code_field)
        message = fields.get("Message")
        active = fields.get(events.active_field) if events.active_field else None
        text = " ".join(str(_plain(v)) for v in (code, message) if v is not None and _plain(v) not in (None, ""))
        stamp = _plain(fields.get("Time"))
        time = self._time(events.signal, stamp if isinstance(stamp, datetime) else None)
        return Reading(events.signal, "" if _plain(active) is False else text, time)


def _read_both(nodes: Any) -> ua.ReadParameters:
    """A read of the nodes' values asking for both timestamps (asyncua's read_attributes asks for the source
    timestamp only, so a server without one would leave us no server time to fall back on)."""
    params = ua.ReadParameters()
    params.TimestampsToReturn = ua.TimestampsToReturn.Both
    params.NodesToRead = [ua.ReadValueId(NodeId=node.nodeid, AttributeId=ua.AttributeIds.Value) for node in nodes]
    return params


def _plain(value: Any) -> Any:
    value = getattr(value, "Value", value)  # Variant
    if isinstance(value, ua.LocalizedText):
        return value.Text
    return value
