"""A compressed month of the center, end to end. Three simulators over real sockets (OPC UA, Modbus TCP, and
MQTT through Mosquitto) feed the app's own gateway; the simulators, the gateway, the app and its jobs share
one clock, which the script moves from event to event through March 2027. Three customers book and cancel
over HTTP; the lifecycle job checks bookings in, marks a no-show and completes them; the scheduled run drafts
the month; finance issues, credits one invoice, drafts and issues it again, and exports.

The script sets every machine state to the second, so each usage record and line is checked against a price
worked out here from the class's billing basis. Then the books must balance: the lines sum to each total,
the subsidy lines are the ledger, no cap is passed, and every billable booking is on exactly one live
invoice while nothing else is on any."""

from __future__ import annotations

import contextlib
import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from openpyxl import load_workbook
from psycopg_pool import AsyncConnectionPool

from accounts.model import Role
from accounts.qualifications import grant_qualification
from booking.bookings import Bookings
from fabhub.catalogue import catalogue_from, oee_facts
from fabhub.domains import notifier_for
from fabhub.jobs import JobRunner, jobs_for
from fabhub.settings import Settings
from oee.charges import vat_of
from oee.invoices import Invoicing
from oee.service import OeeService
from simulators.machine import Machine, Profile
from simulators.opcua_cnc import OpcUaCnc
from tests.accounts_rig import ACTOR, Clock, login, make_org, make_user, valid_uscc
from tests.answers import json_answers, times_off_zone, unpaged
from tests.booking_rig import NOW, ZONE, local
from tests.gateway_rig import devices_for, eventually, printer, robot
from tests.http import serve
from tests.mail_rig import Mailbox

CNC, ROBOT, PRINTER = "cnc-01", "robot-01", "printer-01"
PRINTER_SERIAL = "00M09A350100001"
CAP_A = Decimal("800.00")  # jingjiang-sme's annual cap, lowered so that customer A reaches it this month
RATES = {CNC: Decimal("180.00"), ROBOT: Decimal("120.00"), PRINTER: Decimal("30.00")}
NAMES = {"A": "靖江精工机械有限公司", "B": "江苏智造科技有限公司", "C": "泰州创客工坊"}
SHARES = {"jingjiang-sme": Decimal("0.50"), "jiangsu-smart-manufacturing": Decimal("0.30")}


def cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


@dataclass
class Booking:
    """One booking of the script: who, where, when, and what the machine does in it (minutes from the start,
    phase, parts made and good so far in this booking)."""

    customer: str
    device: str
    day: int
    start: float
    end: float
    script: list[tuple[int, str, tuple[int, int] | None]] = field(default_factory=list)
    cancel_at: tuple[int, float] | None = None  # (day, hour)
    late: bool = False  # cancelled inside the class's late-cancellation window
    id: int = 0
    program: str | None = None
    net: Decimal = Decimal(0)


def week(w: int) -> list[Booking]:
    """Each customer's bookings in week `w` (day offsets from Monday 1 March), with what happens in them."""
    mon = 7 * w
    cnc_a = Booking("A", CNC, mon + 1, 9, 12, [(0, "setup", None), (30, "running", None), (150, "idle", (12, 11))])
    robot_a = Booking("A", ROBOT, mon + 2, 9, 11, [(0, "running", None), (90, "idle", (40, 38))])
    printer_b = Booking("B", PRINTER, mon + 1, 13, 17, [(0, "running", None), (260, "idle", None)])  # 20 min over
    cnc_b = Booking(
        "B",
        CNC,
        mon + 3,
        14,
        16,
        [(0, "running", None), (60, "down", None), (80, "running", None), (120, "idle", (8, 8))],
    )
    printer_c = Booking("C", PRINTER, mon + 3, 9, 11, [(0, "running", None), (90, "idle", None)])
    robot_c = Booking("C", ROBOT, mon + 4, 10, 12, [(0, "running", None), (30, "idle", (5, 5))])
    if w == 0:
        cnc_b.cancel_at, cnc_b.script = (mon, 8), []  # three days ahead: free
    if w == 1:
        printer_c.cancel_at, printer_c.late, printer_c.script = (mon + 3, 6), True, []  # 3 h ahead, inside 4 h
    if w == 2:
        robot_c.script = []  # nobody comes: a no-show
    if w == 3:
        cnc_b.cancel_at, cnc_b.late, cnc_b.script = (mon + 2, 16), True, []  # 22 h ahead, inside 24 h
    return [cnc_a, robot_a, printer_b, cnc_b, printer_c, robot_c]


