"""One rule for the times in API answers: the center's zone with its offset (2026-12-04T09:00:00+08:00),
whichever domain wrote the model and whatever zone the database or the clock handed back.

The zone is the app's setting, but answer models are declared once per module; so the app states the zone
for each request (`AnswerZone`, an ASGI middleware) and `Stamp` fields read it when they are written out.
A model dumped outside a request (a CLI, a job) keeps UTC."""

from __future__ import annotations

import re
from contextvars import ContextVar
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any

from pydantic import PlainSerializer

_answer_zone: ContextVar[tzinfo] = ContextVar("answer_zone", default=UTC)


def in_answer_zone(value: datetime) -> datetime:
    return value.astimezone(_answer_zone.get())


# A time in an answer: written out in the center's zone with its offset.
Stamp = Annotated[datetime, PlainSerializer(in_answer_zone, return_type=datetime, when_used="json")]


# An aware ISO 8601 time inside stored JSON (an audit entry's before and after).
_ISO_AWARE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")


def json_in_answer_zone(value: Any) -> Any:
    """Stored JSON with the times in it moved to the answer's zone: a snapshot written in UTC long ago reads
    like the rest of the answer."""
    if isinstance(value, str) and _ISO_AWARE.fullmatch(value):
        return in_answer_zone(datetime.fromisoformat(value)).isoformat()
    if isinstance(value, dict):
        return {k: json_in_answer_zone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_in_answer_zone(v) for v in value]
    return value


# Stored JSON in an answer, its times written like a `Stamp`.
StampedJson = Annotated[Any, PlainSerializer(json_in_answer_zone, when_used="json")]


class AnswerZone:
    """States the center's zone for every request it wraps, so each `Stamp` in the answer is written in it."""

    def __init__(self, app: Any, zone: tzinfo) -> None:
        self.app = app
        self.zone = zone

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        token = _answer_zone.set(self.zone)
        try:
            await self.app(scope, receive, send)
        finally:
            _answer_zone.reset(token)
