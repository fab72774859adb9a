"""Every JSON answer of the API, read from the app's own OpenAPI document: a route added later is walked too,
and one whose parameters the caller did not supply is reported rather than skipped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
# Files, not JSON answers: their times are the exports' business (local wall time, stated in a header).
FILES = re.compile(r"\.(\{fmt\}|pdf|ics)$")


def stamps(value: Any) -> Iterator[str]:
    if isinstance(value, str) and TIMESTAMP.match(value):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from stamps(v)
    elif isinstance(value, list):
        for v in value:
            yield from stamps(v)


async def json_answers(
    client: httpx.AsyncClient, headers: dict[str, str], values: dict[str, str]
) -> list[tuple[str, Any]]:
    """(path, body) of every GET route answering JSON, its path and query parameters taken from `values` (a
    query parameter only when required or given). A route that does not answer 200 raises."""
    spec = (await client.get("/openapi.json")).json()
    answers: list[tuple[str, Any]] = []
    for path, operations in spec["paths"].items():
        get = operations.get("get")
        if get is None or FILES.search(path):
            continue
        params = {p["name"]: p for p in get.get("parameters", [])}
        missing = [n for n, p in params.items() if p.get("required") and n not in values]
        assert not missing, f"{path}: give a value for {missing}"
        url = path.format(**{n: values[n] for n, p in params.items() if p["in"] == "path"})
        query = {n: values[n] for n, p in params.items() if p["in"] == "query" and n in values}
        r = await client.get(url, params=query, headers=headers)
        assert r.status_code == 200, (url, query, r.status_code, r.text[:300])
        if r.headers["content-type"].startswith("application/json"):
            answers.append((path, r.json()))
    return answers


def times_off_zone(answers: list[tuple[str, Any]], offset: str) -> tuple[list[str], int]:
    """The times in the answers that are not written with `offset`, and how many times were seen."""
    wrong, seen = [], 0
    for path, body in answers:
        for stamp in stamps(body):
            seen += 1
            if not stamp.endswith(offset):
                wrong.append(f"{path}: {stamp}")
    return wrong, seen


# Lists that answer a plain array: bounded by the catalogue (classes, signals, reason codes, a user's
# qualifications per class) or reports over a window (OEE, the Pareto, a series); records answer in pages.
BOUNDED = {
    "/api/v1/classes",
    "/api/v1/users/{user_id}/qualifications",
    "/api/v1/oee",
    "/api/v1/utilisation",
    "/api/v1/oee/bookings/{booking_id}",
    "/api/v1/downtime/codes",
    "/api/v1/losses/pareto",
    "/api/v1/energy/devices",  # machines x days, at most 92 days
    "/api/v1/energy/customers",  # one row per customer of one month
    "/api/v1/telemetry/devices/{device_id}/signals",
    "/api/v1/telemetry/devices/{device_id}/signals/{signal}",
    "/api/v1/telemetry/devices/{device_id}/states",
}


def unpaged(answers: list[tuple[str, Any]]) -> set[str]:
    """Routes answering a plain array that are not bounded lists."""
    return {path for path, body in answers if isinstance(body, list)} - BOUNDED
