"""The unified social credit code (统一社会信用代码, GB 32100-2015) every Chinese organization has: 18 characters
from a 31-letter alphabet (no I, O, S, V, Z), the last one a check character over the first 17."""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_VALUE = {c: i for i, c in enumerate(ALPHABET)}


class InvalidCode(ValueError):
    pass


def check_character(first17: str) -> str:
    total = sum(_VALUE[c] * w for c, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def validate(code: str) -> str:
    """The code in upper case, or InvalidCode saying what is wrong with it."""
    code = code.strip().upper()
    if len(code) != 18:
        raise InvalidCode(f"a unified social credit code has 18 characters, this one has {len(code)}")
    bad = sorted({c for c in code if c not in _VALUE})
    if bad:
        raise InvalidCode(f"character(s) {', '.join(bad)} cannot appear in a unified social credit code")
    expected = check_character(code[:17])
    if code[17] != expected:
        raise InvalidCode(f"check character is {code[17]}, the first 17 characters give {expected}: a typo?")
    return code
