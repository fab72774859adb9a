"""Domain errors of the accounts package. The service modules raise them with a reason a person can act on;
the HTTP layer maps each kind to one status in one place (accounts.api), the CLI to an exit code."""


class AccountsError(Exception):
    """Base of the errors below; its message is the reason shown to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFound(AccountsError):
    """No such organization, user or qualification (or not one the caller may see)."""


class Conflict(AccountsError):
    """The change collides with existing data, such as a credit code or an email already in use."""


class Invalid(AccountsError):
    """The input breaks a rule: a bad credit code, a weak password, a customer without an organization."""
