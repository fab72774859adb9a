"""Organizations: the SME customers that book machine time. The credit code identifies one, so it is
checked (check character included) before it is stored, and a code can belong to one organization only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from accounts import audit, checks, tax_data, uscc
from accounts.model import Principal
from accounts.sqlfiles import QUERIES
from common.errors import Conflict, Invalid, NotFound
from common.rows import from_row, unique_or_conflict
from common.times import Stamp

ENTITY = "organization"
# What an update may change; the rest is identity or history.
EDITABLE = frozenset(
    {"name", "uscc", "contact_name", "contact_phone", "contact_email", "subsidy_programs", "active"}
    | {"reference_required"}
    | set(tax_data.FIELDS)
)


class Organization(BaseModel):
    id: int
    name: str
    uscc: str
    contact_name: str
    contact_phone: str
    contact_email: str
    subsidy_programs: list[str]
    active: bool
    created_at: Stamp
    updated_at: Stamp
    reference_required: bool = Field(description="every booking needs a project or purchase-order reference")
    taxpayer_type: str = Field(description="general (一般纳税人), small_scale (小规模纳税人) or empty: not given")
    invoice_address: str = Field(description="the address printed on its tax invoices")
    invoice_phone: str = Field(description="the phone printed on its tax invoices")
    bank_name: str = Field(description="the bank printed on its tax invoices")
    bank_account: str = Field(description="the account printed on its tax invoices, digits")


async def create_organization(
    conn: AsyncConnection,
    *,
    name: str,
    uscc: str,
    contact_name: str = "",
    contact_phone: str = "",
    contact_email: str = "",
    subsidy_programs: Sequence[str] = (),
    reference_required: bool = False,
    taxpayer_type: str = "",
    invoice_address: str = "",
    invoice_phone: str = "",
    bank_name: str = "",
    bank_account: str = "",
    at: datetime,
    actor: Principal | str,
) -> int:
    """Subsidy program ids are not checked here: the programs are the center's configuration, which the
    caller knows (the API refuses unknown ones)."""
    fields = _clean(
        {
            "name": name,
            "uscc": uscc,
            "contact_name": contact_name,
            "contact_phone": contact_phone,
            "contact_email": contact_email,
            "subsidy_programs": subsidy_programs,
            "reference_required": reference_required,
            "taxpayer_type": taxpayer_type,
            "invoice_address": invoice_address,
            "invoice_phone": invoice_phone,
            "bank_name": bank_name,
            "bank_account": bank_account,
        }
    )
    row = await QUERIES.insert_organization(conn, **fields, at=at)
    if row is None:
        raise Conflict(_taken(fields["uscc"]))
    created = await get_organization(conn, row[0])
    await audit.record(conn, at, actor, "create", ENTITY, created.id, after=created)
    return created.id


async def get_organization(conn: AsyncConnection, organization_id: int) -> Organization:
    row = await QUERIES.organization(conn, id=organization_id)
    if row is None:
        raise missing(organization_id)
    return from_row(Organization, row)


async def list_organizations(conn: AsyncConnection, *, organization_id: int | None = None) -> list[Organization]:
    """All organizations by name, or just the one given (a customer's view)."""
    return [from_row(Organization, row) async for row in QUERIES.organizations(conn, id=organization_id)]


async def search_organizations(conn: AsyncConnection, text: str | None, limit: int = 200) -> list[Organization]:
    """Organizations whose name, credit code or contact holds `text` (any case), by name."""
    rows = QUERIES.search_organizations(conn, q=text or None, limit=limit)
    return [from_row(Organization, row) async for row in rows]


async def update_organization(
    conn: AsyncConnection,
    organization_id: int,
    changes: Mapping[str, Any],
    *,
    at: datetime,
    actor: Principal | str,
) -> Organization:
    """A partial update: `changes` holds only the fields to change (names from EDITABLE)."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise Invalid(f"cannot change {', '.join(sorted(unknown))} of an organization")
    row = await QUERIES.organization_for_update(conn, id=organization_id)
    if row is None:
        raise missing(organization_id)
    before = from_row(Organization, row)
    current = before.model_dump(include=set(EDITABLE))
    merged = {**current, **_clean({**current, **changes})}
    if merged == current:
        return before
    async with unique_or_conflict(conn, _taken(merged["uscc"])):
        await QUERIES.update_organization(conn, id=organization_id, **merged)
    after = await get_organization(conn, organization_id)
    await audit.record(conn, at, actor, "update", ENTITY, organization_id, before=before, after=after)
    return after


def missing(organization_id: int) -> NotFound:
    """The one answer for an organization that does not exist and for one the caller may not see."""
    return NotFound(f"no organization {organization_id}")


def _taken(code: str) -> str:
    return f"the credit code {code} belongs to another organization already"


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    try:
        code = uscc.validate(fields["uscc"])
    except uscc.InvalidCode as exc:
        raise Invalid(str(exc)) from None
    contact_email = checks.optional_text(fields["contact_email"], "a contact email", checks.EMAIL_MAX)
    programs = [checks.config_id(p, "subsidy program") for p in fields["subsidy_programs"]]
    return {
        **fields,
        "name": checks.name(fields["name"], "an organization's name"),
        "uscc": code,
        "contact_name": checks.optional_text(fields["contact_name"], "a contact name", checks.NAME_MAX),
        "contact_phone": checks.optional_text(fields["contact_phone"], "a contact phone", checks.PHONE_MAX),
        "contact_email": checks.email(contact_email, "the contact email") if contact_email else "",
        "subsidy_programs": sorted(set(programs)),
        **tax_data.clean({name: fields[name] for name in tax_data.FIELDS}),
    }
