"""A TCP proxy that tests put between a client and a simulated device, to break the link on demand in the
ways real networks break: the peer stops answering (`blackhole`), the connection is cut (`drop`), or nothing
listens any more (`refuse`), and then `resume` on the same port. Every method is awaited, so a test knows
the fault is in place when the call returns."""

from __future__ import annotations

import asyncio


class FaultProxy:
    """Forwards each accepted connection to the target. Counters: `accepted` connections, `bytes_up`
    (client to target) and `bytes_down` (target to client), counting bytes actually forwarded."""

    def __init__(
        self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1", listen_port: int = 0
    ) -> None:
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self._port = listen_port
        self._server: asyncio.Server | None = None
        self._forwarding = True
        self._writers: set[asyncio.StreamWriter] = set()
        self.accepted = 0
        self.bytes_up = 0
        self.bytes_down = 0

    @property
    def port(self) -> int:
        """The listening port; fixed at the first start, so `resume` comes back on the same one."""
        return self._port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.listen_host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self.refuse()

    async def pass_through(self) -> None:
        """Forward again, listening again if `refuse` stopped it."""
        self._forwarding = True
        if self._server is None:
            await self.start()

    resume = pass_through

    async def blackhole(self) -> None:
        """Keep every connection open but discard all data both ways, like a peer that went silent."""
        self._forwarding = False

    async def drop(self) -> None:
        """Close every current connection (the client sees EOF); new ones are still accepted."""
        writers = list(self._writers)
        for writer in writers:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)

    async def refuse(self) -> None:
        """Stop listening, so connecting is refused, and close the current connections."""
        if self._server is not None:
            self._server.close()
            self._server = None
        await self.drop()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(client_w)
        target_w = None
        try:
            target_r, target_w = await asyncio.open_connection(*self.target)
            self._writers.add(target_w)
            if not client_w.is_closing():  # a drop() can happen while connecting to the target
                await asyncio.gather(self._pump(client_r, target_w, up=True), self._pump(target_r, client_w, up=False))
        except OSError:
            pass  # target unreachable: the client just sees its connection closed
        finally:
            for writer in (client_w, target_w):
                if writer is not None:
                    writer.close()
                    self._writers.discard(writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool) -> None:
        """Copy one direction until EOF or error, then close the other side so the reverse pump ends too."""
        try:
            while data := await reader.read(65536):
                if not self._forwarding:
                    continue
                if up:
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass  # the peer reset the connection: same as EOF here
        finally:
            writer.close()
