"""What can go wrong with a booking request, each with the HTTP status the router answers with."""

from __future__ import annotations

from typing import Any


class BookingError(Exception):
    status = 400

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"detail": self.message, **self.extra}


class NotFound(BookingError):
    status = 404


class Forbidden(BookingError):
    status = 403


class Invalid(BookingError):
    status = 422


class Conflict(BookingError):
    """The slot is taken (alternatives attached), or the booking is in a state that does not allow this."""

    status = 409
