"""Management's figures worked by hand: energy and CO2 per device class and month from meter readings, the
CSV downloads giving the same numbers as the domain functions, bad ranges answered with 4xx, and chart labels
that stay readable at 7 and at 92 days."""

import csv
import io
import itertools
import re
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.model import Role
from booking.catalogue import sync
from fabhub.catalogue import catalogue_from, oee_facts
from fabhub.devices import load_devices
from fabhub.web import charts
from oee import center_figures
from telemetry import BatchWriter, Sample
from tests.accounts_rig import as_role
from tests.http import REPO, serve
from tests.test_downtime import NOW, ZONE

FONT = 11  # the charts' font size in px
DIGIT = 0.6 * FONT  # a digit is at most 0.6 em wide in the fonts the pages use


def column_labels(svg: str, y: int) -> list[tuple[float, str]]:
    return [(float(x), text) for x, text in re.findall(rf'<text x="([\d.]+)" y="{y}"[^>]*>([^<]+)</text>', svg)]


@pytest.mark.parametrize("days", [7, 31, 92])
def test_heat_map_and_gantt_labels_never_overlap(days):
    first = date(2027, 1, 1)
    columns = [f"{first + timedelta(days=i):%m-%d}" for i in range(days)]
    rows = ["cnc-01", "cnc-02", "robot-01", "robot-02", "printer-01", "printer-02", "printer-03"]
    svg = str(charts.heat_map(rows, columns, {(r, c): 0.5 for r in rows for c in columns}, "u"))
    shown = column_labels(svg, 28)
    assert shown[0][1] == columns[0] and len(shown) >= min(days, 8)
    for (x1, t1), (x2, t2) in itertools.pairwise(shown):
        assert x2 - x1 >= DIGIT * (len(t1) + len(t2)) / 2 + FONT / 2, (t1, t2, x2 - x1)
    row_ys = [float(y) for y in re.findall(r'<text x="[\d.]+" y="([\d.]+)" text-anchor="end">', svg)]
    assert len(row_ys) == len(rows) and min(b - a for a, b in itertools.pairwise(row_ys)) >= FONT
    width = float(re.search(r'viewBox="0 0 (\d+)', svg).group(1))
    assert width <= 1400  # 92 days still fit a desktop screen

    ticks = [(i * 86400.0, c) for i, c in enumerate(columns)]
    gantt = str(charts.gantt(rows, days * 86400.0, ticks, [], "g"))
    shown = column_labels(gantt, 16)
    for (x1, t1), (x2, t2) in itertools.pairwise(shown):
        assert x2 - x1 >= DIGIT * (len(t1) + len(t2)) / 2 + FONT / 2, (t1, t2, x2 - x1)


# Meter readings (kWh since the previous reading) per machine's meter, local times.
READINGS = [
    ("meter-cnc-01", datetime(2027, 3, 1, 9, 0, tzinfo=ZONE), 3.0),
    ("meter-cnc-01", datetime(2027, 3, 1, 9, 10, tzinfo=ZONE), 1.5),
    ("meter-cnc-02", datetime(2027, 3, 1, 23, 50, tzinfo=ZONE), 2.0),
    ("meter-robot-01", datetime(2027, 3, 1, 10, 0, tzinfo=ZONE), 0.5),
    ("meter-printer-01", datetime(2027, 2, 28, 23, 59, tzinfo=ZONE), 0.25),  # February, outside the window
]


async def test_energy_per_class_and_month_and_every_csv(db_url, pool):
    devices = load_devices(REPO / "devices.yaml")
    async with pool.connection() as conn, conn.transaction():
        await sync(conn, catalogue_from(devices), NOW)
    await BatchWriter(pool, clock=lambda: NOW).write_batch(
        [Sample(at, meter, "energy_kwh.delta", kwh) for meter, at, kwh in READINGS]
    )
    facts = oee_facts(devices)[2]
    classes = {d.id: d.class_id for d in catalogue_from(devices).devices.values()}
    async with pool.connection() as conn:
        found = await center_figures.energy_by_class_month(
            conn, facts, classes, date(2027, 3, 1), date(2027, 3, 1), ZONE
        )
    # cnc: 3.0 + 1.5 + 2.0 = 6.5 kWh x 0.5703 = 3.70695 -> 3.71 kg; robot: 0.5 x 0.5703 = 0.28515 -> 0.29 kg
    assert [(e.device_class, e.month, e.kwh, e.co2_kg, e.factor) for e in found] == [
        ("cnc", date(2027, 3, 1), 6.5, Decimal("3.71"), Decimal("0.5703")),
        ("robot", date(2027, 3, 1), 0.5, Decimal("0.29"), Decimal("0.5703")),
    ]
    async with serve(db_url, clock=lambda: NOW) as client:
        finance = await as_role(pool, client, Role.finance)
        client.cookies.update({"fabhub_session": finance["Authorization"].removeprefix("Bearer ")})
        window = "since=2027-03-01&until=2027-03-01"
        r = await client.get(f"/management/energy.csv?{window}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert list(csv.reader(io.StringIO(r.text.removeprefix("\ufeff")))) == [
            ["device_class", "month", "kwh", "idle_kwh", "co2_kg", "kg_co2_per_kwh"],
            ["cnc", "2027-03", "6.5", "6.5", "3.71", "0.5703"],  # no states: none of it while running
            ["robot", "2027-03", "0.5", "0.5", "0.29", "0.5703"],
        ]
        for chart in ("oee", "utilisation", "gantt", "downtime", "energy", "subsidy"):
            r = await client.get(f"/management/{chart}.csv?{window}")
            assert r.status_code == 200, (chart, r.text)
            assert r.headers["content-disposition"] == f'attachment; filename="{chart}-2027-03-01-2027-03-01.csv"'
        page = await client.get(f"/management?{window}")
        assert page.status_code == 200 and "3.71" in page.text and "0.5703" in page.text
        assert page.text.count(".csv?since=2027-03-01&amp;until=2027-03-01") == 6
        # bad input: a 4xx with a reason, or the page's own message; never a 500
        for query in ("since=2027-03-05&until=2027-03-01", "since=2026-01-01&until=2027-03-01", "day=2027-05-01"):
            r = await client.get(f"/management/energy.csv?{query}")
            assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), query
            page = await client.get(f"/management?{query}")
            assert page.status_code == 200 and 'class="problems"' in page.text, query
        for query in ("since=garbage", "day=2027-13-01", "since=99999-01-01"):
            assert (await client.get(f"/management?{query}")).status_code == 422
            assert (await client.get(f"/management/gantt.csv?{query}")).status_code == 422
        assert (await client.get(f"/management/nonsense.csv?{window}")).status_code == 422
