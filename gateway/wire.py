"""The wire format between site gateways and ingest workers, through the central broker.

Topic `fabhub/v1/<site>/<device_id>/samples`, one message per device per gateway batch, QoS 1. Payload
(JSON, versioned by "v"): {"v": 1, "device": id, "items": [...]} where an item is
  ["s", time, signal, value, quality]                       a sample or state
  ["c", time, signal, raw, modulus, max_per_s, epoch]       a cumulative counter's raw value
  ["r", time | null, signal, value, reason]                 refused at the gateway, for the quarantine
with times in ISO 8601 with their offset. An item carries everything its store keys on (device, signal,
time; the quarantine's value and reason), so a redelivered message stores nothing twice. A payload that
is not this becomes one quarantine row naming why, keyed by its bytes, so a redelivery of it is one row too.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import orjson

from telemetry.model import Count, Rejected, Sample, reject, valid_device_id

VERSION = 1
SITE = re.compile(r"^[a-z0-9-]{1,64}$")
INVALID_DEVICE = "_invalid"  # the topic level of items whose device id cannot be a topic level
SUBSCRIPTION = f"fabhub/v{VERSION}/+/+/samples"
MAX_ITEMS = 2000  # per message: keeps a message far below broker limits and a redelivery small
Item = Sample | Count | Rejected


def topic(site: str, device_id: str) -> str:
    return f"fabhub/v{VERSION}/{site}/{device_id if valid_device_id(device_id) else INVALID_DEVICE}/samples"


def encode(site: str, items: Sequence[Item]) -> list[tuple[str, bytes]]:
    """(topic, payload) per device, items in their order."""
    by_device: dict[str, list[list]] = defaultdict(list)
    for item in items:
        by_device[str(item[1])].append(_row(item))
    out = []
    for device_id, rows in by_device.items():
        where = topic(site, device_id)
        for start in range(0, len(rows), MAX_ITEMS):
            body = {"v": VERSION, "device": device_id, "items": rows[start : start + MAX_ITEMS]}
            out.append((where, orjson.dumps(body)))
    return out


def _row(item: Item) -> list:
    if type(item) is Count:
        return ["c", item.time.isoformat(), *item[2:]]
    if type(item) is Rejected:
        return ["r", item.time.isoformat() if item.time is not None else None, *item[2:]]
    time, _, signal, value, quality = item
    if isinstance(value, float) and not math.isfinite(value):  # JSON has no NaN: refused here, as the writer would
        return _row(reject(item, "value is not finite"))
    if not isinstance(time, datetime):
        return _row(reject(item, "timestamp without time zone"))
    return ["s", time.isoformat(), signal, value, int(quality)]


class Malformed(ValueError):
    pass


def decode(topic_name: str, payload: bytes | bytearray) -> list[Item]:
    """The items of one message; a payload that is not the format is one Rejected naming why."""
    try:
        return _decode(payload)
    except Malformed as exc:
        return [_refused(topic_name, payload, str(exc))]
    except (ValueError, TypeError, KeyError, IndexError) as exc:  # orjson's JSONDecodeError is a ValueError
        return [_refused(topic_name, payload, f"{type(exc).__name__}: {exc}")]


def _decode(payload: bytes | bytearray) -> list[Item]:
    body = orjson.loads(payload)
    if not isinstance(body, dict):
        raise Malformed("not a JSON object")
    if body.get("v") != VERSION:
        raise Malformed(f"unsupported version {body.get('v')!r}")
    device_id, rows = body.get("device"), body.get("items")
    if not isinstance(device_id, str) or not isinstance(rows, list):
        raise Malformed("device or items missing")
    return [_item(device_id, row) for row in rows]


def _item(device_id: str, row: object) -> Item:
    if not isinstance(row, list) or not row:
        raise Malformed("an item is not a list")
    kind, *rest = row
    if kind == "s" and len(rest) == 4:
        time, signal, value, quality = rest
        return Sample(_time(time), device_id, signal, value, quality)
    if kind == "c" and len(rest) == 6:
        time, signal, raw, modulus, max_per_s, epoch = rest
        return Count(_time(time), device_id, signal, raw, modulus, max_per_s, epoch)
    if kind == "r" and len(rest) == 4:
        time, signal, value, reason = rest
        if not all(isinstance(x, str) for x in (signal, value, reason)):
            raise Malformed("a refused item's signal, value and reason are text")
        return Rejected(None if time is None else _time(time), device_id, signal, value, reason)
    raise Malformed(f"unknown item kind {kind!r} or wrong length {len(row)}")


def _time(value: object) -> datetime:
    if not isinstance(value, str):
        raise Malformed("a time is an ISO 8601 text")
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise Malformed("a time without its offset")
    return when


def _refused(topic_name: str, payload: bytes | bytearray, why: str) -> Rejected:
    levels = topic_name.split("/")
    device_id = levels[3] if len(levels) == 5 and valid_device_id(levels[3]) else "unknown"
    text = payload.decode(errors="replace")
    return reject((None, device_id, "payload", text), f"malformed payload: {why}"[:500])


def site_of(url_path: str) -> str:
    """The site name from a publish URL's path (`mqtts://host/<site>`)."""
    site = url_path.strip("/")
    if not SITE.match(site):
        raise ValueError(f"the publish URL's path names the site, [a-z0-9-]+ (got {site!r})")
    return site
