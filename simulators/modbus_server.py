"""What every simulated Modbus TCP device here shares: a register table rebuilt after every tick (so a
multi-word value is always read consistently), holding (FC03) and input (FC04) registers answering from the
same table, optional flags also readable as coils (FC01) and discrete inputs (FC02), exception 0x02 outside
the defined blocks and for writes, and fault injection (`set_register`, `fail_reads`, `stop`/`start`).

pymodbus 3.16 notes: the ModbusDeviceContext/ModbusSequentialDataBlock datastores are deprecated there (they
are converted to SimDevice and log a warning), so this uses SimDevice/SimData with four separate blocks,
where undefined addresses answer 0x02, and the SimDevice `action` hook, which runs on every access after
that address check: it copies the requested words from the table and answers 0x04 for failing reads. Two
limits of that hook: pymodbus checks coil addresses per 16-bit word and hands the action a word count, not a
bit count, so a coil read starting inside the flags that runs on past them answers zeros there instead of
0x02, and `fail_reads` takes a coil read as touching everything from its start to the last flag.
`ServerAsyncStop()` stops only the process-wide last-started server, so each device shuts its own down."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from types import TracebackType
from typing import Self

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

STEP_S = 5.0  # longest integration step, so what a device integrates follows phase changes within a tick


def words(fmt: str, value: float) -> list[int]:
    """`value` packed big-endian by struct format `fmt`, as 16-bit words, high word first."""
    raw = struct.pack(">" + fmt, value)
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


class RegisterServer:
    """A device on `host:port` (port 0: a free one, in `port` once started). Subclasses define BLOCKS (first
    address, count), FLAGS (a range of flag registers, or an empty one), `advance` and `registers`. After
    changing the device directly call `tick(0)`; `speed` 0 means no background ticking, time then moves only
    by `tick()`."""

    BLOCKS: tuple[tuple[int, int], ...] = ()
    FLAGS: range = range(0)

    def __init__(self, device_id: str, port: int, *, host: str = "127.0.0.1", speed: float = 1.0,
                 tick_s: float = 0.1) -> None:  # fmt: skip
        self.device_id = device_id
        self.port = port
        self.host = host
        self.speed = speed
        self.tick_s = tick_s
        self.addresses = frozenset(a for start, n in self.BLOCKS for a in range(start, start + n))
        self._server: ModbusTcpServer | None = None
        self._ticker: asyncio.Task | None = None
        self._overrides: dict[int, int] = {}
        self._failing: frozenset[int] = frozenset()
        self._table: dict[int, int] = {}

    # -- what a device does -----------------------------------------------------------------------

    def advance(self, dt: float) -> None:
        """Move the device on by `dt` simulated seconds (at most STEP_S at a time)."""
        raise NotImplementedError

    def registers(self) -> list[tuple[int, list[int]]]:
        """The table now, as (first address, words) runs inside BLOCKS; the rest reads 0."""
        raise NotImplementedError

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        self.refresh()
        flags = self.FLAGS

        def bits() -> list[SimData]:  # pymodbus wants a block; without flags every bit read answers 0x02 anyway
            defined = flags or range(1)
            return [SimData(defined.start, values=[False] * len(defined), datatype=DataType.BITS)]

        def blocks() -> list[SimData]:
            return [SimData(a, values=[0] * n, datatype=DataType.REGISTERS) for a, n in self.BLOCKS]

        device = SimDevice(0, simdata=(bits(), bits(), blocks(), blocks()), action=self._on_access)
        self._server = ModbusTcpServer(device, address=(self.host, self.port))  # device 0 answers any unit id
        await self._server.serve_forever(background=True)
        if self.port == 0:  # the kernel's pick, held from the start; a restart comes back on it
            # pymodbus annotates `transport` as a BaseTransport, but a listener's is the asyncio.Server it created.
            self.port = self._server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        if self.speed > 0:
            self._ticker = asyncio.create_task(self._run(), name=f"modbus-{self.device_id}")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._server is not None:
            await self._server.shutdown()  # also closes the open client connections
            self._server = None

    async def restart(self) -> None:
        """A reboot seen from the network; what the device counts carries on."""
        await self.stop()
        await self.start()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- time -------------------------------------------------------------------------------------

    async def tick(self, sim_seconds: float) -> None:
        """Advance by `sim_seconds` and publish the new registers; `tick(0)` just publishes."""
        left = max(0.0, sim_seconds)
        while left > 0:
            dt = min(left, STEP_S)
            self.advance(dt)
            left -= dt
        self.refresh()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            await self.tick(self.tick_s * self.speed)

    def refresh(self) -> None:
        table = dict.fromkeys(self.addresses, 0)
        for start, run in self.registers():
            table.update(zip(range(start, start + len(run)), run, strict=True))
        self._table = table

    # -- fault injection --------------------------------------------------------------------------

    def set_register(self, address: int, value: int) -> None:
        """Make `address` read `value` (negative means int16) until `clear_overrides()`."""
        if address not in self.addresses:
            raise ValueError(f"register {address} is not in {self.device_id}'s table")
        if not -32768 <= value <= 65535:
            raise ValueError(f"{value} does not fit a 16-bit register")
        self._overrides[address] = value & 0xFFFF

    def fail_reads(self, addresses: set[int]) -> None:
        """Answer exception 0x04 to any read touching `addresses` (replacing the previous set)."""
        self._failing = frozenset(addresses)

    def clear_overrides(self) -> None:
        """Drop both `set_register` values and `fail_reads`."""
        self._overrides.clear()
        self._failing = frozenset()

    def register(self, address: int) -> int:
        """The word a client would read now."""
        return self._overrides.get(address, self._table[address])

    async def _on_access(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """SimDevice action, called after pymodbus found every address defined: fill in the words read.
        For coils and discrete inputs `address` is a bit address and `count` a count of 16-bit words."""
        if set_values is not None:
            return ExcCodes.ILLEGAL_ADDRESS  # read-only
        flags = self.FLAGS
        if function_code in (1, 2):
            if address not in flags:
                return ExcCodes.ILLEGAL_ADDRESS
            if self._failing.intersection(range(address, flags.stop)):
                return ExcCodes.DEVICE_FAILURE
            word = sum(1 << (a % 16) for a in flags if self.register(a))
            current[flags.start // 16 - start_address] = word
            return None
        if self._failing.intersection(range(address, address + count)):
            return ExcCodes.DEVICE_FAILURE
        for a in range(address, address + count):
            current[a - start_address] = self.register(a)
        return None
