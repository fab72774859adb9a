"""A real SMTP server for the tests (aiosmtpd in the test's loop, on a port held from the start) and the app
wired to it, with the scheduler's notification steps run on demand."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
from aiosmtpd.smtp import SMTP

from fabhub.devservices import listening_socket
from tests.accounts_rig import Clock
from tests.booking_rig import NOW
from tests.http import app_for, serving


class Mailbox:
    """An SMTP server in the test's loop that can go away and come back on the same port."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.sock = listening_socket()
        self.port = self.sock.getsockname()[1]
        self.server: asyncio.Server | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    async def start(self) -> None:
        sock = self.sock if self.server is None else bound(self.port)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: SMTP(self, hostname="mail.test"), sock=sock)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


def bound(port: int) -> Any:
    """A listening socket on a loopback port used before: a server coming back where it was."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(16)
    return sock


@contextlib.asynccontextmanager
async def center(
    db_url: str, pool: Any, **settings: Any
) -> AsyncIterator[tuple[Any, httpx.AsyncClient, Mailbox, Clock]]:
    mailbox = Mailbox()
    await mailbox.start()
    clock = Clock(NOW)
    app = app_for(db_url, clock=clock, smtp_url=f"smtp://127.0.0.1:{mailbox.port}?starttls=off", **settings)
    try:
        async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield app, client, mailbox, clock
    finally:
        with contextlib.suppress(AssertionError):
            await mailbox.stop()


async def notify(app: Any) -> None:
    """What the scheduler does every few seconds: events to messages, then the sending."""
    for job in ("notification-messages", "notification-sending"):
        ran, _ = await app.state.jobs.run(job)
        assert ran
