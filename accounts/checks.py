"""Rules for the free-text fields people type, shared by organizations and users, so the API, the CLI and
other packages get the same reasons."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable

from common.errors import Invalid

NAME_MAX = 200
LANGUAGES = ("zh-CN", "en")
PHONE_MAX = 50
EMAIL_MAX = 254
# Ids from the center's configuration (device classes, subsidy programs), as devices.yaml writes them.
ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Deliberately loose (one @, a dot in the domain, no spaces): the mailbox's existence is what matters and no
# pattern can check it; this catches typos such as a missing @ or a pasted name.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]+$")


def name(value: str, what: str) -> str:
    value = optional_text(value, what, NAME_MAX)
    if not value:
        raise Invalid(f"{what} has 1 to {NAME_MAX} characters")
    return value


def optional_text(value: str, what: str, limit: int) -> str:
    value = value.strip()
    if len(value) > limit:
        raise Invalid(f"{what} has at most {limit} characters")
    # Control characters (a NUL above all, which PostgreSQL text refuses) are never part of a name.
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise Invalid(f"{what} cannot contain control characters")
    return value


def email(value: str, what: str = "email") -> str:
    """Lower case, so one mailbox is one account whatever case it is typed in."""
    value = value.strip().lower()
    if len(value) > EMAIL_MAX or not _EMAIL.match(value) or any(unicodedata.category(c) == "Cc" for c in value):
        raise Invalid(f"{what} {value[:EMAIL_MAX]!r} is not an email address")
    return value


def language(value: str) -> str:
    """The language of the messages a person is sent."""
    if value not in LANGUAGES:
        raise Invalid(f"the language is {' or '.join(LANGUAGES)}")
    return value


def config_id(value: str, what: str) -> str:
    if not ID.match(value):
        raise Invalid(f"{what} {value[:64]!r} is not an id (lower-case letters, digits, - and _)")
    return value


def known_programs(programs: Iterable[str] | None, known: Callable[[str], bool]) -> None:
    """Subsidy programs are the center's configuration (devices.yaml): an id it does not have is a typo."""
    unknown = sorted({p for p in programs or () if not known(p)})
    if unknown:
        raise Invalid(f"unknown subsidy program(s): {', '.join(unknown)}")
