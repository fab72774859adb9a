"""The wire format between site gateways and ingest workers, through the central broker.

Topic `fabhub/v1/<site>/samples`, QoS 1, one message per gateway batch (split at MAX_ITEMS). Payload (JSON,
versioned by "v"): {"v": 1, "devices": {device_id: {kind: [column, ...], ...}, ...}}, a device's items of one
kind as columns of equal length:
  "s": [times, signals, values, qualities]                       samples and states
  "c": [times, signals, raws, moduli, max_per_s, epochs, units]   cumulative counters' raw values (units may be
                                                                  left out: a gateway of before decimal counters)
  "r": [times (or null), signals, values, reasons]                refused at the gateway, for the quarantine
with times in ISO 8601 with their offset. An item carries everything its store keys on (device, signal,
time; the quarantine's value and reason), so a redelivered message stores nothing twice. A payload that
is not this becomes one quarantine row naming why, keyed by its bytes, so a redelivery of it is one row too.

Why this shape (measured with bench/scale.py, 200 devices x 25 signals a batch):
- a message per batch, not per device: each message costs the publisher, the broker and the worker about
  100 us of Python whatever its size, at 25 items a message more than everything else the items cost;
- columns, not a list per item: a list per item made decoding allocate a container per item, and the
  garbage collector's passes over them cost the worker more than the parsing itself.
The site is the topic level that access control needs (a site's credentials publish under its own site).

Topic `fabhub/v1/<site>/health`, QoS 1, one message per health round of a publishing gateway (HealthSink.report),
versioned alike: {"v": 1, "gateway_id": id, "heartbeat": time, "figures": {spool_depth, spool_dropped,
writer_pending}, "devices": [{every field of DeviceStatus}, ...]}. The site is the topic's, as for samples.
Only the latest round matters (the table keeps the newest heartbeat), so it is neither spooled nor batched;
a payload that is not this is quarantined like a malformed samples message.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from itertools import repeat
from typing import Any, TypeVar

import orjson

from gateway.coordinator import DeviceStatus
from gateway.health import GatewayFigures, HealthReport
from gateway.spool import KIND_OF, KINDS, Item
from telemetry.model import Count, Rejected, Sample, reject

VERSION = 1
SITE = re.compile(r"^[a-z0-9-]{1,64}$")
SUBSCRIPTION = f"fabhub/v{VERSION}/+/samples"
HEALTH_SUBSCRIPTION = f"fabhub/v{VERSION}/+/health"
MAX_ITEMS = 2000  # per message: keeps a message far below broker limits and a redelivery small
UNKNOWN_DEVICE = "unknown"  # the quarantine's device for a payload that names none


def topic(site: str, what: str = "samples") -> str:
    return f"fabhub/v{VERSION}/{site}/{what}"


def is_health(topic_name: str) -> bool:
    return topic_name.endswith("/health")


def encode(site: str, items: Sequence[Item]) -> list[tuple[str, bytes]]:
    """(topic, payload) per MAX_ITEMS items; each device's items of a kind keep their order."""
    where = topic(site)
    out = []
    for start in range(0, len(items), MAX_ITEMS):
        devices: dict[str, dict[str, list[Item]]] = {}
        for item in items[start : start + MAX_ITEMS]:
            if type(item) is Sample:
                item = _checked(item)
            device_id = str(item[1])
            by_kind = devices.get(device_id)
            if by_kind is None:
                by_kind = devices[device_id] = {}
            rows = by_kind.get(KIND_OF[type(item)])
            if rows is None:
                rows = by_kind[KIND_OF[type(item)]] = []
            rows.append(item)
        body = {device: {kind: _columns(rows) for kind, rows in kinds.items()} for device, kinds in devices.items()}
        out.append((where, orjson.dumps({"v": VERSION, "devices": body})))  # orjson writes datetimes as ISO 8601
    return out


def _checked(sample: Sample) -> Item:
    """What JSON cannot carry is refused here, with the reason the writer would give."""
    time, value = sample[0], sample[3]
    if isinstance(value, float) and not math.isfinite(value):
        return reject(sample, "value is not finite")
    if not isinstance(time, datetime) or time.tzinfo is None:
        return reject(sample, "timestamp without time zone")
    return sample


def _columns(rows: list[Item]) -> list[tuple[object, ...]]:
    columns = list(zip(*rows, strict=True))
    del columns[1]  # the device: the key they are under
    return columns


class Malformed(ValueError):
    pass


T = TypeVar("T")


def decode(topic_name: str, payload: bytes | bytearray) -> list[Item]:
    """The items of one message; a payload that is not the format is one Rejected naming why."""
    out = _refusing(_decode, topic_name, payload)
    return [out] if isinstance(out, Rejected) else out


def _refusing(parse: Callable[[bytes | bytearray], T], topic_name: str, payload: bytes | bytearray) -> T | Rejected:
    try:
        return parse(payload)
    except Malformed as exc:
        return _refused(topic_name, payload, str(exc))
    except (ValueError, TypeError, KeyError, IndexError) as exc:  # orjson's JSONDecodeError is a ValueError
        return _refused(topic_name, payload, f"{type(exc).__name__}: {exc}")


def _body(payload: bytes | bytearray) -> dict[str, Any]:
    """A message's JSON object, of this version."""
    body = orjson.loads(payload)
    if not isinstance(body, dict):
        raise Malformed("not a JSON object")
    if body.get("v") != VERSION:
        raise Malformed(f"unsupported version {body.get('v')!r}")
    return body


