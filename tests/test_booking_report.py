"""The SME's machine report per completed booking (issue 15): a hand-made shift on cnc-01 gives hand-computed
figures (A/P/Q, the six big losses, parts, cycle times, programs, alarms, down time with the reason a
technician attached after the booking completed); the report is frozen at completion, so deleting the raw
samples changes nothing; the PDF says it in Chinese; two bookings compare side by side; another
organization's booking is not found, in the report and in the comparison; bad comparisons are refused."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from accounts.model import Role
from fabhub.catalogue import catalogue_from, oee_facts
from fabhub.devices import load_devices
from fabhub.jobs import JobRunner, jobs_for
from fabhub.settings import Settings
from oee.invoices import Invoicing
from oee.service import OeeService
from telemetry import BatchWriter, Sample
from telemetry.model import Count
from tests.accounts_rig import Clock, as_role, login
from tests.booking_rig import NOW, ZONE, customer, local, slot
from tests.http import REPO, serve
from tests.test_exports import pdf_text

CNC, OTHER, METER = "cnc-01", "cnc-02", "meter-cnc-01"
MIN = 1 / 60


def shift() -> list[Sample | Count]:
    """Tuesday 2 March on cnc-01 (ideal cycle 4 min), booked 09:00-12:00: setup 09:00-09:30, running to 10:30,
    down to 10:45 (alarm E1 10:30-10:44), running to 11:30, idle to the end. Parts: one every 6 min from 09:36
    to 10:30 (10), then 2 at 10:57 and 3 at 11:21 (24 min for 3: 8 min each); 14 good. Program O1001 from
    before the slot, O2002 from 10:40. Its power meter counts 12.5 kWh in the slot, 2 of them not running."""
    h = 1.0  # day 1
    samples: list[Sample | Count] = [
        Sample(local(1, 9), CNC, "state", "setup"),
        Sample(local(1, 9.5), CNC, "state", "running"),
        Sample(local(1, 10.5), CNC, "state", "down"),
        Sample(local(1, 10.75), CNC, "state", "running"),
        Sample(local(1, 11.5), CNC, "state", "idle"),
        Sample(local(1, 8.8), CNC, "program", "O1001 BRACKET"),
        Sample(local(1, 10 + 40 * MIN), CNC, "program", "O2002 FLANGE"),
        Sample(local(1, 10.5), CNC, "alarm", "E1 spindle overload"),
        Sample(local(1, 10 + 44 * MIN), CNC, "alarm", ""),
    ]
    # The meter's deltas: 0.5 kWh up to 09:30 (setup), 6 to 10:30 (running), 0.5 to 10:45 (down), 4.5 to 11:30
    # (running), 1 to 11:54 (idle): 12.5 kWh, 2 of them not running.
    meter = [(8.9, 10000), (9.5, 10050), (10.5, 10650), (10.75, 10700), (11.5, 11150), (11.9, 11250)]
    samples += [Sample(local(1, h), METER, "energy_kwh", raw / 100) for h, raw in meter]
    samples += [Count(local(1, h), METER, "energy_kwh", raw, unit=0.01) for h, raw in meter]
    samples += [Sample(local(h, 9.5 + (i + 1) * 0.1), CNC, "parts_total.delta", 1.0) for i in range(10)]
    samples += [Sample(local(h, 9.5 + (i + 1) * 0.1 + 0.01), CNC, "parts_good.delta", 1.0) for i in range(9)]
    samples += [
        Sample(local(1, 10 + 57 * MIN), CNC, "parts_total.delta", 2.0),
        Sample(local(1, 11 + 21 * MIN), CNC, "parts_total.delta", 3.0),
        Sample(local(1, 11 + 22 * MIN), CNC, "parts_good.delta", 5.0),
    ]
    return samples


def other_shift() -> list[Sample]:
    """cnc-02 (ideal 6 min) booked 13:00-15:00, running throughout: a part every 10 min from 13:10 (9), 8 good."""
    samples = [Sample(local(1, 13), OTHER, "state", "running"), Sample(local(1, 15), OTHER, "state", "idle")]
    samples += [Sample(local(1, 13 + (i + 1) / 6), OTHER, "parts_total.delta", 1.0) for i in range(9)]
    samples += [Sample(local(1, 13 + (i + 1) / 6 + 0.01), OTHER, "parts_good.delta", 1.0) for i in range(8)]
    return samples


@pytest.fixture
async def center(db_url, pool):
    """Organization A's two completed, frozen bookings (cnc-01 09:00-12:00, cnc-02 13:00-15:00), organization
    B's customer, and the client at 16:00 that day."""
    clock = Clock(NOW)
    devices = load_devices(REPO / "devices.yaml")
    oee = OeeService(*oee_facts(devices), ZONE, clock)
    settings = Settings()
    jobs = JobRunner(
        pool, jobs_for(settings, catalogue_from(devices), oee, Invoicing(oee, settings.vat_rate, ZONE, clock)), clock
    )
    async with serve(db_url, clock=clock, access_token_minutes=24 * 60) as client:
        a = await customer(pool, client)
        b = await customer(pool, client)
        ids = []
        for body in (slot(1, 9, 12, device_id=CNC), slot(1, 13, 15, device_id=OTHER)):
            r = await client.post("/api/v1/bookings", json=body, headers=a.headers)
            assert r.status_code == 201, r.text
            ids.append(r.json())
        await BatchWriter(pool, clock=lambda: local(1, 16)).write_batch(shift() + other_shift())

        async def lifecycle(at):
            clock.now = at
            ran, moved = await jobs.run("booking-lifecycle")
            assert ran
            return moved

        await lifecycle(local(1, 9) + timedelta(minutes=31))
        a.headers = await login(client, a.email)
        r = await client.get(f"/api/v1/bookings/{ids[0]['id']}/report", headers=a.headers)
        assert r.status_code == 409 and "not completed yet" in r.json()["detail"], r.text  # in progress
        await lifecycle(local(1, 12) + timedelta(minutes=10))
        r = await client.get(f"/api/v1/bookings/{ids[0]['id']}/report", headers=a.headers)
        assert r.status_code == 409 and "not completed yet" in r.json()["detail"], r.text  # data may be on its way
        assert (await lifecycle(local(1, 12) + timedelta(minutes=40)))["results_frozen"] == 1
        await lifecycle(local(1, 13) + timedelta(minutes=31))
        await lifecycle(local(1, 15) + timedelta(minutes=10))
        assert (await lifecycle(local(1, 15) + timedelta(minutes=40)))["results_frozen"] == 1
        clock.now = local(1, 16)
        for who in (a, b):
            who.headers = await login(client, who.email)
        yield client, pool, a, b, ids


