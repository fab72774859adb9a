"""Companies registering themselves: the form with the business licence, the email confirmation, and an
admin's approval (which creates the organization and its first user) or refusal with a reason.

Abuse is held off without a CAPTCHA: nothing is created until a person at the center approves, an email must
be confirmed before a registration reaches the admins, and each client address and each email may start only
a few registrations in a while (counted in the database, so across processes)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection
from pydantic import BaseModel

from accounts import audit, checks, passwords, tokens, uscc
from accounts.model import Principal, Role
from accounts.organizations import create_organization
from accounts.sqlfiles import QUERIES
from accounts.users import add_user
from common.errors import Conflict, Invalid, NotFound, TooManyRequests
from common.paging import Key, Listing, Page, PageRequest, fetch_page
from common.rows import dict_rows
from common.times import Stamp
from outbox.events import publish

ENTITY = "registration"
MAX_LICENCE_BYTES = 10 * 1024 * 1024
CONFIRM_WITHIN = timedelta(hours=48)
PER_ADDRESS = (5, timedelta(hours=1))
PER_EMAIL = (3, timedelta(days=1))
# What a licence file starts with, by type: the name and the browser's word are not evidence.
SIGNATURES = {b"%PDF-": "application/pdf", b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}
EXTENSIONS = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}


REGISTRATIONS = Listing("registrations", (Key("created_at", "time", descending=True), Key("id", "int", True)))


class Registration(BaseModel):
    id: int
    organization_name: str
    uscc: str
    contact_name: str
    contact_phone: str
    contact_email: str
    language: str
    licence_sha256: str
    licence_type: str
    licence_size: int
    status: str
    created_at: Stamp
    confirmed_at: Stamp | None
    decided_at: Stamp | None
    decided_by: int | None
    reason: str | None
    organization_id: int | None
    user_id: int | None
    updated_at: Stamp


@dataclass(frozen=True, slots=True)
class Application:
    organization_name: str
    uscc: str
    contact_name: str
    contact_phone: str
    contact_email: str
    password: str
    language: str = "zh-CN"


@dataclass(frozen=True, slots=True)
class Licences:
    """Where the licence files live (under FABHUB_DATA_DIR; shared storage when several app processes run)."""

    folder: Path

    def path(self, digest: str, media_type: str) -> Path:
        return self.folder / f"{digest}.{EXTENSIONS[media_type]}"

    def store(self, content: bytes) -> tuple[str, str]:
        """(SHA-256, media type) of a checked file, written once under its hash (atomically)."""
        if not content:
            raise Invalid("the business licence file is empty")
        if len(content) > MAX_LICENCE_BYTES:
            raise Invalid(f"the business licence file is larger than {MAX_LICENCE_BYTES // (1024 * 1024)} MB")
        media_type = next((t for magic, t in SIGNATURES.items() if content.startswith(magic)), None)
        if media_type is None:
            raise Invalid("the business licence must be a PDF, JPG or PNG file")
        digest = hashlib.sha256(content).hexdigest()
        target = self.path(digest, media_type)
        if not target.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(f".{os.getpid()}.part")
            partial.write_bytes(content)
            partial.replace(target)
        return digest, media_type


async def submit(
    conn: AsyncConnection,
    application: Application,
    licence: bytes,
    licences: Licences,
    address: str,
    confirm_url: str,
    now: datetime,
) -> Registration:
    """Stores a registration awaiting its email confirmation and publishes the message that carries the link
    (`confirm_url` with the token appended)."""
    fields = _checked(application)
    for count, (limit, window), what in (
        (await QUERIES.registrations_from_address(conn, address=address, since=now - PER_ADDRESS[1]), PER_ADDRESS,
         "from this address"),
        (await QUERIES.registrations_from_email(conn, email=fields["contact_email"], since=now - PER_EMAIL[1]),
         PER_EMAIL, "for this email"),
    ):  # fmt: skip
        if count >= limit:
            hours = int(window.total_seconds() // 3600)
            raise TooManyRequests(f"at most {limit} registrations {what} in {hours} hours", int(window.total_seconds()))
    if await QUERIES.uscc_in_use(conn, uscc=fields["uscc"], now=now):
        raise Conflict(f"the credit code {fields['uscc']} is registered already or awaits a decision")
    if await QUERIES.email_in_use(conn, email=fields["contact_email"]):
        raise Conflict(f"the email {fields['contact_email']} belongs to an account already: log in instead")
    try:
        password_hash = await passwords.hash_password(application.password)
    except passwords.WeakPassword as exc:
        raise Invalid(str(exc)) from None
    digest, media_type = licences.store(licence)
    token, confirm_digest = tokens.new_token()
    registration_id = await QUERIES.insert_registration(
        conn,
        **fields,
        password_hash=password_hash,
        licence_sha256=digest,
        licence_type=media_type,
        licence_size=len(licence),
        confirm_digest=confirm_digest,
        confirm_expires_at=now + CONFIRM_WITHIN,
        client_address=address,
        now=now,
    )
    found = await get(conn, registration_id)
    await audit.record(conn, now, "registration form", "submit", ENTITY, registration_id, after=found)
    link = f"{confirm_url}?token={token}"
    await publish(conn, "registration.submitted", {"registration": found, "confirm_url": link}, at=now)
    return found


async def confirm(conn: AsyncConnection, token: str, now: datetime) -> Registration:
    row = await QUERIES.confirm_registration(conn, digest=tokens.digest(token), now=now)
    if row is None:
        raise NotFound("this confirmation link is not valid (used already, or older than 48 hours)")
    await audit.record(conn, now, "registration form", "confirm", ENTITY, row[0])
    return await get(conn, row[0])


async def get(conn: AsyncConnection, registration_id: int) -> Registration:
    rows = await dict_rows(conn, QUERIES.registration_rows.sql, {"status": None, "id": registration_id})
    if not rows:
        raise NotFound(f"no registration {registration_id}")
    return Registration(**rows[0])


async def listing(conn: AsyncConnection, request: PageRequest, status: str | None = None) -> Page[Registration]:
    """Newest first; `status` is checked at the edge."""
    params = {"status": status, "id": None}
    return await fetch_page(conn, REGISTRATIONS, QUERIES.registration_rows.sql, params, request, Registration)


async def approve(
    conn: AsyncConnection, registration_id: int, programs: list[str], actor: Principal, now: datetime
) -> Registration:
    """Creates the organization (eligible for `programs`) and its first user, a customer who logs in with
    the password chosen when registering."""
    locked = await _pending(conn, registration_id)
    found = await get(conn, registration_id)
    organization_id = await create_organization(
        conn,
        name=found.organization_name,
        uscc=found.uscc,
        contact_name=found.contact_name,
        contact_phone=found.contact_phone,
        contact_email=found.contact_email,
        subsidy_programs=programs,
        at=now,
        actor=actor,
    )
    user_id = await add_user(
        conn,
        email=found.contact_email,
        name=found.contact_name,
        role=Role.customer,
        organization_id=organization_id,
        password_hash=locked["password_hash"],
        at=now,
        actor=actor,
    )
    return await _decide(conn, registration_id, "approved", None, organization_id, user_id, actor, now)


async def refuse(
    conn: AsyncConnection, registration_id: int, reason: str, actor: Principal, now: datetime
) -> Registration:
    await _pending(conn, registration_id)
    reason = checks.name(reason, "the reason")
    return await _decide(conn, registration_id, "refused", reason, None, None, actor, now)


async def _pending(conn: AsyncConnection, registration_id: int) -> dict[str, Any]:
    rows = await dict_rows(conn, QUERIES.lock_registration.sql, {"id": registration_id})
    if not rows:
        raise NotFound(f"no registration {registration_id}")
    if rows[0]["status"] != "pending":
        state = "awaits its email confirmation" if rows[0]["status"] == "unconfirmed" else f"is {rows[0]['status']}"
        raise Conflict(f"registration {registration_id} {state}")
    return rows[0]


async def _decide(
    conn: AsyncConnection,
    registration_id: int,
    status: str,
    reason: str | None,
    organization_id: int | None,
    user_id: int | None,
    actor: Principal,
    now: datetime,
) -> Registration:
    await QUERIES.decide_registration(
        conn,
        id=registration_id,
        status=status,
        now=now,
        by=actor.id,
        reason=reason,
        organization_id=organization_id,
        user_id=user_id,
    )
    found = await get(conn, registration_id)
    action = "approve" if status == "approved" else "refuse"
    await audit.record(conn, now, actor, action, ENTITY, registration_id, after=found, reason=reason)
    await publish(conn, f"registration.{status}", {"registration": found}, at=now)
    return found


def _checked(application: Application) -> dict[str, str]:
    try:
        code = uscc.validate(application.uscc)
    except uscc.InvalidCode as exc:
        raise Invalid(str(exc)) from None
    phone = checks.optional_text(application.contact_phone, "the contact phone", checks.PHONE_MAX)
    if not phone:
        raise Invalid("give a contact phone")
    return {
        "organization_name": checks.name(application.organization_name, "the company's name"),
        "uscc": code,
        "contact_name": checks.name(application.contact_name, "the contact's name"),
        "contact_phone": phone,
        "contact_email": checks.email(application.contact_email, "the contact email"),
        "language": checks.language(application.language),
    }
