"""Secrets sent in an emailed link (a registration's confirmation, an invitation): the token goes out once in
the link, and only its SHA-256 is kept, so a copy of the database opens no link."""

from __future__ import annotations

import hashlib
import re
import secrets

# What a link's token looks like (token_urlsafe(32) gives 43 characters): anything else is no token of ours.
LINK_TOKEN = r"^[A-Za-z0-9_-]{20,100}$"


def new_token() -> tuple[str, str]:
    """A fresh token for the link, and the digest to store in its place."""
    token = secrets.token_urlsafe(32)
    return token, digest(token)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def plausible(token: str) -> bool:
    return re.fullmatch(LINK_TOKEN, token) is not None
