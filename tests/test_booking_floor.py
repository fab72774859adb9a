"""The shop floor's calendar, tested on the service functions against a real database: maintenance windows
(against bookings and each other, under the device lock), opening hours and closed days, the scheduled
life-cycle pass (check-in from the machine's state, no-shows, completion) and the iCalendar feed."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from pydantic_core import to_jsonable_python

from accounts import audit
from accounts.model import Principal, Role
from accounts.users import active_principal
from booking import calendar, hours, lifecycle, maintenance
from booking.catalogue import Catalogue, sync
from booking.sqlfiles import QUERIES
from common.errors import Conflict, Forbidden, Invalid, NotFound
from fabhub.catalogue import catalogue_from
from fabhub.devices import load_devices
from telemetry.activity import activity_after_start
from tests.accounts_rig import make_org, make_user

REPO = Path(__file__).resolve().parent.parent
ZONE = ZoneInfo("Asia/Shanghai")
MIDNIGHT = datetime(2027, 3, 1, tzinfo=ZONE)  # a Monday
NOW = MIDNIGHT + timedelta(hours=7)


def local(day: int, hour: float) -> datetime:
    """`day` days after Monday 2027-03-01, at a local hour."""
    return MIDNIGHT + timedelta(days=day, hours=hour)


@dataclasses.dataclass
class Center:
    pool: object
    catalogue: Catalogue
    technician: Principal
    admin: Principal
    finance: Principal
    customer: Principal
    org_id: int


async def _principal(pool, role: Role, org_id: int | None = None) -> Principal:
    user_id = await make_user(pool, role, org_id)
    async with pool.connection() as conn:
        principal = await active_principal(conn, user_id)
    assert principal is not None
    return principal


async def _center(pool) -> Center:
    catalogue = catalogue_from(load_devices(REPO / "devices.yaml"))
    async with pool.connection() as conn, conn.transaction():
        await sync(conn, catalogue, NOW)
    org_id = await make_org(pool, name="靖江精工机械有限公司")
    return Center(
        pool,
        catalogue,
        await _principal(pool, Role.technician),
        await _principal(pool, Role.admin),
        await _principal(pool, Role.finance),
        await _principal(pool, Role.customer, org_id),
        org_id,
    )


@pytest.fixture
async def center(pool) -> Center:
    return await _center(pool)


@pytest.fixture
async def any_center(any_pool) -> Center:
    return await _center(any_pool)


async def book(
    conn,
    device_id: str,
    org_id: int,
    user_id: int,
    start: datetime,
    end: datetime,
    *,
    status: str = "confirmed",
    net: str = "100.00",
    subsidy: str = "0.00",
    purpose: str = "",
    program: str | None = None,
) -> int:
    gross = Decimal(net) + Decimal(subsidy)
    row = await (
        await conn.execute(
            """
            INSERT INTO booking (device_id, organization_id, user_id, created_by, during, status, purpose,
                                 "hourly_rate", "gross", "subsidy_program", "subsidy", "net", "created_at",
                                 "checked_in_at")
            VALUES (%s, %s, %s, %s, tstzrange(%s, %s), %s, %s, %s, %s, %s, %s, %s, %s, %s)
            RETURNING id
            """,
            (
                device_id,
                org_id,
                user_id,
                user_id,
                start,
                end,
                status,
                purpose,
                gross,
                gross,
                program,
                Decimal(subsidy),
                Decimal(net),
                start - timedelta(days=2),
                start if status in ("in_progress", "completed") else None,
            ),
        )
    ).fetchone()
    return row[0]


async def booking(conn, booking_id: int) -> dict:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT status, fee, late_cancellation, cancelled_by, cancelled_at, checked_in_at, finished_at"
            " FROM booking WHERE id = %s",
            (booking_id,),
        )
        names = [c.name for c in cur.description]
        return dict(zip(names, await cur.fetchone(), strict=True))


async def audits(conn, entity: str, entity_id: object) -> list[audit.AuditEntry]:
    return await audit.entries(conn, entity=entity, entity_id=str(entity_id))


# -- maintenance windows ---------------------------------------------------------------------------------


async def test_maintenance_over_a_booking_is_refused_then_cancels_it_free_of_charge(center):
    c = center
    async with c.pool.connection() as conn:
        hit = await book(conn, "cnc-01", c.org_id, c.customer.id, local(1, 9), local(1, 11))
        before = await book(conn, "cnc-01", c.org_id, c.customer.id, local(1, 8), local(1, 9))
        other_device = await book(conn, "cnc-02", c.org_id, c.customer.id, local(1, 10), local(1, 12))
        await book(conn, "cnc-01", c.org_id, c.customer.id, local(1, 12), local(1, 13), status="cancelled")

    async with c.pool.connection() as conn:
        with pytest.raises(Conflict) as refused:
            await maintenance.create(
                conn, c.technician, "cnc-01", local(1, 10), local(1, 14), "spindle bearing", False, NOW
            )
    assert refused.value.status == 409
    assert refused.value.extra["bookings"] == [
        {
            "id": hit,
            "organization_id": c.org_id,
            "organization_name": "靖江精工机械有限公司",
            "start": local(1, 9),
            "end": local(1, 11),
            "status": "confirmed",
        }
    ]
    assert "cancel_bookings" in refused.value.detail
    assert to_jsonable_python(refused.value.extra)["bookings"][0]["id"] == hit  # the handler can send it
    async with c.pool.connection() as conn:
        assert await maintenance.list(conn, "cnc-01", local(0, 0), local(3, 0)) == []  # nothing left behind
        assert (await booking(conn, hit))["status"] == "confirmed"

    async with c.pool.connection() as conn:
        window = await maintenance.create(
            conn, c.technician, "cnc-01", local(1, 10), local(1, 14), "spindle bearing", True, NOW
        )
    assert [b["id"] for b in window["cancelled_bookings"]] == [hit]
    assert window["device_id"] == "cnc-01" and window["reason"] == "spindle bearing"
    assert (window["start"], window["end"]) == (local(1, 10), local(1, 14))
    async with c.pool.connection() as conn:
        cancelled = await booking(conn, hit)
        assert cancelled["status"] == "cancelled"
        assert cancelled["fee"] == Decimal("0.00") and cancelled["late_cancellation"] is False
        assert cancelled["cancelled_by"] == c.technician.id and cancelled["cancelled_at"] == NOW
        for untouched in (before, other_device):
            assert (await booking(conn, untouched))["status"] == "confirmed"
        [entry] = await audits(conn, "booking", hit)
        assert entry.action == "cancel" and entry.reason == "maintenance: spindle bearing"
        assert entry.actor_id == c.technician.id
        assert entry.before["status"] == "confirmed" and entry.after["status"] == "cancelled"
        [created] = await audits(conn, "maintenance_window", window["id"])
        assert created.action == "create" and created.after["reason"] == "spindle bearing"
        listed = await maintenance.list(conn, None, local(1, 0), local(2, 0))
        assert [w["id"] for w in listed] == [window["id"]]


async def test_maintenance_never_covers_time_already_used(center):
    c = center
    async with c.pool.connection() as conn:
        done = await book(conn, "cnc-02", c.org_id, c.customer.id, local(-2, 9), local(-2, 11), status="completed")
        running = await book(conn, "cnc-02", c.org_id, c.customer.id, local(0, 6), local(0, 9), status="in_progress")
    for start in (local(-2, 8), local(0, 7)):
        async with c.pool.connection() as conn:
            with pytest.raises(Conflict) as refused:
                await maintenance.create(conn, c.technician, "cnc-02", start, local(0, 12), "repair", True, NOW)
        assert {b["status"] for b in refused.value.extra["bookings"]} <= {"completed", "in_progress"}
    async with c.pool.connection() as conn:
        assert (await booking(conn, done))["status"] == "completed"
        assert (await booking(conn, running))["status"] == "in_progress"
        assert await maintenance.list(conn, "cnc-02", local(-3, 0), local(1, 0)) == []


async def test_overlapping_maintenance_windows_conflict(center):
    c = center
    async with c.pool.connection() as conn:
        first = await maintenance.create(
            conn, c.technician, "robot-01", local(2, 8), local(2, 12), "calibration", False, NOW
        )
        with pytest.raises(Conflict) as overlap:
            await maintenance.create(conn, c.technician, "robot-01", local(2, 11), local(2, 13), "gripper", False, NOW)
        assert overlap.value.status == 409
        assert [w["id"] for w in overlap.value.extra["maintenance"]] == [first["id"]]
        # Touching windows and other devices are fine.
        touching = await maintenance.create(
            conn, c.technician, "robot-01", local(2, 12), local(2, 13), "gripper", False, NOW
        )
        await maintenance.create(conn, c.admin, "robot-02", local(2, 11), local(2, 13), "gripper", False, NOW)
        # A cancelled window no longer blocks.
        await maintenance.cancel(conn, c.technician, first["id"], NOW)
        again = await maintenance.create(conn, c.technician, "robot-01", local(2, 9), local(2, 11), "redo", False, NOW)
        assert [w["id"] for w in await maintenance.list(conn, "robot-01", local(2, 0), local(3, 0))] == [
            again["id"],
            touching["id"],
        ]


async def test_maintenance_refuses_bad_requests(center):
    c = center
    args = ("spindle", False, NOW)
    async with c.pool.connection() as conn:
        await conn.execute("UPDATE device SET retired_at = %s WHERE id = 'printer-03'", (NOW,))
        with pytest.raises(NotFound):
            await maintenance.create(conn, c.technician, "cnc-99", local(1, 8), local(1, 9), *args)
        with pytest.raises(Invalid, match="retired"):
            await maintenance.create(conn, c.technician, "printer-03", local(1, 8), local(1, 9), *args)
        with pytest.raises(Invalid, match="end after"):
            await maintenance.create(conn, c.technician, "cnc-01", local(1, 9), local(1, 9), *args)
        with pytest.raises(Invalid, match="ended"):
            await maintenance.create(conn, c.technician, "cnc-01", local(0, 5), local(0, 6), *args)
        with pytest.raises(Invalid, match="reason"):
            await maintenance.create(conn, c.technician, "cnc-01", local(1, 8), local(1, 9), "  ", False, NOW)
        for who in (c.customer, c.finance):
            with pytest.raises(Forbidden):
                await maintenance.create(conn, who, "cnc-01", local(1, 8), local(1, 9), *args)
        assert await maintenance.list(conn, None, local(0, 0), local(7, 0)) == []


async def test_cancelling_a_window_before_during_and_after_it(center):
    c = center
    async with c.pool.connection() as conn:
        future = await maintenance.create(conn, c.technician, "cnc-02", local(1, 8), local(1, 10), "oil", False, NOW)
        running = await maintenance.create(conn, c.technician, "cnc-01", local(0, 6), local(0, 12), "oil", False, NOW)
        later = NOW + timedelta(hours=1)

        cancelled = await maintenance.cancel(conn, c.technician, future["id"], later)
        assert cancelled["cancelled_at"] == later
        with pytest.raises(Conflict, match="already"):
            await maintenance.cancel(conn, c.technician, future["id"], later)

        ended = await maintenance.cancel(conn, c.admin, running["id"], later)
        # Under way: it ends now and the hours it blocked stay on record.
        assert ended["cancelled_at"] is None and (ended["start"], ended["end"]) == (local(0, 6), later)
        with pytest.raises(Conflict, match="ended"):
            await maintenance.cancel(conn, c.technician, running["id"], later + timedelta(minutes=1))

        with pytest.raises(NotFound):
            await maintenance.cancel(conn, c.technician, 987654, later)
        with pytest.raises(Forbidden):
            await maintenance.cancel(conn, c.finance, future["id"], later)

        assert [w["id"] for w in await maintenance.list(conn, None, local(0, 0), local(2, 0))] == [running["id"]]
        assert [e.action for e in await audits(conn, "maintenance_window", future["id"])] == ["cancel", "create"]
        [end_entry, _] = await audits(conn, "maintenance_window", running["id"])
        assert end_entry.action == "end" and end_entry.before["end"] != end_entry.after["end"]


async def test_a_booking_being_decided_holds_maintenance_off_until_it_commits(center):
    """Bookings hold the device lock shared; maintenance waits for it, then sees the booking and refuses."""
    c = center
    async with c.pool.connection() as booker, booker.transaction():
        await QUERIES.lock_for_booking(booker, organization_id=c.org_id, device_ids=["cnc-01"])

        async def technician():
            async with c.pool.connection() as conn:
                return await maintenance.create(
                    conn, c.technician, "cnc-01", local(1, 8), local(1, 12), "spindle", False, NOW
                )

        task = asyncio.create_task(technician())
        await asyncio.sleep(0.5)
        assert not task.done()  # waiting on the device lock
        booked = await book(booker, "cnc-01", c.org_id, c.customer.id, local(1, 9), local(1, 10))
    with pytest.raises(Conflict) as refused:
        await task
    assert [b["id"] for b in refused.value.extra["bookings"]] == [booked]


# -- opening hours and closed days -----------------------------------------------------------------------


async def open_hours(conn, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    row = await (await conn.execute("SELECT booking_open_hours(%s, %s, %s)", (start, end, ZONE.key))).fetchone()
    return [(r.lower.astimezone(ZONE), r.upper.astimezone(ZONE)) for r in row[0]]


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ([(1, "08:00", "12:00"), (1, "11:00", "14:00")], "weekday 1: 08:00-12:00 overlaps 11:00-14:00"),
        ([(1, "08:00", "20:00"), (1, "09:00", "10:00")], "overlaps"),
        ([(2, "12:00", "12:00")], "opens must be before closes"),
        ([(2, "13:00", "12:00")], "opens must be before closes"),
        ([(3, "08:00", "00:00")], "use 24:00 for midnight"),
        ([(8, "08:00", "12:00")], "weekday must be 1 (Monday) to 7 (Sunday)"),
        ([(0, "08:00", "12:00")], "weekday must be 1"),
        ([(1, "24:00", "24:00")], "opens must be a time"),
        ([(1, "08:00", "25:00")], "closes must be a time"),
        ([(1, "8h", "12:00")], "opens must be a time"),
        ([(1, "08:60", "12:00")], "opens must be a time"),
    ],
)
def test_opening_hours_validation(pattern, reason):
    with pytest.raises(Invalid) as bad:
        hours.validate([hours.Opening(*p) for p in pattern])
    assert bad.value.status == 422
    assert reason in bad.value.detail and bad.value.extra["problems"]


def test_opening_hours_are_normalised_and_sorted():
    pattern = [hours.Opening(2, "0:00", "6:00"), hours.Opening(1, "13:00", "24:00"), hours.Opening(1, "8:00", "13:00")]
    assert hours.validate(pattern) == [
        hours.Opening(1, "08:00", "13:00"),
        hours.Opening(1, "13:00", "24:00"),
        hours.Opening(2, "00:00", "06:00"),
    ]


async def test_replaced_pattern_and_closed_days_shape_the_open_hours(center):
    c = center
    async with c.pool.connection() as conn:
        initial = await hours.opening_hours(conn)
        assert hours.Opening(1, "08:00", "20:00") in initial and len(initial) == 6
        assert await open_hours(conn, local(0, 0), local(1, 0)) == [(local(0, 8), local(0, 20))]

        wednesday = await book(conn, "cnc-01", c.org_id, c.customer.id, local(2, 9), local(2, 11))
        # Monday 10:00 to Tuesday 06:00 overnight, Tuesday afternoon; Wednesday closed from now on.
        pattern = [
            hours.Opening(1, "10:00", "24:00"),
            hours.Opening(2, "00:00", "06:00"),
            hours.Opening(2, "14:00", "18:00"),
        ]
        change = await hours.replace_opening_hours(conn, c.admin, pattern, NOW, ZONE)
        assert change.intervals == pattern
        assert [b["id"] for b in change.bookings_outside_hours] == [wednesday]
        assert await hours.opening_hours(conn) == pattern
        assert await open_hours(conn, local(0, 0), local(3, 0)) == [
            (local(0, 10), local(1, 6)),
            (local(1, 14), local(1, 18)),
        ]
        [entry] = await audits(conn, "opening_hours", "weekly")
        assert entry.action == "replace" and len(entry.before) == 6
        assert entry.after == [
            {"weekday": 1, "opens": "10:00", "closes": "24:00"},
            {"weekday": 2, "opens": "00:00", "closes": "06:00"},
            {"weekday": 2, "opens": "14:00", "closes": "18:00"},
        ]
        # Putting the same pattern again changes nothing and logs nothing.
        await hours.replace_opening_hours(conn, c.admin, list(reversed(pattern)), NOW, ZONE)
        assert len(await audits(conn, "opening_hours", "weekly")) == 1

        tuesday = local(1, 0).date()
        tuesday_booking = await book(conn, "cnc-02", c.org_id, c.customer.id, local(1, 14), local(1, 16))
        closed = await hours.put_closed_day(conn, c.admin, tuesday, " Spring festival ", NOW, ZONE)
        assert closed["reason"] == "Spring festival"
        assert [b["id"] for b in closed["bookings_outside_hours"]] == [tuesday_booking]
        # Monday evening still runs to midnight; nothing of Tuesday is open.
        assert await open_hours(conn, local(0, 0), local(3, 0)) == [(local(0, 10), local(1, 0))]
        closed = await hours.closed_days(conn, local(0, 0).date(), local(7, 0).date())
        assert [(d["day"], d["reason"]) for d in closed] == [(tuesday, "Spring festival")]
        await hours.put_closed_day(conn, c.admin, tuesday, "Qingming", NOW, ZONE)
        await hours.delete_closed_day(conn, c.admin, tuesday, NOW)
        assert await open_hours(conn, local(1, 0), local(2, 0)) == [
            (local(1, 0), local(1, 6)),
            (local(1, 14), local(1, 18)),
        ]
        assert [
            (e.action, e.before, e.after) for e in reversed(await audits(conn, "closed_day", tuesday.isoformat()))
        ] == [
            ("create", None, {"day": tuesday.isoformat(), "reason": "Spring festival"}),
            (
                "update",
                {"day": tuesday.isoformat(), "reason": "Spring festival"},
                {"day": tuesday.isoformat(), "reason": "Qingming"},
            ),
            ("delete", {"day": tuesday.isoformat(), "reason": "Qingming"}, None),
        ]

        with pytest.raises(NotFound):
            await hours.delete_closed_day(conn, c.admin, tuesday, NOW)
        with pytest.raises(Invalid, match="reason"):
            await hours.put_closed_day(conn, c.admin, tuesday, "   ", NOW, ZONE)
        with pytest.raises(Forbidden):
            await hours.replace_opening_hours(conn, c.technician, pattern, NOW, ZONE)
        with pytest.raises(Forbidden):
            await hours.put_closed_day(conn, c.technician, tuesday, "x", NOW, ZONE)
        with pytest.raises(Invalid):
            await hours.replace_opening_hours(conn, c.admin, [hours.Opening(1, "09:00", "08:00")], NOW, ZONE)
        assert await hours.opening_hours(conn) == pattern  # a refused pattern changes nothing


# -- the life-cycle pass ---------------------------------------------------------------------------------


async def states(conn, *rows: tuple[str, datetime, str]) -> None:
    for device_id, time, state in rows:
        await conn.execute(
            "INSERT INTO telemetry_state (time, device_id, state) VALUES (%s, %s, %s)", (time, device_id, state)
        )


async def test_lifecycle_checks_in_from_machine_state_marks_no_shows_and_completes(any_center):
    c = any_center
    now = NOW.astimezone(UTC)
    h, m = timedelta(hours=1), timedelta(minutes=1)
    s = now - h  # most bookings started an hour ago; the no-show threshold is 30 min for every class
    org, user = c.org_id, c.customer.id
    async with c.pool.connection() as conn:
        no_show = await book(conn, "cnc-01", org, user, s, now + h, net="360.00")
        finished = await book(conn, "cnc-01", org, user, now - 4 * h, now - 2 * h, status="in_progress")
        late_start = await book(conn, "cnc-02", org, user, s, now + h)
        already_running = await book(conn, "robot-01", org, user, s, now + h)
        setup_at_start = await book(conn, "robot-02", org, user, s, now + h)
        long_past = await book(conn, "robot-02", org, user, now - 6 * h, now - 4 * h)
        idle_at_start = await book(conn, "printer-01", org, user, s, now + h, net="100.00")
        not_due = await book(conn, "printer-02", org, user, now - 20 * m, now + h)
        cancelled = await book(conn, "printer-03", org, user, s, now + h, status="cancelled")
        await states(
            conn,
            ("cnc-01", s - 10 * m, "idle"),
            ("cnc-01", s + 40 * m, "running"),  # after the threshold: too late
            ("cnc-02", s - 2 * h, "offline"),
            ("cnc-02", s + 10 * m, "running"),
            ("robot-01", s - 3 * h, "running"),  # still running when the booking starts
            ("robot-02", now - 6 * h + 30 * m, "running"),  # exactly at the threshold counts
            ("robot-02", now - 4 * h, "idle"),
            ("robot-02", s, "setup"),
            ("printer-01", s - 3 * h, "running"),
            ("printer-01", s - 2 * h, "idle"),
            ("printer-03", s, "running"),
        )

    async with c.pool.connection() as conn, conn.transaction():
        counts = await lifecycle.advance(conn, now, c.catalogue, ZONE, activity_after_start)
    # long_past goes confirmed -> in_progress -> completed in one pass.
    assert counts == {"in_progress": 4, "no_show": 2, "completed": 2}

    async with c.pool.connection() as conn:
        got = {
            name: await booking(conn, b)
            for name, b in [
                ("no_show", no_show),
                ("finished", finished),
                ("late_start", late_start),
                ("already_running", already_running),
                ("setup_at_start", setup_at_start),
                ("long_past", long_past),
                ("idle_at_start", idle_at_start),
                ("not_due", not_due),
                ("cancelled", cancelled),
            ]
        }
        assert got["no_show"]["status"] == "no_show" and got["no_show"]["fee"] == Decimal("360.00")
        assert got["idle_at_start"]["status"] == "no_show" and got["idle_at_start"]["fee"] == Decimal("50.00")
        assert got["late_start"]["status"] == "in_progress" and got["late_start"]["checked_in_at"] == s + 10 * m
        assert got["already_running"]["status"] == "in_progress" and got["already_running"]["checked_in_at"] == s
        assert got["setup_at_start"]["status"] == "in_progress" and got["setup_at_start"]["checked_in_at"] == s
        assert got["finished"]["status"] == "completed" and got["finished"]["finished_at"] == now - 2 * h
        assert got["long_past"]["status"] == "completed"
        assert got["long_past"]["checked_in_at"] == now - 6 * h + 30 * m
        assert got["long_past"]["finished_at"] == now - 4 * h
        assert got["not_due"]["status"] == "confirmed" and got["cancelled"]["status"] == "cancelled"
        entries = [e for e in await audit.entries(conn, entity="booking", limit=100) if e.actor == lifecycle.ACTOR]
        assert sorted(e.action for e in entries) == ["check_in"] * 4 + ["finish"] * 2 + ["no_show"] * 2
        [no_show_entry] = await audits(conn, "booking", no_show)
        assert no_show_entry.after == {"status": "no_show", "fee": "360.00"} and no_show_entry.actor_id is None

    async with c.pool.connection() as conn, conn.transaction():
        assert await lifecycle.advance(conn, now, c.catalogue, ZONE, activity_after_start) == {
            "in_progress": 0,
            "no_show": 0,
            "completed": 0,
        }
    async with c.pool.connection() as conn:
        assert {name: await booking(conn, b) for name, b in [("no_show", no_show), ("late_start", late_start)]} == {
            "no_show": got["no_show"],
            "late_start": got["late_start"],
        }

    later = now + h + m
    async with c.pool.connection() as conn, conn.transaction():
        counts = await lifecycle.advance(conn, later, c.catalogue, ZONE, activity_after_start)
    # printer-02 never reported a state: unknown is not absence, so no no-show fee; it is trusted and, its
    # slot being over, completed.
    assert counts == {"in_progress": 1, "no_show": 0, "completed": 4}
    async with c.pool.connection() as conn:
        trusted = await booking(conn, not_due)
        assert trusted["status"] == "completed" and trusted["fee"] == Decimal("0.00")
        check_in = next(e for e in await audits(conn, "booking", not_due) if e.action == "check_in")
        assert "on trust" in check_in.reason
        assert (await booking(conn, late_start))["finished_at"] == now + h


async def test_lifecycle_takes_the_threshold_from_the_catalogue(center):
    c = center
    printer = c.catalogue.classes["printer"]
    quick = dataclasses.replace(printer, rules=dataclasses.replace(printer.rules, no_show_after=timedelta(minutes=15)))
    catalogue = dataclasses.replace(c.catalogue, classes={**c.catalogue.classes, "printer": quick})
    now = NOW.astimezone(UTC)
    async with c.pool.connection() as conn:
        b = await book(
            conn, "printer-01", c.org_id, c.customer.id, now - timedelta(minutes=20), now + timedelta(hours=1)
        )
        await states(conn, ("printer-01", now - timedelta(hours=1), "idle"))  # online, and not used
    async with c.pool.connection() as conn, conn.transaction():
        assert (await lifecycle.advance(conn, now, c.catalogue, ZONE, activity_after_start))["no_show"] == 0
        assert (await lifecycle.advance(conn, now, catalogue, ZONE, activity_after_start))["no_show"] == 1
    async with c.pool.connection() as conn:
        assert (await booking(conn, b))["status"] == "no_show"


async def test_idempotency_keys_expire_after_a_day(center):
    c = center
    now = NOW.astimezone(UTC)
    async with c.pool.connection() as conn:
        for key, age in (("old", timedelta(hours=25)), ("fresh", timedelta(hours=23))):
            await conn.execute(
                "INSERT INTO idempotency_key (user_id, key, request_sha256, created_at) VALUES (%s, %s, %s, %s)",
                (c.customer.id, key, b"\x00" * 32, now - age),
            )
        assert await lifecycle.expire_idempotency_keys(conn, now) == 1
        assert await lifecycle.expire_idempotency_keys(conn, now) == 0
        keys = await (await conn.execute("SELECT key FROM idempotency_key")).fetchall()
    assert keys == [("fresh",)]


# -- the calendar feed -----------------------------------------------------------------------------------


async def test_calendar_feed_holds_the_organizations_bookings_only(center):
    c = center
    other_org = await make_org(c.pool, name="泰州智造科技有限公司")
    other_user = await make_user(c.pool, Role.customer, other_org)
    now = NOW
    async with c.pool.connection() as conn:
        mine = await book(
            conn,
            "cnc-01",
            c.org_id,
            c.customer.id,
            local(1, 9),
            local(1, 11),
            net="180.00",
            subsidy="180.00",
            program="jingjiang-sme",
            purpose="bracket prototype, batch 2",
        )
        struck = await book(conn, "cnc-02", c.org_id, c.customer.id, local(1, 9), local(1, 11), status="cancelled")
        missed = await book(conn, "robot-01", c.org_id, c.customer.id, local(-1, 9), local(-1, 11), status="no_show")
        old = await book(conn, "robot-01", c.org_id, c.customer.id, local(-100, 9), local(-100, 11), status="completed")
        theirs = await book(conn, "cnc-01", other_org, other_user, local(2, 9), local(2, 11))

        body = await calendar.feed(conn, c.customer, now, ZONE)
        staff_body = await calendar.feed(conn, c.finance, now, ZONE)

    cal = Calendar.from_ical(body)
    assert str(cal["prodid"]) == "-//FabHub//bookings//"
    assert str(cal["x-wr-calname"]) == "FabHub" and str(cal["x-wr-timezone"]) == "Asia/Shanghai"
    events = {str(e["uid"]): e for e in cal.walk("VEVENT")}
    assert set(events) == {f"booking-{b}@fabhub" for b in (mine, struck, missed)}
    assert f"booking-{old}@fabhub" not in events and f"booking-{theirs}@fabhub" not in events

    event = events[f"booking-{mine}@fabhub"]
    assert event.decoded("dtstart") == local(1, 9) and b"DTSTART:20270302T010000Z" in body  # in UTC
    assert event.decoded("dtend") == local(1, 11)
    assert event.decoded("dtstamp") == now
    assert str(event["summary"]) == f"{c.catalogue.devices['cnc-01'].name} · 靖江精工机械有限公司"
    description = str(event["description"])
    assert "bracket prototype, batch 2" in description
    assert "180.00 CNY net" in description and "Subsidy: 180.00 CNY (jingjiang-sme) off 360.00 CNY" in description
    assert (str(event["status"]), int(event["sequence"])) == ("CONFIRMED", 0)
    for b in (struck, missed):
        e = events[f"booking-{b}@fabhub"]
        assert (str(e["status"]), int(e["sequence"])) == ("CANCELLED", 1)
    assert "no-show" in str(events[f"booking-{missed}@fabhub"]["description"])

    staff = {str(e["uid"]) for e in Calendar.from_ical(staff_body).walk("VEVENT")}
    assert staff == {f"booking-{b}@fabhub" for b in (mine, struck, missed, theirs)}


async def test_calendar_feed_is_valid_when_empty(center):
    async with center.pool.connection() as conn:
        body = await calendar.feed(conn, center.customer, NOW, ZONE)
    cal = Calendar.from_ical(body)
    assert cal.walk("VEVENT") == [] and body.startswith(b"BEGIN:VCALENDAR\r\n")
