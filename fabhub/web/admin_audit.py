"""The audit log for admins and finance: who changed what, filtered by actor, object and a range of days in
the center's calendar, newest first in pages, and the same selection as a CSV file (UTF-8 with a byte order
mark, so Excel reads the Chinese). It reads through accounts.audit, as the API does."""

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from psycopg_pool import AsyncConnectionPool

from accounts import audit
from accounts.model import Principal
from common.http import EARLIEST_YEAR, LATEST_YEAR
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions
from oee.exports import csv_cell

PAGE = 100
CSV_LIMIT = 50_000
# What the log holds entries about, for the filter's suggestions (any other name can be typed).
ENTITIES = (
    "organization",
    "user",
    "qualification",
    "booking",
    "booking_series",
    "waiting_entry",
    "maintenance_window",
    "opening_hours",
    "closed_day",
    "working_day",
    "downtime_reason",
    "invoice",
    "device",
    "device_class",
    "subsidy_program",
)


def text_filter(value: str | None) -> str | None:
    value = (value or "").replace("\x00", "").strip()[:128]
    return value or None


def day_filter(value: str | None) -> date | None:
    try:
        day = date.fromisoformat(value or "")
    except ValueError:
        return None
    return day if EARLIEST_YEAR <= day.year <= LATEST_YEAR else None


def make_router(pages: Pages, sessions: WebSessions, pool: AsyncConnectionPool) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    zone = pages.zone
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py

    def filters(
        actor: str | None = None,
        entity: str | None = None,
        entity_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The typed filters (for the form and links) and the domain's arguments (`until` takes the whole day)."""
        first, last = day_filter(since), day_filter(until)
        shown = {
            "actor": text_filter(actor),
            "entity": text_filter(entity),
            "entity_id": text_filter(entity_id),
            "since": first,
            "until": last,
        }
        query = {
            "actor": shown["actor"],
            "entity": shown["entity"],
            "entity_id": shown["entity_id"],
            "since": datetime.combine(first, time(), zone) if first else None,
            "until": datetime.combine(last + timedelta(days=1), time(), zone) if last else None,
        }
        return shown, query

    Filters = Annotated[tuple[dict[str, Any], dict[str, Any]], Depends(filters)]

    @router.get("/admin/audit")
    async def audit_page(request: Request, user: Visitor, chosen: Filters, before: str | None = None) -> HTMLResponse:
        shown, query = chosen
        before_id = int(before) if before and before.isdigit() and len(before) < 19 else None
        async with pool.connection() as conn:
            found = await audit.entries(conn, **query, before_id=before_id, limit=PAGE + 1)
        link = {k: v.isoformat() if isinstance(v, date) else v for k, v in shown.items() if v}
        return pages.render(
            request,
            "admin_audit.html",
            user,
            entries=found[:PAGE],
            older=found[PAGE - 1].id if len(found) > PAGE else None,
            shown=shown,
            link=link,
            entities=ENTITIES,
        )

    @router.get("/admin/audit.csv")
    async def audit_csv(request: Request, user: Visitor, chosen: Filters) -> StreamingResponse:
        _, query = chosen
        texts = pages.texts(request)
        header = ["Time", "Actor", "Action", "Object", "Object id", "Reason", "Before", "After"]

        def line(cells: list[Any]) -> str:
            out = io.StringIO(newline="")
            csv.writer(out).writerow([csv_cell(c) for c in cells])
            return out.getvalue()

        async def rows() -> AsyncIterator[str]:
            yield "\ufeff" + line([texts(h) for h in header])
            before_id, sent = None, 0
            while sent < CSV_LIMIT:
                async with pool.connection() as conn:
                    found = await audit.entries(conn, **query, before_id=before_id, limit=1000)
                for e in found:
                    yield line(
                        [
                            texts.when(e.at),
                            e.actor,
                            e.action,
                            e.entity,
                            e.entity_id,
                            e.reason or "",
                            dump(e.before),
                            dump(e.after),
                        ]
                    )
                sent += len(found)
                if len(found) < 1000:
                    break
                before_id = found[-1].id

        return StreamingResponse(
            rows(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
        )

    return router


def dump(value: Any) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