def expected_charge(b: Booking) -> Decimal:
    """The usage line's amount, by the class's billing basis, from the script."""
    hours = Decimal(b.end - b.start)
    if b.device == CNC:  # booked
        return cents(RATES[CNC] * hours)
    running = Decimal(0)
    for (at, phase, _), nxt in zip(b.script, [*b.script[1:], None], strict=True):
        if phase == "running":
            running += Decimal((nxt[0] if nxt else at) - at) / 60
    if b.device == ROBOT:  # metered, at least half the slot
        return cents(RATES[ROBOT] * max(min(running, hours), hours / 2))
    overrun = max(Decimal(0), running - hours)  # overage: the slot plus the running on past its end
    return cents(RATES[PRINTER] * (hours + overrun))


@dataclass
class Center:
    client: httpx.AsyncClient
    pool: AsyncConnectionPool
    clock: Clock
    jobs: JobRunner
    sims: dict[str, Any]
    emails: dict[str, str]
    orgs: dict[str, int]
    mailbox: Mailbox
    parts: dict[str, tuple[int, int]] = field(default_factory=lambda: {CNC: (0, 0), ROBOT: (0, 0)})

    async def as_(self, who: str) -> dict[str, str]:
        """Fresh credentials: the clock jumps days, and tokens expire by it."""
        return await login(self.client, self.emails[who])

    async def rows(self, query: str, *args: Any) -> list[tuple]:
        async with self.pool.connection() as conn:
            return await (await conn.execute(query, args)).fetchall()

    async def machine(self, device: str, phase: str, made: tuple[int, int] | None) -> None:
        """Put the simulator into `phase` now (with its part counters moved on) and wait until the gateway has
        recorded it at this instant, before the clock may move again."""
        sim = self.sims[device]
        sim.machine.force(phase, 10**7)
        if made is not None:
            total, good = self.parts[device]
            self.parts[device] = (total + made[0], good + made[1])
            sim.machine.set_counters(*self.parts[device])
        await sim.tick(0)
        now = self.clock()

        async def recorded() -> bool:
            state = await self.rows(
                "SELECT state FROM telemetry_state WHERE device_id = %s AND time >= %s AND time < %s "
                "ORDER BY time DESC LIMIT 1",
                device,
                now,
                now + timedelta(seconds=1),
            )
            if state != [(phase,)]:
                return False
            if made is None:
                return True
            counter = await self.rows(
                "SELECT value FROM telemetry_sample WHERE device_id = %s AND signal = 'parts_total' "
                "ORDER BY time DESC LIMIT 1",
                device,
            )
            return counter == [(float(self.parts[device][0]),)]

        try:
            await eventually(recorded)
        except AssertionError:
            query = "SELECT time, state FROM telemetry_state WHERE device_id = %s ORDER BY time DESC LIMIT 3"
            latest = await self.rows(query, device)
            query = "SELECT time, value FROM telemetry_sample WHERE device_id = %s AND signal = 'parts_total' "
            counted = await self.rows(query + "ORDER BY time DESC LIMIT 3", device)
            raise AssertionError(
                f"{device} not recorded {phase} with {self.parts[device]} parts at {now}; "
                f"its latest states: {latest}, parts_total: {counted}"
            ) from None


