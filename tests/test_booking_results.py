"""A booking's results are frozen when it is over and its data is in (issue 14): raw-data retention later
drops its parts counters, and the customer's per-booking and per-customer OEE still say, to the part and the
second, what they said when the booking had just completed. Late data changes nothing until finance
recomputes the booking, which is audited and refused once retention has dropped the raw data or while an
issued invoice bills the booking."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest

from accounts.model import Principal, Role
from common.errors import Conflict
from fabhub.catalogue import catalogue_from, oee_facts
from fabhub.devices import load_devices
from fabhub.jobs import JobRunner, jobs_for
from fabhub.settings import Settings
from oee import results
from oee.invoices import Invoicing
from oee.service import OeeService
from telemetry import BatchWriter, Sample
from telemetry.maintenance import roll_up
from telemetry.model import Count
from tests.accounts_rig import Clock, as_role, login, make_user
from tests.booking_rig import NOW, ZONE, customer, local, slot
from tests.http import REPO, serve
from tests.test_invoices import MARCH, center, month_of, setup, t
from tests.test_invoices import NOW as APRIL
from tests.test_invoices import customer as billed_customer

CNC = "cnc-01"
METER = "meter-cnc-01"


def shift() -> list[Sample | Count]:
    """Tuesday 2 March on cnc-01 (ideal cycle 4 min), booked 09:00-12:00: setup 30 min, running 2 h, then idle;
    20 parts, 19 good; its meter counts 12.5 kWh in the slot (in 0.01 kWh steps), 1.5 kWh of it not running."""
    samples: list[Sample | Count] = [
        Sample(local(1, 9), CNC, "state", "setup"),
        Sample(local(1, 9.5), CNC, "state", "running"),
        Sample(local(1, 11.5), CNC, "state", "idle"),
    ]
    meter = [(8.9, 10000), (9.5, 10050), (11.5, 11150), (11.9, 11250)]
    samples += [Sample(local(1, h), METER, "energy_kwh", raw / 100) for h, raw in meter]
    samples += [Count(local(1, h), METER, "energy_kwh", raw, unit=0.01) for h, raw in meter]
    samples += [Sample(local(1, 9.5 + i * 0.1), CNC, "parts_total.delta", 1.0) for i in range(20)]
    samples += [Sample(local(1, 9.5 + i * 0.1 + 0.01), CNC, "parts_good.delta", 1.0) for i in range(19)]
    return samples


async def test_results_survive_raw_retention_and_change_only_by_an_audited_recompute(db_url, pool):
    clock = Clock(NOW)
    devices = load_devices(REPO / "devices.yaml")
    oee = OeeService(*oee_facts(devices), ZONE, clock)
    settings = Settings()  # raw retention: the default 30 days
    jobs = JobRunner(
        pool, jobs_for(settings, catalogue_from(devices), oee, Invoicing(oee, settings.vat_rate, ZONE, clock)), clock
    )
    async with serve(db_url, clock=clock, access_token_minutes=24 * 60) as client:
        owner = await customer(pool, client)
        r = await client.post("/api/v1/bookings", json=slot(1, 9, 12, device_id=CNC), headers=owner.headers)
        assert r.status_code == 201, r.text
        booking_id = r.json()["id"]
        # As the gateway would have delivered them by noon (a sample from the writer's future is quarantined).
        await BatchWriter(pool, clock=lambda: local(1, 12)).write_batch(shift())

        async def reports(headers: dict[str, str]) -> tuple:
            one = await client.get(f"/api/v1/oee/bookings/{booking_id}", headers=headers)
            window = {"from": local(0, 0).isoformat(), "to": local(7, 0).isoformat()}
            total = await client.get("/api/v1/oee", params={**window, "group": "total"}, headers=headers)
            days = await client.get("/api/v1/oee", params={**window, "group": "day", "device": CNC}, headers=headers)
            assert one.status_code == total.status_code == days.status_code == 200, (one.text, total.text)
            return one.json(), total.json(), days.json()

        async def lifecycle(at) -> dict:
            clock.now = at
            ran, moved = await jobs.run("booking-lifecycle")
            assert ran
            return moved

        assert (await lifecycle(local(1, 9) + timedelta(minutes=31)))["in_progress"] == 1
        # Completed at 12:10, but the data may still be on its way: not frozen yet, the figures are live.
        moved = await lifecycle(local(1, 12) + timedelta(minutes=10))
        assert (moved["completed"], moved["results_frozen"]) == (1, 0)
        owner.headers = await login(client, owner.email)  # a day on: a fresh token
        shown = await reports(owner.headers)
        [booked] = shown[0]
        assert (booked["running_s"], booked["setup_s"], booked["parts_total"], booked["parts_good"]) == (
            7200,
            1800,
            20,
            19,
        )
        assert booked["performance"] == pytest.approx(20 * 240 / 7200)
        # 12:40: over, its data in (the machine stopped before the end), so frozen; the figures are unchanged.
        assert (await lifecycle(local(1, 12) + timedelta(minutes=40)))["results_frozen"] == 1
        assert (await lifecycle(local(1, 12) + timedelta(minutes=41)))["results_frozen"] == 0  # once
        assert await reports(owner.headers) == shown
        async with pool.connection() as conn:
            usage = await (
                await conn.execute("SELECT running_s, parts_total, energy_kwh, idle_energy_kwh, carbon_factor,"
                                   " carbon_year FROM usage_record WHERE booking_id = %s", (booking_id,))
            ).fetchone()  # fmt: skip
        assert usage == (7200.0, 20.0, 12.5, 1.5, Decimal("0.5703"), 2022)

        # Five parts reported late: the frozen figures stay until finance recomputes, with a reason.
        await BatchWriter(pool, clock=clock).write_batch([Sample(local(1, 11.55), CNC, "parts_total.delta", 5.0)])
        assert await reports(owner.headers) == shown
        url = f"/api/v1/oee/bookings/{booking_id}/recompute"
        assert (await client.post(url, json={"reason": "late spool"}, headers=owner.headers)).status_code == 403
        finance = await as_role(pool, client, Role.finance)
        assert (await client.post(url, json={}, headers=finance)).status_code == 422  # no reason, no recompute
        r = await client.post(url, json={"reason": "the gateway's spool arrived late"}, headers=finance)
        assert r.status_code == 200, r.text
        assert r.json()["parts_total"] == 25
        entries = (
            await client.get(
                "/api/v1/audit", params={"entity": "booking_result", "entity_id": str(booking_id)}, headers=finance
            )
        ).json()["items"]
        [entry] = entries
        assert entry["action"] == "recompute" and entry["reason"] == "the gateway's spool arrived late"
        assert (entry["before"]["parts_total"], entry["after"]["parts_total"]) == (20, 25)
        shown = await reports(owner.headers)
        assert shown[0][0]["parts_total"] == 25 and shown[1][0]["parts_total"] == 25

        # Sixty days on: the raw samples are rolled up and dropped by the retention job.
        clock.now = local(1, 12) + timedelta(days=60)
        async with pool.connection() as conn:
            while (await roll_up(conn, clock.now, max_span=timedelta(days=90))).watermark < clock.now - timedelta(
                minutes=1
            ):
                pass
            await conn.commit()
        ran, dropped = await jobs.run("telemetry-retention")
        assert ran and dropped.cutoff > local(1, 12)
        async with pool.connection() as conn:
            left = await (
                await conn.execute("SELECT count(*) FROM telemetry_sample WHERE device_id = %s AND time < %s",
                                   (CNC, local(1, 12)))
            ).fetchone()  # fmt: skip
            # What the booking would show now if it were computed from what is left: no parts at all.
            live = await oee.live(conn, [CNC], local(1, 9), local(1, 12), owner.org_id)
        assert left == (0,) and live["parts_total"].sum() == 0

        owner_now = await login(client, owner.email)  # the clock moved past the token's expiry
        assert await reports(owner_now) == shown
        finance = await login(client, entry["actor"])
        r = await client.post(url, json={"reason": "try again"}, headers=finance)
        assert r.status_code == 409 and "past retention" in r.text
        assert await reports(owner_now) == shown
        # The customer's own page says the same: 25 parts.
        client.cookies.set("fabhub_session", owner_now["Authorization"].removeprefix("Bearer "))
        page = await client.get("/my-bookings")
        client.cookies.clear()
        row = page.text.split(f'data-booking="{booking_id}"')[1].split("</tr>")[0]
        assert re.search(r"<td class=\"num\"[^>]*>25</td>", row)


async def test_a_draft_bills_the_frozen_usage_and_a_recompute_waits_for_a_credit_note(pool):
    """Drafting again bills what was frozen, whatever came later; a recompute changes the next draft, and is
    refused once the invoice is issued."""
    invoicing = await setup(pool, center())
    org = await billed_customer(pool)
    _, robot, *_ = await month_of(pool, org)  # robot-01 ran 09:00-09:30 of 09:00-11:00 on 3 March, metered
    clerk_id = await make_user(pool, Role.finance)
    clerk = Principal(clerk_id, f"finance-{clerk_id}@example.com", "Finance", Role.finance, None)

    async def usage_line():
        async with pool.connection() as conn:
            invoice_id = await invoicing.draft(conn, org[0], MARCH, "tests")
            cur = await conn.execute(
                "SELECT amount FROM invoice_line WHERE invoice_id = %s AND booking_id = %s AND kind = 'usage'",
                (invoice_id, robot),
            )
            return invoice_id, (await cur.fetchone())[0]

    _, first = await usage_line()
    assert first == Decimal("120.00")  # the minimum: half of 2 h at 120.00
    # The gateway's spool brings 09:45-10:45 in: the robot ran again.
    await BatchWriter(pool, clock=lambda: APRIL).write_batch(
        [Sample(t(3, 9.75), "robot-01", "state", "running"), Sample(t(3, 10.75), "robot-01", "state", "idle")]
    )
    assert (await usage_line())[1] == first  # frozen: drafting again bills the same
    async with pool.connection() as conn:
        after = await results.recompute(conn, invoicing.oee, robot, clerk, "spool replayed", APRIL)
    assert after["running_s"] == 1.5 * 3600
    invoice_id, again = await usage_line()
    assert again == Decimal("180.00")  # 1.5 h x 120.00
    async with pool.connection() as conn:
        await invoicing.issue(conn, invoice_id, clerk)
        with pytest.raises(Conflict, match="issued invoice FH2027-000001"):
            await results.recompute(conn, invoicing.oee, robot, clerk, "once more", APRIL)
