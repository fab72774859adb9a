"""Sample builders shared by the tests."""

from datetime import UTC, datetime, timedelta

from telemetry import Sample

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday, 16:00 in Jingjiang


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def series(device: str, signal: str, values, start: float = 0, step: float = 1, quality: int = 0):
    return [Sample(at(start + i * step), device, signal, v, quality) for i, v in enumerate(values)]


def fixed_clock(now: datetime):
    return lambda: now
