"""Live values across processes through PostgreSQL LISTEN/NOTIFY. The writer notifies, in the transaction
that stores a batch, the latest value per (device, signal) of it, so every process hears of it on commit
and of nothing that was rolled back. Each app process keeps one listening connection; when that connection
is lost it reconnects with backoff and reads the latest values once, so what was committed while it was
away still reaches the board."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from datetime import datetime

import orjson
import psycopg

from telemetry.model import Partition, Quality, Sample
from telemetry.reader import TelemetryReader
from telemetry.sqlfiles import QUERIES

log = logging.getLogger(__name__)

CHANNEL = "fabhub_live"  # also named in sql/live.sql
PAYLOAD_LIMIT = 7900  # bytes; PostgreSQL refuses a NOTIFY payload of 8000 or more
# Characters of a text value announced (the table keeps it whole). A board shows a line of it, and one entry
# must fit a payload: even at 6 bytes a character (a control character escaped) it stays under the limit with
# the longest device id and signal name, so no text a device sends can make pg_notify refuse the batch.
TEXT_ANNOUNCED = 1000


def payloads(part: Partition) -> list[str]:
    """The latest value per (device, signal) of a batch as compact JSON arrays of
    [device, signal, value, time, quality], chunked under the NOTIFY payload limit. UTF-8 as it is, not
    escaped: a Chinese alarm text takes 3 bytes a character, not 6."""
    latest: dict[tuple[str, str], tuple[datetime, float | str, int]] = {}
    for s in (*part.numeric, *part.text):
        key = (s.device_id, s.signal)
        if key not in latest or latest[key][0] <= s.time:
            latest[key] = (s.time, s.value[:TEXT_ANNOUNCED] if isinstance(s.value, str) else s.value, s.quality)
    for time, device_id, state, quality in part.states:
        key = (device_id, "state")
        if key not in latest or latest[key][0] <= time:
            latest[key] = (time, state, quality)
    # orjson: a fifth of json.dumps' time per entry, and it writes UTF-8 as is and times as ISO 8601
    chunks: list[bytes] = []
    entries: list[bytes] = []
    size = 2
    for (device_id, signal), (time, value, quality) in latest.items():
        entry = orjson.dumps([device_id, signal, value, time, quality])
        if entries and size + len(entry) + 1 > PAYLOAD_LIMIT:
            chunks.append(b"[" + b",".join(entries) + b"]")
            entries, size = [], 2
        entries.append(entry)
        size += len(entry) + 1
    if entries:
        chunks.append(b"[" + b",".join(entries) + b"]")
    return [c.decode() for c in chunks]


def decode(payload: str) -> list[Sample]:
    return [
        Sample(datetime.fromisoformat(time), device_id, signal, value, Quality(quality))
        for device_id, signal, value, time, quality in json.loads(payload)
    ]


def latest_samples(latest: dict[str, list[dict]]) -> list[Sample]:
    """TelemetryReader.latest() as samples."""
    found = [
        Sample(r["time"], r["device_id"], r["signal"], r["value"], Quality(r["quality"]))
        for r in (*latest["numeric"], *latest["text"])
    ]
    found += [Sample(r["time"], r["device_id"], "state", r["state"], Quality(r["quality"])) for r in latest["states"]]
    return found


class LiveListener:
    """Hands every notified batch to `publish`. `check_every`: how long the line may stay silent before a
    round trip proves it alive (a peer that vanished without closing shows only then)."""

    def __init__(
        self,
        conninfo: str,
        reader: TelemetryReader,
        publish: Callable[[list[Sample]], None],
        *,
        backoff_first: float = 0.5,
        backoff_max: float = 10.0,
        check_every: float = 15.0,
    ) -> None:
        self._conninfo = conninfo
        self._reader = reader
        self._publish = publish
        self._backoff_first = backoff_first
        self._backoff_max = backoff_max
        self._check_every = check_every
        self.connects = 0

    async def run(self) -> None:
        failures = 0
        while True:
            connects = self.connects
            try:
                await self._listen()
            except (psycopg.Error, OSError) as exc:
                failures = 1 if self.connects > connects else failures + 1
                if failures == 1:
                    log.warning("live listener lost the database, reconnecting: %s", exc)
            delay = min(self._backoff_max, self._backoff_first * 2 ** min(failures - 1, 20))
            await asyncio.sleep(random.uniform(delay / 2, delay))

    async def _listen(self) -> None:
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True, application_name="fabhub-live")
        async with conn:
            await QUERIES.listen_live(conn)
            self.connects += 1
            if self.connects > 1:
                log.info("live listener is back")
            # listening before reading, so nothing committed in between is missed
            self._publish(latest_samples(await self._reader.latest()))
            while True:
                async for notice in conn.notifies(timeout=self._check_every):
                    try:
                        self._publish(decode(notice.payload))
                    except (ValueError, TypeError) as exc:
                        log.error("live listener: unreadable notice %.200r: %s", notice.payload, exc)
                await QUERIES.ping(conn)
