"""The demo month as data: who the demo's SMEs are, how each uses the center, and when the machines were
maintained or broke. Planned from last month's first day to yesterday with a seeded random generator, so
every start of a fresh demo tells the same story (a busy week, a quiet week, a daily CNC user, a robot
comparison, occasional printing, no-shows and a late cancellation) and every chart has something to say.
Pure data: `fabhub.demo_history` turns it into bookings, maintenance windows, states and samples."""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from accounts.uscc import check_character

SEED = 15
PRINTERS = ("printer-01", "printer-02", "printer-03")
DEMO_SME = "demo"  # the organization of demo_accounts' customer


@dataclass(frozen=True, slots=True)
class Sme:
    key: str
    name: str
    uscc: str
    programs: tuple[str, ...]
    contact: str


def _uscc(first17: str) -> str:
    return first17 + check_character(first17)


# Subsidy eligibility differs, so the subsidy chart has customers near, below and outside each program's cap.
SMES = (
    Sme(
        "hengda",
        "靖江恒达精密机械有限公司",
        _uscc("91321282MA1XHD001"),
        ("jingjiang-sme", "jiangsu-smart-manufacturing"),
        "李工",
    ),
    Sme("huarui", "靖江华瑞自动化设备有限公司", _uscc("91321282MA1XHR002"), ("jiangsu-smart-manufacturing",), "陈工"),
    Sme("chuangxiang", "靖江创想三维科技有限公司", _uscc("91321282MA1XCX003"), ("jingjiang-sme",), "周女士"),
    Sme("xincheng", "靖江鑫诚机电有限公司", _uscc("91321282MA1XXC004"), (), "赵经理"),
)


@dataclass(frozen=True, slots=True)
class Fault:
    """A down interval: `code` None leaves it unexplained (the Pareto's 'unassigned' row)."""

    device: str
    start: datetime
    end: datetime
    code: str | None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Session:
    """A booking and what the machine did in it: set up, then `running_min` minutes of running from 10
    minutes in (0: nobody came), at `performance` of the ideal cycle time; `fault_min` of it down."""

    sme: str
    device: str
    start: datetime
    end: datetime
    running_min: int
    performance: float = 0.9
    fault_min: int = 0
    fault_code: str | None = None
    cancelled_late: bool = False  # cancelled three hours before the start

    @property
    def run_from(self) -> datetime:
        return self.start + timedelta(minutes=10)

    def fault(self) -> Fault | None:
        if not self.fault_min:
            return None
        at = self.run_from + timedelta(minutes=self.running_min // 2)
        return Fault(self.device, at, at + timedelta(minutes=self.fault_min), self.fault_code)

    @property
    def run_to(self) -> datetime:
        return self.run_from + timedelta(minutes=self.running_min + self.fault_min)


@dataclass(frozen=True, slots=True)
class Maintenance:
    device: str
    start: datetime
    end: datetime
    reason: str


@dataclass
class Plan:
    first_day: date
    days: list[date]  # the open weekdays of the month, up to yesterday
    sessions: list[Session] = field(default_factory=list)
    maintenance: list[Maintenance] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)  # outside sessions (the night fault)
    taken: dict[str, list[tuple[datetime, datetime]]] = field(default_factory=dict)

    def free(self, device: str, start: datetime, end: datetime) -> bool:
        return all(end <= s or e <= start for s, e in self.taken.get(device, []))

    def take(self, device: str, start: datetime, end: datetime) -> bool:
        """Reserve the time unless something else holds it (no machine is ever double-booked)."""
        if not self.free(device, start, end):
            return False
        self.taken.setdefault(device, []).append((start, end))
        return True

    def add(self, session: Session) -> None:
        """Book the session if its time is free; a fault's minutes come out of the running time, so the run
        still ends five minutes before the slot does."""
        spare = (session.end - timedelta(minutes=5) - session.run_to).total_seconds() // 60
        if session.fault_min and spare < 0:
            session = replace(session, running_min=session.running_min + int(spare))
        if self.take(session.device, session.start, session.end):
            self.sessions.append(session)


# The demo SME's own month (device, day of the month, local start hour, hours, minutes running; 0 = nobody
# came), as before the month grew: the customer account's page keeps its familiar history.
DEMO_MONTH = (
    ("cnc-01", 3, 9, 3, 140),
    ("robot-01", 4, 14, 2, 70),
    ("printer-01", 6, 9, 4, 250),  # runs on past the end: billed as overage
    ("cnc-02", 11, 9, 2, 100),
    ("robot-02", 12, 9, 2, 0),
    ("cnc-01", 18, 14, 3, 150),
    ("printer-02", 20, 13, 3, 160),
    ("robot-01", 25, 9, 2, 95),
)


def _weekday(day: date) -> date:
    """The center is closed on Sundays and quiet on Saturdays: a weekend day moves to the Monday after."""
    return day + timedelta(days=(7 - day.weekday()) % 7 if day.weekday() >= 5 else 0)


