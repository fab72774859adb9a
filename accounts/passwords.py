"""Password hashing with argon2id (argon2-cffi, RFC 9106 parameters). Hashing costs tens of milliseconds on
purpose, so it runs in a worker thread and never stalls the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 8
MAX_LENGTH = 128

_hasher = PasswordHasher()
# Verified against when the account does not exist, so a wrong email costs as long as a wrong password.
_DUMMY = _hasher.hash("fabhub: no such account")


class WeakPassword(ValueError):
    pass


def check_policy(password: str) -> str:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise WeakPassword(f"a password has {MIN_LENGTH} to {MAX_LENGTH} characters")
    if password.strip() != password:
        raise WeakPassword("a password cannot start or end with spaces")
    return password


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, check_policy(password))


async def verify_password(stored_hash: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(stored_hash or _DUMMY, password) and bool(stored_hash)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
