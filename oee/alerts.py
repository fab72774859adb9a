"""Alerts that come from measurements rather than requests: a machine going down while a customer's booking
runs. Published to the outbox by a frequent job, each change once (keyed on the device and instant), so the
technicians hear of it within seconds whichever process runs the job."""

from __future__ import annotations

from datetime import datetime, timedelta

from psycopg import AsyncConnection

from common.rows import dict_rows
from oee.sqlfiles import QUERIES
from outbox.events import publish

# Changes older than this when the job first sees them (a gateway's spool replaying an outage) are history,
# not news: nobody should be paged for them.
LOOKBACK = timedelta(minutes=10)


async def publish_machine_down(conn: AsyncConnection, now: datetime) -> int:
    """Publishes a `device.down` event per change into down during a booking; returns how many were new."""
    rows = await dict_rows(conn, QUERIES.down_during_bookings.sql, {"since": now - LOOKBACK, "now": now})
    new = 0
    for row in rows:
        key = f"device.down:{row['device_id']}:{row['down_at'].isoformat()}"
        new += await publish(conn, "device.down", {"down": row}, at=now, key=key)
    return new
