"""The demo's mailbox: an SMTP server in the demo's own event loop that keeps each message in a Maildir under
the data directory, so a visitor sees what the center would send (and /admin/notifications lists it). Only the
demo starts it, and only when FABHUB_SMTP_URL is unset; production mail goes where that setting says."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP

from fabhub.devservices import listening_socket


@contextlib.asynccontextmanager
async def demo_mailbox(maildir: Path) -> AsyncIterator[str]:
    """Yields the SMTP URL to send to; the messages land in `maildir` (cur/, new/, tmp/), one file each."""
    handler = Mailbox(maildir)  # creates the Maildir (the data directory exists by now)
    sock = listening_socket()
    port = sock.getsockname()[1]
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(handler, hostname="fabhub-demo"), sock=sock)
    try:
        yield f"smtp://127.0.0.1:{port}?starttls=off"
    finally:
        server.close()
        await server.wait_closed()
