"""Lists of records answer in pages: `{items, total, next_cursor}`, read with `?cursor=&limit=&updated_since=`.

Pages are keyed on the list's own order (keyset pagination), so rows written while a client pages through
never shift a page or repeat a row, and page 500 costs what page 1 does. The cursor is the last row's sort key,
opaque to the client but checked on the way back in: a cursor from another list, or one tampered with, is a
422, never a database error. `updated_since` is the sync filter: the rows changed at or after that instant
(`updated_at` is the database's transaction time, so a client that asks again from the newest `updated_at` it
holds, less a few seconds for transactions still open then, misses nothing)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import Depends, Query
from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from common.errors import Invalid
from common.http import Instant
from common.rows import dict_rows

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Kind = Literal["time", "date", "int", "text"]
_COLUMN = re.compile(r"^[a-z_][a-z0-9_]*$")
MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="rows matching the filters (and updated_since) on all pages together")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


@dataclass(frozen=True, slots=True)
class Key:
    """One column of a list's order: its name in the query's answer, its kind, and its direction."""

    column: str
    kind: Kind
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Listing:
    """A list's identity in its cursors, its order (ending in a unique column) and the column `updated_since`
    reads (None: the list is derived, not stored, and refuses `updated_since`)."""

    name: str
    order: tuple[Key, ...]
    updated: str | None = "updated_at"

    def __post_init__(self) -> None:
        for column in [k.column for k in self.order] + ([self.updated] if self.updated else []):
            if not _COLUMN.match(column):
                raise ValueError(f"{self.name}: {column!r} is not a plain column name")


@dataclass(frozen=True, slots=True)
class PageRequest:
    cursor: str | None
    limit: int
    updated_since: datetime | None


def page_request(
    cursor: Annotated[
        str | None, Query(max_length=1000, description="next_cursor of the previous page; absent for the first")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows per page")] = 100,
    updated_since: Annotated[
        Instant | None, Query(description="only rows created or changed at or after this instant")
    ] = None,
) -> PageRequest:
    """The paging parameters every list takes (a FastAPI dependency)."""
    return PageRequest(cursor, limit, updated_since)


# A route's paging parameters: `page: Paging`.
Paging = Annotated[PageRequest, Depends(page_request)]


def _encode(listing: Listing, key: Sequence[Any]) -> str:
    values = [v.isoformat() if k.kind in ("time", "date") else v for k, v in zip(listing.order, key, strict=True)]
    raw = json.dumps([listing.name, values], separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(listing: Listing, cursor: str) -> list[Any]:
    refused = Invalid(f"cursor is not one the {listing.name} list gave: start again without it")
    try:
        name, values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise refused from None
    if name != listing.name or not isinstance(values, list) or len(values) != len(listing.order):
        raise refused
    parsed = []
    for key, value in zip(listing.order, values, strict=True):
        try:
            parsed.append(_PARSE[key.kind](value))
        except (ValueError, TypeError):
            raise refused from None
    return parsed


def _time(value: Any) -> datetime:
    found = datetime.fromisoformat(value)
    if found.tzinfo is None:
        raise ValueError("naive")
    return found


def _int(value: Any) -> int:
    if type(value) is not int or not -(2**63) <= value < 2**63:
        raise ValueError("not a bigint")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("not text")
    return value


_PARSE: dict[str, Callable[[Any], Any]] = {"time": _time, "date": date.fromisoformat, "int": _int, "text": _text}


def _after(order: Sequence[Key]) -> str:
    """Rows after the cursor in the list's order, directions mixed as they may be: (a > x) OR (a = x AND b > y)
    OR ...; each column compared to its parameter `%(_after_N)s`."""
    terms = []
    for i, key in enumerate(order):
        equal = [f"listed.{k.column} = %(_after_{j})s" for j, k in enumerate(order[:i])]
        step = f"listed.{key.column} {'<' if key.descending else '>'} %(_after_{i})s"
        terms.append("(" + " AND ".join([*equal, step]) + ")")
    return "(" + " OR ".join(terms) + ")"


async def fetch_page(
    conn: AsyncConnection,
    listing: Listing,
    query: str,
    params: dict[str, Any],
    request: PageRequest,
    model: type[M],
) -> Page[M]:
    """One page of a domain's named query (its `.sql`; an inner `LIMIT :limit` is given NULL, no limit), each
    row a `model`."""
    if request.updated_since is not None and listing.updated is None:
        raise Invalid(f"the {listing.name} list is computed, not stored: it takes no updated_since")
    inner = query.strip().rstrip(";")
    where, bound = [], {"limit": None, **params}
    if request.updated_since is not None:
        where.append(f"listed.{listing.updated} >= %(_updated_since)s")
        bound["_updated_since"] = request.updated_since
    counted = f"SELECT count(*) AS n FROM ({inner}) AS listed" + (f" WHERE {' AND '.join(where)}" if where else "")
    [total] = await dict_rows(conn, counted, bound)
    if request.cursor is not None:
        where.append(_after(listing.order))
        bound |= {f"_after_{i}": v for i, v in enumerate(_decode(listing, request.cursor))}
    order = ", ".join(f"listed.{k.column}{' DESC' if k.descending else ''}" for k in listing.order)
    paged = (
        f"SELECT * FROM ({inner}) AS listed"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY {order} LIMIT %(_limit)s"
    )
    rows = await dict_rows(conn, paged, bound | {"_limit": request.limit + 1})
    more = len(rows) > request.limit
    rows = rows[: request.limit]
    last = [rows[-1][k.column] for k in listing.order] if more else None
    return _page(model, rows, total["n"], _encode(listing, last) if last else None)


def _page(model: type[M], rows: Sequence[dict[str, Any]], total: int, cursor: str | None) -> Page[M]:
    return Page[model](items=[model(**row) for row in rows], total=total, next_cursor=cursor)  # type: ignore[valid-type]


def page_of(listing: Listing, items: Sequence[T], request: PageRequest) -> Page[T]:
    """The same page over items computed in memory (a derived list, already in the listing's order; the
    order's columns are the items' attributes)."""
    if request.updated_since is not None and listing.updated is None:
        raise Invalid(f"the {listing.name} list is computed, not stored: it takes no updated_since")
    start = 0
    if request.cursor is not None:
        after = _decode(listing, request.cursor)
        start = next((i for i, item in enumerate(items) if _beyond(listing.order, item, after)), len(items))
    chosen = list(items[start : start + request.limit])
    more = start + request.limit < len(items)
    cursor = _encode(listing, [getattr(chosen[-1], k.column) for k in listing.order]) if more else None
    return Page[Any](items=chosen, total=len(items), next_cursor=cursor)


def _beyond(order: Sequence[Key], item: Any, after: list[Any]) -> bool:
    for key, value in zip(order, after, strict=True):
        mine = getattr(item, key.column)
        if mine != value:
            return bool(mine < value) if key.descending else bool(mine > value)
    return False
