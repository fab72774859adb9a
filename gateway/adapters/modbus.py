"""Modbus TCP (pymodbus async client): fields coalesced into as few reads as the protocol's limits
allow, decoded by type, word and byte order. An exception response spoils only the fields of that
read (bad quality, counted); a timeout or a dropped connection means the device is gone."""

from __future__ import annotations

import asyncio
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from gateway.config import ModbusSettings, ModbusSignal
from gateway.normalize import Emit, Reading
from telemetry.model import Quality

MAX_REGISTERS = 125  # per read (Modbus application protocol, 6.3)
MAX_BITS = 2000
_FORMATS = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "int64": ">q", "uint64": ">Q",
            "float32": ">f", "float64": ">d"}  # fmt: skip


class DeviceUnreachable(ConnectionError):
    pass


@dataclass(frozen=True)
class Read:
    table: str
    address: int
    count: int
    fields: tuple[tuple[str, ModbusSignal], ...]


def plan_reads(signals: dict[str, ModbusSignal], max_gap: int) -> list[Read]:
    """Group fields of one table whose addresses lie close enough into single reads."""
    reads: list[Read] = []
    for table in ("holding", "input", "coil", "discrete"):
        limit = MAX_BITS if table in ("coil", "discrete") else MAX_REGISTERS
        fields = sorted(((n, s) for n, s in signals.items() if s.table == table), key=lambda f: f[1].address)
        group: list[tuple[str, ModbusSignal]] = []
        start = end = 0
        for name, spec in fields:
            f_end = spec.address + spec.width
            if group and spec.address <= end + max_gap and max(end, f_end) - start <= limit:
                group.append((name, spec))
                end = max(end, f_end)
                continue
            if group:
                reads.append(Read(table, start, end - start, tuple(group)))
            group, start, end = [(name, spec)], spec.address, f_end
        if group:
            reads.append(Read(table, start, end - start, tuple(group)))
    return reads


def decode(spec: ModbusSignal, words: Sequence[int]) -> float | str:
    """Registers to a value. Word order says which register holds the most significant word, byte order
    which byte of each register comes first; both big (Modbus' own convention) unless configured."""
    if spec.type == "bit":
        return float((words[0] >> spec.bit) & 1) if spec.bit is not None else float(bool(words[0]))
    ordered = words if spec.word_order == "big" else list(reversed(words))
    raw = b"".join(w.to_bytes(2, "big") if spec.byte_order == "big" else w.to_bytes(2, "little") for w in ordered)
    if spec.type == "string":
        return raw.rstrip(b"\x00").decode("ascii", errors="replace").strip()
    return float(struct.unpack(_FORMATS[spec.type], raw)[0])


class ModbusAdapter:
    def __init__(
        self,
        endpoint: str,
        settings: ModbusSettings,
        signals: dict[str, ModbusSignal],
        errors: Counter[str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        parts = urlsplit(endpoint)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 502
        self.settings = settings
        self.reads = plan_reads(signals, settings.max_gap)
        self.errors = errors
        self._clock = clock
        self._client: AsyncModbusTcpClient | None = None

    @property
    def interval(self) -> float:
        return self.settings.poll_interval.total_seconds()

    async def connect(self) -> None:
        timeout = self.settings.timeout.total_seconds()
        # reconnects are the coordinator's job (with backoff), not the client's
        self._client = AsyncModbusTcpClient(self.host, port=self.port, timeout=timeout, retries=0, reconnect_delay=0)
        if not await self._client.connect():
            await self.close()
            raise DeviceUnreachable(f"cannot connect to {self.host}:{self.port}")

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def run(self, emit: Emit) -> None:
        """Poll until the device stops answering."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await emit(await self.poll(), [])
            await asyncio.sleep(max(0.0, self.interval - (loop.time() - started)))

    async def poll(self) -> list[Reading]:
        readings: list[Reading] = []
        for read in self.reads:
            readings.extend(await self._read(read))
        return readings

    async def _read(self, read: Read) -> list[Reading]:
        client = self._client
        if client is None or not client.connected:
            raise DeviceUnreachable("not connected")
        call = {
            "holding": client.read_holding_registers,
            "input": client.read_input_registers,
            "coil": client.read_coils,
            "discrete": client.read_discrete_inputs,
        }[read.table]
        try:
            response = await call(read.address, count=read.count, device_id=self.settings.unit)
        except (ModbusException, TimeoutError, OSError) as exc:
            raise DeviceUnreachable(f"{read.table} {read.address}+{read.count}: {exc}") from exc
        now = self._clock()
        if response.isError():
            code = getattr(response, "exception_code", "?")
            self.errors[f"exception {code:#04x}" if isinstance(code, int) else "exception"] += 1
            return [Reading(name, None, now, Quality.BAD) for name, _ in read.fields]
        bits = read.table in ("coil", "discrete")
        values = response.bits if bits else response.registers
        out = []
        for name, spec in read.fields:
            chunk = values[spec.address - read.address : spec.address - read.address + spec.width]
            out.append(Reading(name, float(bool(chunk[0])) if bits else decode(spec, chunk), now))
        return out
