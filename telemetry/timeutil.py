"""Minute arithmetic shared by the reader and the rollup job (rollups are one minute wide)."""

from datetime import UTC, datetime, timedelta

MINUTE = timedelta(minutes=1)
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def floor_minute(t: datetime) -> datetime:
    return t - (t - _EPOCH) % MINUTE


def ceil_minute(t: datetime) -> datetime:
    floored = floor_minute(t)
    return floored if floored == t else floored + MINUTE
