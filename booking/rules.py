"""The class rules, after NEMO's reservation rules, as pure functions: each broken rule is reported with the
rule's name and a sentence a customer understands. Staff may book past them with a logged reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from booking.catalogue import Rules


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    message: str


def local_midnight(t: datetime, zone: ZoneInfo) -> datetime:
    local = t.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def is_aligned(t: datetime, step: timedelta, zone: ZoneInfo) -> bool:
    """On the grid of `step` counted from the center's local midnight."""
    return (t - local_midnight(t, zone)) % step == timedelta(0)


def align_up(t: datetime, step: timedelta, zone: ZoneInfo) -> datetime:
    midnight = local_midnight(t, zone)
    rest = (t - midnight) % step
    return t if rest == timedelta(0) else t + (step - rest)


def align_down(t: datetime, step: timedelta, zone: ZoneInfo) -> datetime:
    return t - (t - local_midnight(t, zone)) % step


def _hours(d: timedelta) -> str:
    hours = d / timedelta(hours=1)
    return f"{hours:g} h" if hours >= 1 else f"{d / timedelta(minutes=1):g} min"


def check(rules: Rules, start: datetime, end: datetime, now: datetime, zone: ZoneInfo) -> list[Violation]:
    found: list[Violation] = []
    length = end - start
    if start < now:
        found.append(Violation("past", "the slot starts in the past"))
    if length < rules.min_booking:
        found.append(Violation("min_booking", f"a booking lasts at least {_hours(rules.min_booking)}"))
    if length > rules.max_booking:
        found.append(Violation("max_booking", f"a booking lasts at most {_hours(rules.max_booking)}"))
    if not (is_aligned(start, rules.granularity, zone) and is_aligned(end, rules.granularity, zone)):
        found.append(
            Violation("granularity", f"bookings start and end on a {_hours(rules.granularity)} grid from midnight")
        )
    if start > now + timedelta(days=rules.horizon_days):
        found.append(Violation("horizon", f"bookings open {rules.horizon_days} days ahead"))
    return found


def future_hours_violation(rules: Rules, already: timedelta, wanted: timedelta) -> Violation | None:
    """`already`: the organization's booked time from now on in this class."""
    limit = timedelta(hours=rules.max_future_hours_per_org)
    if already + wanted <= limit:
        return None
    return Violation(
        "max_future_hours_per_org",
        f"your organization may hold at most {_hours(limit)} of future bookings in this class; "
        f"it holds {_hours(already)} and this booking adds {_hours(wanted)}",
    )
