"""Property-based requests generated from the app's own OpenAPI schema (schemathesis + hypothesis), valid
and invalid, as an admin, a customer and anonymously: whatever arrives, the answer is never a 5xx."""

import asyncio
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from accounts.model import Role
from fabhub.app import create_app
from fabhub.devices import load_devices
from fabhub.settings import Settings
from tests.accounts_rig import Clock, as_role
from tests.booking_rig import NOW, customer, slot
from tests.http import SECRET, serve

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = 25  # per operation and caller


def schema():
    app = create_app(
        Settings(secret_key=SECRET, run_jobs=False, run_gateway=False),
        "postgresql://unused",
        load_devices(REPO / "devices.yaml"),
    )
    return schemathesis.openapi.from_dict(app.openapi())


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    phases=[hypothesis.Phase.generate],
)


def fuzz(base_url: str, callers: dict[str, dict[str, str]]) -> list[str]:
    """Runs in a worker thread (schemathesis calls are blocking) while the app serves on the test's loop."""
    failures: list[str] = []

    def probe(operation, caller: str, headers: dict[str, str]):
        @FUZZ
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call(base_url=base_url, headers=headers, timeout=30)
            if response.status_code >= 500:
                failures.append(f"{operation.label} as {caller}: {response.status_code} {response.text[:300]}")

        return check

    for result in schema().get_all_operations():
        for caller, headers in callers.items():
            probe(result.ok(), caller, headers)()
    return failures


@pytest.mark.timeout(600)
async def test_no_request_gets_a_5xx(db_url, pool):
    async with serve(db_url, clock=Clock(NOW), access_token_minutes=24 * 60) as client:
        someone = await customer(pool, client)
        # Something to find: a booking, so object routes reach their database paths.
        assert (
            await client.post("/api/v1/bookings", json=slot(1, 9, 10, device_id="cnc-01"), headers=someone.headers)
        ).status_code == 201
        callers = {
            "admin": await as_role(pool, client, Role.admin),
            "customer": someone.headers,
            "anonymous": {},
        }
        failures = await asyncio.to_thread(fuzz, str(client.base_url), callers)
    assert not failures, "\n".join(failures[:20])
