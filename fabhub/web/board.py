"""The technicians' live board: a tile per machine, grouped by class and colored by state, with the key
values, the time in the current state, the booking under way and any alarm. The page is rendered whole;
changes then arrive as server-sent events from the process's live fan-out (fed by PostgreSQL
LISTEN/NOTIFY, so a change written by any gateway reaches every app process), and `board.js` applies them.
A lost stream shows a banner and reconnects by itself, then fetches a fresh set of tiles."""

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from accounts.model import Principal
from booking.bookings import Bookings
from fabhub.web.live import LiveHub
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions
from gateway.health import UNKNOWN, HealthTable
from telemetry.model import Sample
from telemetry.reader import TelemetryReader

# What a tile shows; everything else stays off the wire.
SHOWN = ("state", "program", "progress_pct", "parts_total", "alarm", "print_error", "emergency_stop", "protective_stop")
TEMPERATURE = "temperature."
RECHECK_S = 30.0  # how often an open stream checks that its session still holds


def shown(signal: str) -> bool:
    return signal in SHOWN or signal.startswith(TEMPERATURE)


@dataclass(frozen=True)
class Machine:
    id: str
    name: str
    class_id: str


# The alarm signals the board words itself (in the reader's language, here and in board.js).
ALARM_WORDS = {"emergency_stop": "E-STOP", "protective_stop": "Protective stop", "print_error": "Error"}


@dataclass
class Tile:
    machine: Machine
    state: str = "unknown"
    since: datetime | None = None
    values: dict[str, Any] = field(default_factory=dict)
    booking: dict[str, Any] | None = None

    @property
    def temperature(self) -> tuple[str, float] | None:
        found = sorted((k, v) for k, v in self.values.items() if k.startswith(TEMPERATURE))
        return (found[0][0][len(TEMPERATURE) :], found[0][1]) if found else None

    @property
    def alarm(self) -> tuple[str, str] | None:
        """(what, detail): a stop or a printer's error (the page words it with ALARM_WORDS), or the machine's
        own alarm text as it sent it."""
        if self.values.get("emergency_stop") == 1:
            return ALARM_WORDS["emergency_stop"], ""
        if self.values.get("protective_stop") == 1:
            return ALARM_WORDS["protective_stop"], ""
        if self.values.get("print_error"):
            return ALARM_WORDS["print_error"], str(int(self.values["print_error"]))
        own = self.values.get("alarm") or None if self.state == "down" else None
        return (own, "") if own else None


class Board:
    """Builds the tiles from the database: states, latest values and the bookings under way; a device whose
    gateway stopped reporting (the device health table) is `unknown`, whatever state was stored last."""

    def __init__(
        self,
        machines: list[Machine],
        class_names: dict[str, tuple[str, str]],
        reader: TelemetryReader,
        health: HealthTable,
        bookings: Bookings,
        pool: Any,
        clock: Callable[[], datetime],
    ) -> None:
        self.machines = machines
        self.class_names = class_names
        self.reader = reader
        self.health = health
        self.bookings = bookings
        self.pool = pool
        self.clock = clock

    async def tiles(self, principal: Principal) -> list[tuple[str, list[Tile]]]:
        tiles = {m.id: Tile(m) for m in self.machines}
        for row in await self.reader.current_states(list(tiles)):
            tiles[row["device_id"]].state, tiles[row["device_id"]].since = row["state"], row["since"]
        now = self.clock()
        for device_id, health in (await self.health.devices(list(tiles), now)).items():
            if health["connection"] == UNKNOWN:  # its gateway stopped reporting: the stored state is stale
                tiles[device_id].state, tiles[device_id].since = UNKNOWN, health["since"]
        latest = await self.reader.latest()
        for row in [*latest["numeric"], *latest["text"]]:
            if row["device_id"] in tiles and shown(row["signal"]) and row["quality"] == 0:
                tiles[row["device_id"]].values[row["signal"]] = row["value"]
        async with self.pool.connection() as conn:
            current = await self.bookings.list(conn, principal, now, now + timedelta(seconds=1), limit=2000)
        for b in current:
            if b["status"] in ("confirmed", "in_progress") and b["device_id"] in tiles:
                tiles[b["device_id"]].booking = b
        groups: dict[str, list[Tile]] = {}
        for tile in tiles.values():
            groups.setdefault(tile.machine.class_id, []).append(tile)
        return list(groups.items())


def _encoder() -> Callable[[list[Sample]], str]:
    """Each batch goes to every open board: it is filtered and encoded once, for all of them (the hub hands
    them the same list; the last few encodings are kept, holding their batches so an id is never reused)."""
    recent: OrderedDict[int, tuple[list[Sample], str]] = OrderedDict()

    def encoded(batch: list[Sample]) -> str:
        found = recent.get(id(batch))
        if found is None:
            changes = [
                [s.device_id, s.signal, s.value, s.time.isoformat()]
                for s in batch
                if shown(s.signal) and s.quality == 0
            ]
            found = recent[id(batch)] = (batch, json.dumps(changes) if changes else "")
            if len(recent) > 16:
                recent.popitem(last=False)
        return found[1]

    return encoded


def make_router(pages: Pages, sessions: WebSessions, board: Board, hub: LiveHub) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    encoded = _encoder()
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py

    def class_name(request: Request, class_id: str) -> str:
        en, zh = board.class_names.get(class_id, (class_id, class_id))
        return zh if pages.texts(request).lang == "zh" else en

    async def context(request: Request, user: Principal) -> dict[str, Any]:
        texts = pages.texts(request)
        labels = {s: texts(s) for s in ("running", "setup", "idle", "down", "maintenance", "offline", "unknown")}
        groups = [(class_name(request, c), tiles) for c, tiles in await board.tiles(user)]
        alarms = {signal: texts(word) for signal, word in ALARM_WORDS.items()}
        return {"groups": groups, "labels": labels, "alarms": alarms, "now": board.clock()}

    @router.get("/board")
    async def page(request: Request, user: Visitor) -> HTMLResponse:
        return pages.render(request, "board.html", user, **await context(request, user))

    @router.get("/board/tiles")
    async def tiles(request: Request, user: Visitor) -> HTMLResponse:
        return pages.render(request, "tiles.html", user, **await context(request, user))

    @router.get("/board/events")
    async def events(request: Request, user: Visitor) -> EventSourceResponse:
        async def stream() -> AsyncIterator[ServerSentEvent]:
            recheck_at = time.monotonic() + RECHECK_S
            async with hub.subscribe() as queue:
                yield ServerSentEvent(event="hello", data="{}", retry=1000)
                while True:
                    try:
                        batch = await asyncio.wait_for(queue.get(), RECHECK_S)
                    except TimeoutError:
                        batch = None
                    if time.monotonic() >= recheck_at:
                        if not await sessions.still_admits(request):
                            yield ServerSentEvent(event="expired", data="{}")
                            return
                        recheck_at = time.monotonic() + RECHECK_S
                    if batch is None:
                        continue
                    if isinstance(batch, str):  # RESYNC, the one str the hub sends
                        yield ServerSentEvent(event="resync", data="{}")
                        continue
                    data = encoded(batch)
                    if data:
                        yield ServerSentEvent(event="samples", data=data)

        return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})

    return router