async def test_the_report_of_a_completed_booking_has_the_hand_computed_figures_and_stays_frozen(center):
    client, pool, a, b, (first, _) = center
    url = f"/api/v1/bookings/{first['id']}/report"
    # A technician explains the down interval after the booking completed: the report shows the reason.
    technician = await as_role(pool, client, Role.technician)
    r = await client.put(
        f"/api/v1/downtime/{CNC}/{local(1, 10.5).isoformat()}",
        json={"code": "tool_breakage", "note": "T12 broke"},
        headers=technician,
    )
    assert r.status_code == 200, r.text
    r = await client.get(url, headers=a.headers)
    assert r.status_code == 200, r.text
    report = r.json()

    assert report["slot"]["device_id"] == CNC and report["slot"]["start"] == local(1, 9).isoformat()
    times = report["times"]
    assert (times["planned_s"], times["running_s"], times["setup_s"], times["down_s"], times["idle_s"]) == (
        10800,
        6300,
        1800,
        900,
        1800,
    )
    figures = report["oee"]
    assert figures["availability"] == pytest.approx(6300 / 10800)
    assert figures["performance"] == pytest.approx(240 * 15 / 6300)
    assert figures["quality"] == pytest.approx(14 / 15)
    assert figures["oee"] == pytest.approx(6300 / 10800 * 240 * 15 / 6300 * 14 / 15)
    assert report["losses"] == pytest.approx(
        {"breakdowns_h": 0.25, "setup_h": 0.5, "small_stops_h": 0, "reduced_speed_h": 0.75, "rejects_h": 240 / 3600}
    )
    assert report["parts"] == {"total": 15, "good": 14, "scrap": 1}
    cycles = report["cycles"]
    # The first part of each running span has no cycle (its time includes the start-up): 9 at 6 min, 3 at 8 min.
    assert (cycles["parts_measured"], cycles["mean_s"], cycles["median_s"]) == (12, 390, 360)
    assert (cycles["min_s"], cycles["max_s"], cycles["ideal_s"]) == (360, 480, 240)
    assert sum(b["parts"] for b in cycles["bins"]) == 12 and cycles["bins"][-1]["parts"] == 3
    assert [p["seconds"] for p in cycles["trend"]][-2:] == [360, 480]
    assert [(s["state"], s["seconds"]) for s in report["timeline"]] == [
        ("setup", 1800),
        ("running", 3600),
        ("down", 900),
        ("running", 2700),
        ("idle", 1800),
    ]
    assert report["programs"] == [
        {"name": "O1001 BRACKET", "running_s": 3600, "parts": 10, "runs": 1},
        {"name": "O2002 FLANGE", "running_s": 2700, "parts": 5, "runs": 1},
    ]
    assert report["alarms"] == [
        {
            "at": local(1, 10.5).isoformat(),
            "text": "E1 spindle overload",
            "until": local(1, 10 + 44 * MIN).isoformat(),
        }
    ]
    [down] = report["downtime"]
    assert (down["start"], down["end"], down["seconds"]) == (
        local(1, 10.5).isoformat(),
        local(1, 10.75).isoformat(),
        900,
    )
    assert (down["reason_code"], down["reason_name_zh"], down["note"]) == ("tool_breakage", "刀具损坏", "T12 broke")
    energy = report["energy"]
    assert (energy["kwh"], energy["idle_kwh"]) == (pytest.approx(12.5), pytest.approx(2.0))
    assert energy["kwh_per_good_part"] == pytest.approx(12.5 / 14)
    assert (energy["co2_kg"], energy["carbon_factor"], energy["carbon_year"]) == (
        "7.13",
        "0.5703",
        2022,
    )  # 12.5 x 0.5703
    assert "生态环境部" in energy["carbon_source"]
    billing = report["billing"]
    assert (billing["basis"], billing["hours"], billing["charge"], billing["invoiced"]) == (
        "booked",
        "3.0000",
        "540.00",
        False,
    )
    assert Decimal(billing["total"]) == Decimal(first["net"])

    # Retention drops the raw samples: the report does not change.
    async with pool.connection() as conn:
        for table in ("telemetry_sample", "telemetry_text_sample", "telemetry_state"):
            await conn.execute(f"DELETE FROM {table} WHERE device_id = %s", (CNC,))
    staff = await as_role(pool, client, Role.finance)
    assert (await client.get(url, headers=a.headers)).json() == report
    assert (await client.get(url, headers=staff)).json() == report

    # A booking frozen before reports were: its frozen figures, without the snapshot's parts.
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM booking_report WHERE booking_id = %s", (first["id"],))
    older = (await client.get(url, headers=a.headers)).json()
    snapshot = ("timeline", "cycles", "programs", "alarms", "downtime")
    assert all(older[k] is None for k in snapshot)
    assert {k: v for k, v in older.items() if k not in snapshot} == {
        k: v for k, v in report.items() if k not in snapshot
    }

    # Another organization's customer: not found, like a booking that does not exist.
    for path in ("", ".pdf", ".csv", ".xlsx"):
        r = await client.get(url + path, headers=b.headers)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json", (path, r.text)
    assert (await client.get("/api/v1/bookings/999999/report", headers=a.headers)).status_code == 404


