"""Domain errors of the accounts package. The service modules raise them with a reason a person can act on;
each kind carries its HTTP status, which the accounts router answers with; the CLI maps them to an exit code."""


class AccountsError(Exception):
    """Base of the errors below; its message is the reason shown to the caller, `status` its HTTP answer."""

    status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFound(AccountsError):
    """No such organization, user or qualification (or not one the caller may see)."""

    status = 404


class Conflict(AccountsError):
    """The change collides with existing data, such as a credit code or an email already in use."""

    status = 409


class Invalid(AccountsError):
    """The input breaks a rule: a bad credit code, a weak password, a customer without an organization."""

    status = 422
