"""The HTTP API, served for real: health, metrics, OpenAPI, telemetry routes and their 4xx answers."""

import httpx
import psycopg
import pytest

from accounts.model import Role
from fabhub.healthz import HEALTH_WITHIN_S
from simulators.faultproxy import FaultProxy
from telemetry import BatchWriter, Sample
from tests.accounts_rig import as_role
from tests.gateway_rig import eventually
from tests.http import serve
from tests.samples import T0, at, fixed_clock, series

WINDOW = {"from": at(0).isoformat(), "to": at(600).isoformat()}


@pytest.fixture
async def api(any_db_url, any_pool):
    writer = BatchWriter(any_pool, clock=fixed_clock(at(3600)))
    await writer.write_batch(
        [
            *series("cnc-01", "spindle_speed", [float(i) for i in range(60)], step=10),
            Sample(at(0), "cnc-01", "program", "O1000 支架"),
            Sample(at(0), "cnc-01", "state", "idle"),
            Sample(at(100), "cnc-01", "state", "running"),
            Sample(at(0), "cnc-01", "spindle_speed", float("nan")),
        ]
    )
    async with serve(any_db_url) as client:
        client.headers.update(await as_role(any_pool, client, Role.technician))
        yield client


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/telemetry/latest",
        "/api/v1/telemetry/devices/cnc-01/signals",
        "/api/v1/telemetry/devices/cnc-01/states",
        "/api/v1/telemetry/quarantine",
    ],
)
async def test_telemetry_needs_a_token(api, path):
    async with httpx.AsyncClient(base_url=api.base_url) as anonymous:
        r = await anonymous.get(path, params=WINDOW)
        assert r.status_code == 401, r.text
        assert r.headers["WWW-Authenticate"] == "Bearer"
        forged = await anonymous.get(path, params=WINDOW, headers={"Authorization": "Bearer not.a.token"})
        assert forged.status_code == 401
    assert (await api.get(path, params=WINDOW)).status_code == 200


async def test_health_reports_database_and_timescaledb(api, backend):
    r = await api.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["database"]["reachable"] is True
    assert body["database"]["timescaledb"] is backend.timescaledb


async def test_openapi_and_metrics(api):
    spec = (await api.get("/openapi.json")).json()
    assert "/api/v1/telemetry/devices/{device_id}/signals/{signal}" in spec["paths"]
    assert "/api/v1/telemetry/devices/{device_id}/states" in spec["paths"]
    await api.get("/healthz")
    metrics = (await api.get("/metrics")).text
    assert 'fabhub_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics
    assert "fabhub_database_up 1.0" in metrics


async def test_latest(api):
    body = (await api.get("/api/v1/telemetry/latest", params={"device": "cnc-01"})).json()
    assert [(v["signal"], v["value"]) for v in body["numeric"]] == [("spindle_speed", 59.0)]
    assert [(v["signal"], v["value"]) for v in body["text"]] == [("program", "O1000 支架")]
    assert [s["state"] for s in body["states"]] == ["running"]