def timeline(bookings: list[Booking], april: Booking) -> list[tuple[datetime, int, str, Booking, Any]]:
    """Every event of the month in order: bookings made on Monday mornings, cancellations, machine states,
    and the lifecycle job half an hour after each start and each end."""
    events: list[tuple[datetime, int, str, Booking, Any]] = []
    for b in [*bookings, april]:
        made_on = (b.day // 7) * 7 if b is not april else 28
        events.append((local(made_on, 7), 0, "book", b, None))
        if b.cancel_at:
            events.append((local(*b.cancel_at), 1, "cancel", b, None))
        for minutes, phase, made in b.script:
            events.append((local(b.day, b.start) + timedelta(minutes=minutes), 2, "machine", b, (phase, made)))
        if b is not april:
            for hour in (b.start, b.end):
                events.append((local(b.day, hour) + timedelta(minutes=31), 3, "lifecycle", b, None))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    return events


@contextlib.asynccontextmanager
async def center(db_url: str, pool: AsyncConnectionPool, mosquitto: Any, tmp_path: Any):
    clock = Clock(NOW)
    sims: dict[str, Any] = {
        CNC: OpcUaCnc(CNC, 0, Machine(2, Profile(ideal_cycle_s=240)), speed=0, clock=clock),
        ROBOT: robot(ROBOT),
        PRINTER: printer(PRINTER_SERIAL, mosquitto.port, mode="full"),
    }
    async with contextlib.AsyncExitStack() as stack:
        for sim in sims.values():
            await sim.start()
            stack.push_async_callback(sim.stop)
        ports = {i: s.port for i, s in sims.items() if hasattr(s, "port")}
        # The printer reports only when the script ticks it; real seconds pass between, simulated days.
        devices = devices_for(list(sims), ports, {PRINTER: {"mqtt": {"offline_after": timedelta(minutes=10)}}})
        programs = dict(devices.subsidy_programs)
        programs["jingjiang-sme"] = programs["jingjiang-sme"].model_copy(update={"annual_cap": CAP_A})
        devices = devices.model_copy(update={"subsidy_programs": programs})
        mailbox = Mailbox()  # the month's messages, listed in the delivery log the answers walk
        await mailbox.start()
        stack.push_async_callback(mailbox.stop)
        settings = {
            "run_gateway": True,
            "data_dir": tmp_path,
            "batch_max_age_s": 0.05,
            "access_token_minutes": 24 * 60,
            "smtp_url": f"smtp://127.0.0.1:{mailbox.port}?starttls=off",
        }
        client = await stack.enter_async_context(serve(db_url, devices, mosquitto.url, clock, **settings))
        config = Settings(**settings)
        oee = OeeService(*oee_facts(devices), ZONE, clock)
        catalogue = catalogue_from(devices)
        jobs = JobRunner(
            pool,
            jobs_for(
                config,
                catalogue,
                oee,
                Invoicing(oee, config.vat_rate, ZONE, clock),
                notifier_for(config, devices, clock, pool),
                Bookings(pool, catalogue, ZONE, clock),
            ),
            clock,
        )
        emails = {"finance": "finance@center.example", "technician": "tech@center.example"}
        await make_user(pool, Role.finance, email=emails["finance"])
        await make_user(pool, Role.technician, email=emails["technician"])
        programs_of = {"A": ("jingjiang-sme",), "B": ("jiangsu-smart-manufacturing",), "C": ()}
        orgs = {who: await make_org(pool, NAMES[who], programs=programs_of[who]) for who in NAMES}
        for who, org_id in orgs.items():
            emails[who] = f"booker-{who.lower()}@example.com"
            user_id = await make_user(pool, Role.customer, org_id, emails[who])
            async with pool.connection() as conn:
                for cls in ("cnc", "robot", "printer"):
                    await grant_qualification(
                        conn, user_id=user_id, device_class=cls, expires_on=date(2027, 12, 31), at=NOW, actor=ACTOR
                    )
        c = Center(client, pool, clock, jobs, sims, emails, orgs, mailbox)
        for device in sims:

            async def seen(device: str = device) -> bool:
                return bool(await c.rows("SELECT 1 FROM telemetry_state WHERE device_id = %s", device))

            await eventually(seen)
        yield c


async def run_month(c: Center, bookings: list[Booking], april: Booking) -> None:
    for at, _, kind, b, detail in timeline(bookings, april):
        c.clock.now = at
        if kind == "book":
            body = {
                "device_id": b.device,
                "start": local(b.day, b.start).isoformat(),
                "end": local(b.day, b.end).isoformat(),
            }
            r = await c.client.post("/api/v1/bookings", json=body, headers=await c.as_(b.customer))
            assert r.status_code == 201, r.text
            b.id, b.program, b.net = r.json()["id"], r.json()["subsidy_program"], Decimal(r.json()["net"])
            if b.day == 1 and b.device == CNC:  # the first week: someone else wants that CNC too
                taken = await c.client.post(
                    "/api/v1/bookings",
                    json={**body, "start": local(1, 10).isoformat(), "end": local(1, 11).isoformat()},
                    headers=await c.as_("C"),
                )
                assert taken.status_code == 409 and taken.json()["alternatives"], taken.text
        elif kind == "cancel":
            r = await c.client.post(f"/api/v1/bookings/{b.id}/cancel", headers=await c.as_(b.customer))
            assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
        elif kind == "machine":
            await c.machine(b.device, *detail)
        else:
            ran, _ = await c.jobs.run("booking-lifecycle")
            assert ran


def late_fee(b: Booking) -> Decimal:
    share = {CNC: Decimal("0.50"), ROBOT: Decimal("0.50"), PRINTER: Decimal("0.25")}[b.device]
    return cents(b.net * share)


async def test_a_compressed_month_is_recorded_billed_issued_exported_and_reconciles(db_url, pool, mosquitto, tmp_path):
    bookings = [b for w in range(4) for b in week(w)]
    april = Booking("C", PRINTER, 31, 9, 10)  # booked in March for 1 April: next month's
    async with center(db_url, pool, mosquitto, tmp_path) as c:
        await run_month(c, bookings, april)

        # What the lifecycle made of it.
        statuses = dict(await c.rows("SELECT id, status FROM booking"))
        for b in bookings:
            wanted = "cancelled" if b.cancel_at else "completed" if b.script else "no_show"
            assert statuses[b.id] == wanted, (b, statuses[b.id])
        assert statuses[april.id] == "confirmed"

        # Midnight on 1 April: the scheduled run drafts March, once.
        c.clock.now = local(31, 0.5)
        ran, drafted = await c.jobs.run("invoice-drafts")
        assert ran and len(drafted) == 3
        assert (await c.jobs.run("invoice-drafts"))[1] == []

        finance = await c.as_("finance")
        orgs = c.orgs
        invoices = {}
        for who, org_id in orgs.items():
            listed = await c.client.get(
                "/api/v1/invoices", params={"month": "2027-03", "organization_id": org_id}, headers=finance
            )
            [invoice] = listed.json()["items"]
            assert invoice["status"] == "draft"
            invoices[who] = invoice["id"]

        # Every line as worked out from the script, in date order, the cap applied as the ledger fills.
        used = {who: Decimal(0) for who in orgs}
        for who, invoice_id in invoices.items():
            body = (await c.client.get(f"/api/v1/invoices/{invoice_id}", headers=finance)).json()
            got = [(line["booking_id"], line["kind"], Decimal(line["amount"])) for line in body["lines"]]
            want = []
            mine = sorted((b for b in bookings if b.customer == who), key=lambda b: (b.day, b.start))
            for b in mine:
                if b.cancel_at and not b.late:
                    continue  # a free cancellation bills nothing
                if b.late:
                    want.append((b.id, "late_cancellation", late_fee(b)))
                elif not b.script:
                    want.append((b.id, "no_show", b.net))  # the robot's no-show fee is the whole net price
                else:
                    charge = expected_charge(b)
                    want.append((b.id, "usage", charge))
                    if b.program is not None:
                        cap = CAP_A if b.program == "jingjiang-sme" else Decimal("50000.00")
                        granted = min(cents(charge * SHARES[b.program]), cap - used[who])
                        if granted > 0:
                            used[who] += granted
                            want.append((b.id, "subsidy", -granted))
            assert got == want, who
            assert Decimal(body["total"]) == sum(amount for _, _, amount in got)
            assert Decimal(body["vat"]) == vat_of(Decimal(body["total"]), Decimal("0.06"))

        # The month worked by hand: A reaches its cap (800.00) in the third week.
        totals = {}
        for who, invoice_id in invoices.items():
            totals[who] = Decimal(
                (await c.client.get(f"/api/v1/invoices/{invoice_id}", headers=finance)).json()["total"]
            )
        assert totals == {"A": Decimal("2080.00"), "B": Decimal("1150.00"), "C": Decimal("795.00")}
        assert used == {"A": CAP_A, "B": Decimal("216.00"), "C": Decimal(0)}

        # The usage the gateway recorded, to the second.
        usage = {
            u["booking_id"]: u
            for u in (await c.client.get("/api/v1/usage", params={"month": "2027-03"}, headers=finance)).json()["items"]
        }
        assert set(usage) == {b.id for b in bookings if b.script}
        first_a_cnc, first_a_robot, first_b_printer, _, first_c_printer, first_c_robot = bookings[:6]

        def seconds(booking: Booking, *names: str) -> tuple[int, ...]:
            # to the second: a state that lands on the instant of another is stored a microsecond later
            return tuple(round(usage[booking.id][name]) for name in names)

        assert seconds(first_a_cnc, "running_s", "setup_s", "parts_total", "parts_good") == (7200, 1800, 12, 11)
        assert seconds(first_a_robot, "running_s", "parts_total") == (5400, 40)
        assert seconds(first_b_printer, "running_s", "overrun_s") == (14400, 1200)
        assert seconds(first_c_printer, "overrun_s") == (0,) and seconds(first_c_robot, "running_s") == (1800,)
        cnc_b = bookings[9]  # week 1's: running, 20 minutes down, running again
        assert seconds(cnc_b, "running_s") == (6000,)

        # Issue all three; customer C cannot see A's invoice at all.
        numbers = {}
        for who, invoice_id in invoices.items():
            r = await c.client.post(f"/api/v1/invoices/{invoice_id}/issue", headers=finance)
            assert r.status_code == 200, r.text
            numbers[who] = r.json()["number"]
        customer_c = await c.as_("C")
        assert (await c.client.get(f"/api/v1/invoices/{invoices['A']}.pdf", headers=customer_c)).status_code == 404
        assert (await c.client.post(f"/api/v1/invoices/{invoices['A']}/issue", headers=finance)).status_code == 409

        # B's invoice is credited and the month drafted again for B: the same bookings, on one live invoice.
        r = await c.client.post(
            f"/api/v1/invoices/{invoices['B']}/credit-note",
            json={"reason": "sent to the wrong address"},
            headers=finance,
        )
        assert r.status_code == 200, r.text
        redraft = await c.client.post(
            "/api/v1/invoices/drafts", json={"month": "2027-03", "organization_id": orgs["B"]}, headers=finance
        )
        [again] = redraft.json()["invoices"]
        assert again != invoices["B"]
        numbers["B again"] = (await c.client.post(f"/api/v1/invoices/{again}/issue", headers=finance)).json()["number"]
        assert sorted(numbers.values()) == [f"FH2027-{n:06d}" for n in (1, 2, 3, 5)]  # 4 is the credit note
        invoices["B"] = again

        # The books balance. Live invoices hold each billable booking exactly once, and nothing else.
        billable = {
            bid
            for (bid,) in await c.rows(
                "SELECT id FROM booking WHERE status IN ('completed', 'no_show') OR (status = 'cancelled' AND fee > 0)"
            )
        }
        on_live = await c.rows(
            "SELECT l.booking_id FROM invoice_line l JOIN invoice i ON i.id = l.invoice_id "
            "WHERE i.kind = 'invoice' AND i.credited_by IS NULL AND l.kind <> 'subsidy'"
        )
        assert sorted(bid for (bid,) in on_live) == sorted(billable)
        assert april.id not in billable
        unbalanced = await c.rows(
            "SELECT i.id FROM invoice i LEFT JOIN invoice_line l ON l.invoice_id = i.id "
            "GROUP BY i.id HAVING i.total IS DISTINCT FROM coalesce(sum(l.amount), 0)"
        )
        assert unbalanced == []
        ledger = await c.rows("SELECT s.organization_id, sum(s.amount) FROM subsidy_ledger s GROUP BY 1 ORDER BY 1")
        on_lines = await c.rows(
            "SELECT i.organization_id, -sum(l.amount) FROM invoice_line l JOIN invoice i ON i.id = l.invoice_id "
            "WHERE l.kind IN ('subsidy', 'credit') AND l.subsidy_program IS NOT NULL GROUP BY 1 ORDER BY 1"
        )
        assert ledger == on_lines == [(orgs["A"], CAP_A), (orgs["B"], Decimal("216.00"))]

        # The exports say the same.
        for who, invoice_id in invoices.items():
            rows = list(
                csv.DictReader(
                    io.StringIO(
                        (
                            await c.client.get(f"/api/v1/invoices/{invoice_id}/lines.csv?lang=en", headers=finance)
                        ).content.decode("utf-8-sig")
                    )
                )
            )
            assert sum(Decimal(r["amount (CNY)"]) for r in rows) == totals[who]
            assert {r["invoice"] for r in rows} == {numbers["B again" if who == "B" else who]}
            xlsx = (await c.client.get(f"/api/v1/invoices/{invoice_id}/lines.xlsx?lang=en", headers=finance)).content
            sheet = load_workbook(io.BytesIO(xlsx)).active
            header, names = next(
                (i, row) for i, row in enumerate(sheet.iter_rows(values_only=True), 1) if row[0] == "invoice"
            )
            column = names.index("amount (CNY)")
            amounts = [row[column] for row in sheet.iter_rows(min_row=header + 1, values_only=True)]
            assert sum(Decimal(str(a)) for a in amounts) == totals[who]
            pdf = await c.client.get(f"/api/v1/invoices/{invoice_id}.pdf", headers=await c.as_(who))
            assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        usage_csv = (
            await c.client.get("/api/v1/usage.csv", params={"month": "2027-03", "lang": "en"}, headers=finance)
        ).content
        exported = {int(r["booking"]) for r in csv.DictReader(io.StringIO(usage_csv.decode("utf-8-sig")))}
        assert exported == set(usage)
        for program, (who, granted) in {
            "jingjiang-sme": ("A", CAP_A),
            "jiangsu-smart-manufacturing": ("B", Decimal("216.00")),
        }.items():
            report = await c.client.get(
                "/api/v1/subsidy-report.csv",
                params={"month": "2027-03", "program": program, "lang": "en"},
                headers=finance,
            )
            lines = list(csv.DictReader(io.StringIO(report.content.decode("utf-8-sig"))))
            granted_to = {r["customer"]: Decimal(r["subsidy granted (CNY)"]) for r in lines}
            assert granted_to == {NAMES[who]: granted, "Total": granted}

        # Every time in every JSON answer is written in the center's zone with its offset (one rule): read as
        # an admin, after a maintenance window and a reason for a down time were added to the month.
        admin_email = "admin@center.example"
        await make_user(c.pool, Role.admin, email=admin_email)
        admin = await login(c.client, admin_email)
        window = {"device_id": ROBOT, "start": local(33, 9).isoformat(), "end": local(33, 11).isoformat()}
        window |= {"reason": "servo check"}
        assert (await c.client.post("/api/v1/maintenance", json=window, headers=admin)).status_code == 201
        make_up = {"as_weekday": 1, "reason": "调休"}  # Sunday 28 March worked as a Monday, so the list has a row
        assert (await c.client.put("/api/v1/working-days/2027-03-28", json=make_up, headers=admin)).status_code == 200
        # A series, a waiting-list entry and a registration, so that their routes answer too.
        series = {"device_id": PRINTER, "start": local(35, 9).isoformat(), "end": local(35, 10).isoformat()}
        r = await c.client.post(
            "/api/v1/bookings/series", json={**series, "rule": "FREQ=DAILY;COUNT=2"}, headers=await c.as_("A")
        )
        assert r.status_code == 201, r.text
        series_id = r.json()["id"]
        r = await c.client.post("/api/v1/waiting-list", json=series, headers=await c.as_("B"))
        assert r.status_code == 201, r.text
        entry_id = r.json()["id"]
        registration = {
            "organization_name": "新公司",
            "uscc": valid_uscc(),
            "contact_name": "李",
            "password": "a long password",
        }
        registration |= {"contact_phone": "0523-1", "contact_email": "li@new.example"}
        r = await c.client.post(
            "/api/v1/registrations", data=registration, files={"licence": ("l.pdf", b"%PDF-1.4 x", "application/pdf")}
        )
        assert r.status_code == 202, r.text
        registration_id = r.json()["id"]
        signals = (await c.client.get(f"/api/v1/telemetry/devices/{CNC}/signals", headers=admin)).json()
        for _ in range(10):  # each run takes a batch
            for job in ("notification-messages", "notification-sending"):
                assert (await c.jobs.run(job))[0]
        sent = (await c.client.get("/api/v1/notifications", params={"status": "sent"}, headers=admin)).json()
        assert sent["total"] > 0 and len(c.mailbox.messages) == sent["total"]
        statement = ("s.csv", "日期,金额,附言,付款人\n2027-03-31,1.00,测试,某人\n".encode("gbk"), "text/csv")
        r = await c.client.post("/api/v1/bank-statements", files={"file": statement}, headers=admin)
        assert r.status_code == 201 and r.json()["unmatched"] == 1, r.text
        values = {
            "statement_id": str(r.json()["id"]),
            "from": local(0, 0).isoformat(),
            "to": local(31, 0).isoformat(),
            "month": "2027-03",
            "first_day": "2027-03-01",
            "last_day": "2027-03-31",
            "class": "cnc",
            "device_id": CNC,
            "signal": signals[0]["signal"],
            "booking_id": str(bookings[0].id),
            "bookings": f"{bookings[0].id},{bookings[1].id}",  # A's first CNC and robot bookings, compared
            "invoice_id": str(invoices["A"]),
            "organization_id": str(orgs["A"]),
            "user_id": str((await c.client.get("/api/v1/me", headers=admin)).json()["id"]),
            "series_id": str(series_id),
            "entry_id": str(entry_id),
            "registration_id": str(registration_id),
            "notification_id": str(sent["items"][0]["id"]),
        }
        answers = await json_answers(c.client, admin, values)
        wrong, seen = times_off_zone(answers, "+08:00")
        assert seen > 100 and wrong == [], "\n".join(wrong)
        # ...and every list of records answers in pages.
        assert unpaged(answers) == set()
