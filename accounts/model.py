"""Who is asking: roles and the authenticated principal every route receives."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    customer = "customer"
    technician = "technician"
    finance = "finance"
    admin = "admin"


ALL_ROLES = frozenset(Role)
STAFF = frozenset({Role.technician, Role.finance, Role.admin})
# Staff who may change things on the floor (bookings of others, maintenance, qualifications, overrides).
OPERATORS = frozenset({Role.technician, Role.admin})


@dataclass(frozen=True, slots=True)
class Principal:
    id: int
    email: str
    name: str
    role: Role
    organization_id: int | None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF

    @property
    def is_operator(self) -> bool:
        return self.role in OPERATORS

    def sees_organization(self, organization_id: int | None) -> bool:
        """Customers see their own organization only; staff see every one."""
        return self.is_staff or organization_id == self.organization_id

    @property
    def label(self) -> str:
        return self.email
