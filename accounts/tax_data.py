"""An organization's buyer tax data, as its tax invoices print it (购买方 地址、电话、开户行及账号): checked here, so
the API and the admin page give the same reasons, and the tax platform never gets a phone
number with letters or an account with spaces."""

from __future__ import annotations

import re

from accounts import checks
from common.errors import Invalid

TAXPAYER_TYPES = {"general": "一般纳税人", "small_scale": "小规模纳税人"}
FIELDS = ("taxpayer_type", "invoice_address", "invoice_phone", "bank_name", "bank_account")
ADDRESS_MAX = 200
BANK_MAX = 100
_PHONE = re.compile(r"^\+?[0-9][0-9 -]{4,27}[0-9]$")
_ACCOUNT = re.compile(r"^[0-9]{8,32}$")


def clean(values: dict[str, str]) -> dict[str, str]:
    """The five fields checked and trimmed; an account typed in groups of four loses its spaces."""
    kind = values["taxpayer_type"].strip()
    if kind and kind not in TAXPAYER_TYPES:
        raise Invalid(f"the taxpayer type is {' or '.join(TAXPAYER_TYPES)} (or empty)")
    phone = checks.optional_text(values["invoice_phone"], "the invoice phone", 30)
    if phone and not _PHONE.match(phone):
        raise Invalid("the invoice phone has digits, dashes and spaces only (5 to 30), e.g. 0523-84812345")
    account = re.sub(r"[ -]", "", checks.optional_text(values["bank_account"], "the bank account", 60))
    if account and not _ACCOUNT.match(account):
        raise Invalid("the bank account has 8 to 32 digits")
    return {
        "taxpayer_type": kind,
        "invoice_address": checks.optional_text(values["invoice_address"], "the invoice address", ADDRESS_MAX),
        "invoice_phone": phone,
        "bank_name": checks.optional_text(values["bank_name"], "the bank's name", BANK_MAX),
        "bank_account": account,
    }
