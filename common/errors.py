"""The one exception hierarchy. A domain raises one of these with a reason a person can act on; the HTTP
edge answers it as RFC 9457 problem details (common.problems), the CLI prints the reason with an exit code.
Extra keyword arguments become extension members of the problem (e.g. a taken slot's `alternatives`)."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


class Unauthorized(DomainError):
    """No valid credentials: log in (the answer carries WWW-Authenticate)."""

    status = 401
    title = "Not authenticated"


class Forbidden(DomainError):
    """Known, but this role or organization may not do it."""

    status = 403
    title = "Forbidden"


class NotFound(DomainError):
    """No such thing, or not one the caller may see."""

    status = 404
    title = "Not found"


class Conflict(DomainError):
    """The change collides with the state of things: a slot taken, an email in use, an invoice issued."""

    status = 409
    title = "Conflict"


class Invalid(DomainError):
    """The input breaks a rule."""

    status = 422
    title = "Invalid input"


class TooManyRequests(DomainError):
    """Slow down: `retry_after` seconds."""

    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)}, **extra)
        self.retry_after = retry_after
