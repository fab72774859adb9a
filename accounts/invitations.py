"""People invited by email. An admin creates the account without a password, and FabHub emails the person a
link (it holds 7 days and works once; inviting again replaces it) to a page where they choose one under the
usual rules (accounts.passwords). The invitation and its acceptance are audited on the user; the email goes
through the outbox as `user.invited`, in the language the admin chose."""

from __future__ import annotations

from datetime import datetime, timedelta

from psycopg import AsyncConnection
from pydantic import BaseModel

from accounts import audit, checks, tokens
from accounts.model import Principal, Role
from accounts.sqlfiles import QUERIES
from accounts.users import ENTITY, User, active_principal, add_passwordless_user, get_user, missing, set_password
from common.errors import Conflict, NotFound
from common.times import Stamp
from outbox.events import publish

INVITE_FOR = timedelta(days=7)
INVITE_PAGE = "/invite"  # the page the emailed link opens (fabhub/web), the token after a slash
NOT_VALID = (
    "this invitation link is not valid (used already, replaced by a newer invitation, or older than 7 days): "
    "ask the center to invite you again"
)


class Invited(BaseModel):
    user: User
    expires_at: Stamp


def link_base(site: str) -> str:
    """The address of the invitation page on the site at `site` (the request's base URL)."""
    return site.rstrip("/") + INVITE_PAGE


async def invite(
    conn: AsyncConnection,
    *,
    email: str,
    name: str,
    role: Role,
    organization_id: int | None,
    language: str,
    link: str,
    at: datetime,
    actor: Principal,
) -> Invited:
    """Creates the user without a password and sends the link (`link` with the token appended)."""
    language = checks.language(language)
    user_id = await add_passwordless_user(
        conn, email=email, name=name, role=role, organization_id=organization_id, at=at, actor=actor
    )
    return await _send(conn, user_id, language, link, at, actor)


async def reinvite(conn: AsyncConnection, user_id: int, link: str, at: datetime, actor: Principal) -> Invited:
    """A new link for a user who has not chosen a password yet, in the language of the last one; the old
    link stops working."""
    row = await QUERIES.invitation_of(conn, id=user_id)
    if row is None:
        raise missing(user_id)
    has_password, active, _, language = row
    if has_password:
        raise Conflict(f"user {user_id} has a password already: set a new one instead of inviting again")
    if not active:
        raise Conflict(f"user {user_id} is deactivated: reactivate the account before inviting again")
    return await _send(conn, user_id, language or checks.LANGUAGES[0], link, at, actor)


async def invitation_state(conn: AsyncConnection, user_id: int) -> tuple[bool, datetime | None]:
    """Whether the user may be invited (again): no password yet; and until when the last link holds."""
    row = await QUERIES.invitation_of(conn, id=user_id)
    if row is None:
        raise missing(user_id)
    has_password, _, expires_at, _ = row
    return not has_password, expires_at


async def invited(conn: AsyncConnection, token: str, now: datetime) -> Principal:
    """Whom the link's token invites, while it holds and the account is active; the invitation stays locked
    until the caller's transaction ends."""
    user_id = None
    if tokens.plausible(token):
        user_id = await QUERIES.invited_user(conn, digest=tokens.digest(token), now=now)
    person = await active_principal(conn, user_id) if user_id is not None else None
    if person is None:
        raise NotFound(NOT_VALID)
    return person


async def accept(conn: AsyncConnection, token: str, password: str, now: datetime) -> Principal:
    """Sets the invited person's password (which ends the invitation) inside the caller's transaction; a
    refused password leaves the link working. Returns who accepted, to be logged in."""
    person = await invited(conn, token, now)
    await set_password(conn, person.id, password=password, at=now, actor=person)
    await audit.record(conn, now, person, "accept_invitation", ENTITY, person.id)
    return person


async def _send(
    conn: AsyncConnection, user_id: int, language: str, link: str, at: datetime, actor: Principal
) -> Invited:
    token, digest = tokens.new_token()
    expires_at = at + INVITE_FOR
    await QUERIES.put_invitation(
        conn, user_id=user_id, digest=digest, expires_at=expires_at, language=language, invited_by=actor.id, now=at
    )
    user = await get_user(conn, user_id)
    after = {"expires_at": expires_at, "language": language}
    await audit.record(conn, at, actor, "invite", ENTITY, user_id, after=after)
    payload = {
        "user": user,
        "link": f"{link}/{token}",
        "expires_at": expires_at,
        "language": language,
        "invited_by": actor.name,
    }
    await publish(conn, "user.invited", payload, at=at)
    return Invited(user=user, expires_at=expires_at)
