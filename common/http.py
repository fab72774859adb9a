"""Values as they cross the HTTP edge, checked there once for every domain: ids as devices.yaml writes
them, database row ids, times with an offset in a range date arithmetic survives, and free text that
PostgreSQL can store."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, AwareDatetime

# Device, class and program ids, as devices.yaml writes them.
ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# A database row id in a path: a bigint, so a larger number is a 422 rather than an overflow in the query.
RowId = Annotated[int, Path(gt=0, le=2**63 - 1)]
EARLIEST_YEAR, LATEST_YEAR = 2000, 2199


def _plausible(value: datetime) -> datetime:
    # Checked on the written fields: converting a time near year 1 or 9999 to UTC would itself overflow.
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"times lie between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
    return value


# A time with its offset, in a range where date arithmetic cannot overflow (farther ones are typos).
Instant = Annotated[AwareDatetime, AfterValidator(_plausible)]


def _printable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text cannot contain NUL characters")
    return value


# Free text people type (purposes, reasons): PostgreSQL text cannot hold NUL.
Text = Annotated[str, AfterValidator(_printable)]