async def test_raw_range_with_truncation(api):
    r = await api.get("/api/v1/telemetry/devices/cnc-01/signals/spindle_speed", params={**WINDOW, "limit": 5})
    assert r.status_code == 200
    body = r.json()
    assert [p["value"] for p in body["points"]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert body["truncated"] is True


async def test_text_signal_range(api):
    r = await api.get("/api/v1/telemetry/devices/cnc-01/signals/program", params=WINDOW)
    assert r.json()["kind"] == "text"
    assert [p["value"] for p in r.json()["points"]] == ["O1000 支架"]


async def test_bucketed_range(api):
    r = await api.get("/api/v1/telemetry/devices/cnc-01/signals/spindle_speed", params={**WINDOW, "bucket": "5m"})
    assert r.status_code == 200
    assert [(b["count"], b["avg"]) for b in r.json()["buckets"]] == [(30, 14.5), (30, 44.5)]


async def test_state_timeline(api):
    r = await api.get(
        "/api/v1/telemetry/devices/cnc-01/states",
        params={"from": at(50).isoformat(), "to": at(150).isoformat()},
    )
    assert [(s["state"], s["start"], s["end"]) for s in r.json()] == [
        # in the center's zone with its offset, as every time in an answer
        ("idle", "2026-03-02T16:00:50+08:00", "2026-03-02T16:01:40+08:00"),
        ("running", "2026-03-02T16:01:40+08:00", "2026-03-02T16:02:30+08:00"),
    ]


async def test_quarantine_is_inspectable(api):
    rows = (await api.get("/api/v1/telemetry/quarantine", params={"device": "cnc-01"})).json()["items"]
    assert [(q["signal"], q["value"], q["reason"]) for q in rows] == [("spindle_speed", "nan", "value is not finite")]


STATES = "/api/v1/telemetry/devices/cnc-01/states"
SPINDLE = "/api/v1/telemetry/devices/cnc-01/signals/spindle_speed"


@pytest.mark.parametrize(
    ("path", "params", "status", "reason"),
    [
        ("/api/v1/telemetry/devices/CNC%2001/states", WINDOW, 422, "pattern"),
        ("/api/v1/telemetry/devices/lathe-9/states", WINDOW, 404, "unknown device 'lathe-9'"),
        (STATES, {"from": at(600).isoformat(), "to": at(0).isoformat()}, 422, "must be after"),
        (STATES, {"from": at(0).isoformat(), "to": at(0).isoformat()}, 422, "must be after"),
        (STATES, {"from": at(0).isoformat()}, 422, "Field required"),
        (STATES, {}, 422, "Field required"),
        (STATES, {"from": "2026-03-02T08:00:00", "to": at(60).isoformat()}, 422, "timezone"),
        (STATES, {"from": "yesterday", "to": at(60).isoformat()}, 422, "datetime"),
        (
            STATES,
            {"from": T0.replace(year=2020).isoformat(), "to": at(0).isoformat()},
            422,
            "longer than 400 days",
        ),
        (SPINDLE, {**WINDOW, "bucket": "3h"}, 422, "Input should be"),
        (
            SPINDLE,
            {**WINDOW, "bucket": "1s", "to": T0.replace(day=3).isoformat()},
            422,
            "more than 20000 buckets",
        ),
        (SPINDLE, {**WINDOW, "limit": 0}, 422, "greater than or equal to 1"),
        ("/api/v1/telemetry/devices/cnc-01/signals/program", {**WINDOW, "bucket": "1m"}, 422, "holds text"),
        ("/api/v1/telemetry/devices/cnc-01/signals/Bad%20Signal", WINDOW, 422, "pattern"),
        ("/api/v1/telemetry/latest", {"device": "nobody-here"}, 404, "unknown device"),
    ],
)
async def test_bad_requests_get_4xx_with_a_reason(api, path, params, status, reason):
    r = await api.get(path, params=params)
    assert r.status_code == status, r.text
    assert reason in r.text


async def test_health_answers_503_when_the_database_goes_silent(db_url):
    """A database that accepted the connections and then stopped answering: the probe gives up in time, and
    health is back once the database answers again."""
    url = psycopg.conninfo.conninfo_to_dict(db_url)
    proxy = FaultProxy(url.get("host") or "127.0.0.1", int(url.get("port") or 5432))
    await proxy.start()
    through = psycopg.conninfo.make_conninfo(db_url, host="127.0.0.1", port=str(proxy.port))
    try:
        async with serve(through) as client:
            assert (await client.get("/healthz")).status_code == 200
            await proxy.blackhole()
            r = await client.get("/healthz", timeout=HEALTH_WITHIN_S + 5)
            assert r.status_code == 503
            assert r.json()["database"] == {
                "reachable": False,
                "error": f"the database did not answer within {HEALTH_WITHIN_S:g} s",
            }
            assert "fabhub_database_up 0.0" in (await client.get("/metrics")).text
            await proxy.drop()
            await proxy.pass_through()
            await eventually(lambda: _healthy(client))
    finally:
        await proxy.stop()


async def _healthy(client: httpx.AsyncClient) -> bool:
    return (await client.get("/healthz")).status_code == 200