async def test_the_pdf_and_the_files_say_it_in_chinese(center):
    client, _, a, _, (first, _) = center
    url = f"/api/v1/bookings/{first['id']}/report"
    r = await client.get(f"{url}.pdf", headers=a.headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf", r.text
    text = pdf_text(r.content)
    for expected in ("设备使用报告", "可用率", "58.3 %", "性能率", "57.1 %", "良品率", "93.3 %", "六大损失", "故障停机",
                     "0.75", "总产量", "15", "平均节拍", "390", "O1001 BRACKET", "E1 spindle overload", "未指定",
                     "电能", "12.5", "空闲电能", "2.00", "二氧化碳排放", "7.13", "按 0.5703 kg CO₂/kWh（生态环境部",
                     "540.00", "状态时间线"):  # fmt: skip
        assert expected in text, expected
    english = pdf_text((await client.get(f"{url}.pdf", params={"lang": "en"}, headers=a.headers)).content)
    assert "Machine report" in english and "availability" in english and "设备使用报告" not in english

    r = await client.get(f"{url}.csv", headers=a.headers)
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == ["分类", "指标", "数值", "单位"]
    assert ["设备综合效率（OEE）", "可用率", "58.33", "%"] in rows
    assert ["产量", "废品", "1.0", "件"] in rows
    assert ["能耗", "二氧化碳排放", "7.13", "kg"] in rows
    r = await client.get(f"{url}.xlsx", params={"lang": "en"}, headers=a.headers)
    sheet = load_workbook(io.BytesIO(r.content)).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert ["Billing", "charge", Decimal("540.00"), "CNY"] in [
        [v if not isinstance(v, (int, float)) else Decimal(str(v)).quantize(Decimal("0.01")) for v in row]
        for row in values
    ]
    assert (await client.get(f"{url}.pdf", params={"lang": "fr"}, headers=a.headers)).status_code == 422


async def test_two_bookings_side_by_side_and_bad_comparisons(center):
    client, _, a, b, (first, second) = center
    ids = f"{first['id']},{second['id']}"
    r = await client.get("/api/v1/reports/compare", params={"bookings": ids}, headers=a.headers)
    assert r.status_code == 200, r.text
    one, two = r.json()["bookings"]
    assert (one["booking_id"], one["device_id"], two["device_id"]) == (first["id"], CNC, OTHER)
    assert (one["mean_cycle_s"], two["mean_cycle_s"]) == (390, 600)
    assert (one["scrap"], two["scrap"]) == (1, 1)
    assert two["scrap_share"] == pytest.approx(1 / 9)
    assert (two["availability"], two["performance"]) == (1, pytest.approx(360 * 9 / 7200))
    assert one["kwh_per_good_part"] == pytest.approx(12.5 / 14) and two["energy_kwh"] is None
    r = await client.get("/api/v1/reports/compare.csv", params={"bookings": ids}, headers=a.headers)
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == 3 and rows[0][:2] == ["预约编号", "设备"] and rows[1][0] == str(first["id"])

    # Organization B: A's bookings do not exist for it, whether one or both are asked.
    for asked in (ids, f"{second['id']},{first['id']}"):
        r = await client.get("/api/v1/reports/compare", params={"bookings": asked}, headers=b.headers)
        assert r.status_code == 404 and "no booking" in r.json()["detail"]
    bad = {
        str(first["id"]): "compare 2 to 4",
        f"{first['id']},{first['id']}": "twice",
        f"{first['id']},{second['id']},3,4,5": "compare 2 to 4",
        "1,x": "not a booking id",
        "1,,2": "not a booking id",
        "": "not a booking id",
        "-1,2": "not a booking id",
        "1,99999999999999999999": "not a booking id",
    }
    for asked, reason in bad.items():
        r = await client.get("/api/v1/reports/compare", params={"bookings": asked}, headers=a.headers)
        assert r.status_code == 422 and reason in r.text, (asked, r.text)
    r = await client.get("/api/v1/reports/compare", params={"bookings": f"{first['id']},999999"}, headers=a.headers)
    assert r.status_code == 404