def _decode(payload: bytes | bytearray) -> list[Item]:
    body = _body(payload)
    devices = body.get("devices")
    if not isinstance(devices, dict) or not all(isinstance(kinds, dict) for kinds in devices.values()):
        raise Malformed("devices missing or not a mapping of device ids to their items by kind")
    times: dict[str, datetime] = {}  # a batch's signals of one instant share its time: parsed once
    out: list[Item] = []
    for device_id, kinds in devices.items():
        for kind, columns in kinds.items():
            out.extend(_items(device_id, kind, columns, times))
    return out


def _items(device_id: str, kind: str, columns: object, times: dict[str, datetime]) -> map[Item]:
    cls = KINDS.get(kind)
    if cls is None:
        raise Malformed(f"unknown item kind {kind!r}")
    widths = (len(cls._fields) - 1, len(cls._fields) - 2) if cls is Count else (len(cls._fields) - 1,)
    if (
        not isinstance(columns, list)
        or len(columns) not in widths
        or not all(isinstance(c, list) and len(c) == len(columns[0]) for c in columns)
    ):
        raise Malformed(f"the {kind!r} items of {device_id} are not {widths[0]} columns of one length")
    when, *rest = columns
    if cls is Rejected:
        if not all(isinstance(x, str) for column in rest for x in column):
            raise Malformed("a refused item's signal, value and reason are text")
        stamps = [None if t is None else _time(t, times) for t in when]
    else:
        stamps = [_time(t, times) for t in when]
    return map(cls, stamps, repeat(device_id), *rest)


def _time(value: object, times: dict[str, datetime]) -> datetime:
    if not isinstance(value, str):
        raise Malformed("a time is an ISO 8601 text")
    when = times.get(value)
    if when is None:
        when = times[value] = datetime.fromisoformat(value)
        if when.tzinfo is None:
            raise Malformed("a time without its offset")
    return when


def encode_health(site: str, report: HealthReport) -> tuple[str, bytes]:
    """(topic, payload) of one health round; the site goes in the topic only."""
    body = {
        "v": VERSION,
        "gateway_id": report.gateway_id,
        "heartbeat": report.heartbeat,
        "figures": report.figures,
        "devices": list(report.statuses),
    }
    return topic(site, "health"), orjson.dumps(body)  # orjson writes dataclasses as objects, Counters as dicts


def decode_health(topic_name: str, payload: bytes | bytearray) -> HealthReport | Rejected:
    """The round of one health message; a payload that is not the format is a Rejected naming why."""
    parts = topic_name.split("/")
    if len(parts) != 4 or not SITE.match(parts[2]):
        return _refused(topic_name, payload, "the topic names no site")
    return _refusing(lambda body: _health(parts[2], body), topic_name, payload)


def _health(site: str, payload: bytes | bytearray) -> HealthReport:
    body = _body(payload)
    if body.keys() != {"v", "gateway_id", "heartbeat", "figures", "devices"}:
        raise Malformed("a health round has v, gateway_id, heartbeat, figures and devices, nothing else")
    devices = body["devices"]
    if not isinstance(devices, list):
        raise Malformed("devices is not a list")
    return HealthReport(
        _text(body["gateway_id"]),
        site,
        _stamp(body["heartbeat"]),
        [_record(DeviceStatus, _STATUS, d, f"devices[{n}]") for n, d in enumerate(devices)],
        _record(GatewayFigures, _FIGURES, body["figures"], "figures"),
    )


def _record(cls: Callable[..., T], checks: Mapping[str, Callable[[object], object]], value: object, what: str) -> T:
    """`cls` from a JSON object with exactly the fields of `checks`, each checked and converted."""
    if not isinstance(value, dict) or value.keys() != checks.keys():
        raise Malformed(f"{what} is not an object of {', '.join(checks)}")
    out = {}
    for name, check in checks.items():
        try:
            out[name] = check(value[name])
        except Malformed as exc:
            raise Malformed(f"{what}.{name}: {exc}") from None
    return cls(**out)


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise Malformed("not a non-empty text")
    return value


def _message(value: object) -> str:
    if not isinstance(value, str):
        raise Malformed("not a text")
    return value


def _count(value: object) -> int:
    if type(value) is not int or not 0 <= value < 1 << 63:
        raise Malformed("not a count")
    return value


def _stamp(value: object) -> datetime:
    return _time(value, {})


def _connection(value: object) -> str:
    if value not in CONNECTIONS:
        raise Malformed(f"not one of {', '.join(CONNECTIONS)}")
    return str(value)


def _errors(value: object) -> Counter[str]:
    if not isinstance(value, dict) or not all(type(n) is int and n >= 0 for n in value.values()):
        raise Malformed("not an object of counts")
    return Counter(value)


def _optional(check: Callable[[object], T]) -> Callable[[object], T | None]:
    return lambda value: None if value is None else check(value)


CONNECTIONS = ("connecting", "online", "offline")  # device_health's CHECK
_FIGURES = {"spool_depth": _count, "spool_dropped": _count, "writer_pending": _count}
_STATUS: dict[str, Callable[[object], object]] = {
    "device_id": _text,
    "protocol": _text,
    "connection": _connection,
    "since": _optional(_stamp),
    "last_sample": _optional(_stamp),
    "state": _optional(_text),
    "samples": _count,
    "quarantined": _count,
    "reconnects": _count,
    "last_error": _optional(_message),
    "errors": _errors,
}


def _refused(topic_name: str, payload: bytes | bytearray, why: str) -> Rejected:
    text = payload.decode(errors="replace")
    return reject((None, UNKNOWN_DEVICE, "payload", text), f"malformed payload on {topic_name}: {why}"[:500])


def site_of(url_path: str) -> str:
    """The site name from a publish URL's path (`mqtts://host/<site>`)."""
    site = url_path.strip("/")
    if not SITE.match(site):
        raise ValueError(f"the publish URL's path names the site, [a-z0-9-]+ (got {site!r})")
    return site