def plan_month(first_day: date, today: date, zone: ZoneInfo, devices: Collection[str], seed: int = SEED) -> Plan:
    """The month from `first_day` (last month's first) to the day before `today`, for the `devices` that exist."""
    rng = random.Random(seed)
    days = [first_day + timedelta(days=i) for i in range((today - first_day).days)]
    plan = Plan(first_day, [d for d in days if d.weekday() < 5])
    busy = (first_day + timedelta(days=7)).isocalendar()[:2]  # the second week: a trade-fair order
    quiet = (first_day + timedelta(days=21)).isocalendar()[:2]  # the fourth week: a public holiday bridge

    def at(day: date, hour: float) -> datetime:
        return datetime.combine(day, time(), zone) + timedelta(hours=hour)

    def week(day: date) -> str:
        key = day.isocalendar()[:2]
        return "busy" if key == busy else "quiet" if key == quiet else "normal"

    for device, dom, hour, hours, running in DEMO_MONTH:
        day = _weekday(first_day.replace(day=dom))
        if device in devices and day < today:
            plan.add(Session(DEMO_SME, device, at(day, hour), at(day, hour + hours), running))
    weekdays = plan.days
    # Maintenance first: its windows block the calendar for everyone.
    windows = [
        ("cnc-02", weekdays[6], 8, 12, "主轴保养（季度计划）"),
        ("robot-01", weekdays[4], 14, 18, "年度安全检查"),
        ("printer-03", weekdays[15], 8, 20, "热床更换"),
        ("printer-03", weekdays[16], 8, 12, "热床更换后试打"),
    ]
    for device, day, start_h, end_h, reason in windows:
        if device in devices and plan.take(device, at(day, start_h), at(day, end_h)):
            plan.maintenance.append(Maintenance(device, at(day, start_h), at(day, end_h), reason))
    # A coolant pump that failed at night, after an evening job, fixed by the morning shift.
    night = next(d for d in weekdays if d.weekday() == 2)  # a Wednesday: the machine is on again next morning
    if "cnc-02" in devices:
        plan.faults.append(
            Fault("cnc-02", at(night, 22.5), at(night, 24 + 7.5), "machine_fault", "夜间冷却液泵故障，次日早班更换")
        )
        plan.add(Session("hengda", "cnc-02", at(night, 17), at(night, 20), 160, 0.88))  # the evening job before it
    xincheng_count = prints = 0
    for day in weekdays:
        kind = week(day)
        dow = day.weekday()
        # 恒达: the daily CNC user, mornings on cnc-01, afternoons too when busy, seldom when quiet.
        if kind != "quiet" or rng.random() < 0.3:
            tool = rng.random() < 0.18
            plan.add(
                Session(
                    "hengda", "cnc-01", at(day, 9), at(day, 12), rng.randint(130, 150), rng.uniform(0.82, 0.93),
                    rng.randint(15, 30) if tool else 0, "tool_breakage" if rng.random() < 0.8 else None,
                )
            )  # fmt: skip
        if kind == "busy":
            plan.add(Session("hengda", "cnc-01", at(day, 13), at(day, 18), rng.randint(240, 270), 0.9))
            plan.add(Session("hengda", "cnc-02", at(day, 13), at(day, 17), rng.randint(200, 220), 0.85))
        # 华瑞: compares the two robot cells on the same part, side by side on Tuesdays and Thursdays.
        if kind != "quiet" and (dow in (1, 3) or (kind == "busy" and dow == 2)):
            minutes = rng.randint(140, 160)
            plan.add(Session("huarui", "robot-01", at(day, 13.5), at(day, 16.5), minutes, rng.uniform(0.86, 0.94)))
            fault = rng.random() < 0.4
            plan.add(
                Session(
                    "huarui", "robot-02", at(day, 13.5), at(day, 16.5), minutes - (15 if fault else 0),
                    rng.uniform(0.55, 0.7), 15 if fault else 0, "program_error",
                )
            )  # fmt: skip
        # 创想: prints now and then, on whichever printer is free, a long job at a time.
        if dow in (0, 2, 4) and (kind != "quiet" or dow == 0) and rng.random() < 0.75:
            hours = rng.choice((4, 6, 8))
            printer = PRINTERS[prints % len(PRINTERS)]  # in turn, so every printer has its jobs
            prints += 1
            runout = rng.random() < 0.25
            plan.add(
                Session(
                    "chuangxiang", printer, at(day, 9), at(day, 9 + hours), hours * 60 - 30 - (40 if runout else 0),
                    1.0, 40 if runout else 0, "material_shortage",
                )
            )  # fmt: skip
        # 鑫诚: books cnc-02 three afternoons a week and does not always come.
        if dow in (0, 2, 4) and kind != "quiet":
            xincheng_count += 1
            absent = xincheng_count in (2, 5)
            late = xincheng_count == 7
            fault = xincheng_count % 4 == 3
            plan.add(
                Session(
                    "xincheng", "cnc-02", at(day, 14), at(day, 17), 0 if absent or late else rng.randint(120, 150),
                    rng.uniform(0.75, 0.88), 25 if fault else 0, "machine_fault" if xincheng_count != 3 else None,
                    cancelled_late=late,
                )
            )  # fmt: skip
    plan.sessions = [s for s in plan.sessions if s.device in devices]
    plan.sessions.sort(key=lambda s: (s.start, s.device))
    return plan
