"""A Universal Robots controller's built-in Modbus TCP server (the CB3 register map, see
/work/shared/protocols/ur_modbus.txt), driven by a protocol-independent `Machine`: the gateway under test
reads it exactly as it would read a real robot.

The register table (zero-based protocol addresses, one 16-bit word each) is rebuilt after every tick, so a
multi-word value is always read consistently; holding (FC03) and input (FC04) registers answer from the
same table, coils (FC01) and discrete inputs (FC02) 260-265 mirror the flags as bits. Everything outside
the blocks below answers exception 0x02, like the real controller; writes answer 0x02 as well.

    128-131 parts total, parts good   uint32, high word first
    132     program number            index in profile.programs + 1, 0 for none
    140-141 power kW                  float32, high word first
    142-145 energy kWh                float64, high word first
    146-159 program name              ASCII, first char in the high byte, NUL-padded
    256-265 version 3.15, robot mode (7 running, 5 otherwise), power on, protective stop, e-stop (an alarm
            code starting "ESTOP"), teach button (during setup)
    270-315 joints: angle mrad (int16), speed mrad/s (int16), current mA, temperature C, mode (253/255)
    400-415 TCP pose (x,y,z 0.1 mm, rx,ry,rz mrad; int16) and speeds;  450-451 currents;  768-770 tool

Fault injection: `set_register` (garbage values), `fail_reads` (exception 0x04), the machine's
`reset_counters`/`set_counters` (rollover), and `stop`/`start`/`restart`. For a robot that stops answering
or a cut link, put a `simulators.faultproxy.FaultProxy` in front of it.

pymodbus 3.16 notes: the ModbusDeviceContext/ModbusSequentialDataBlock datastores are deprecated there (they
are converted to SimDevice and log a warning), so this uses SimDevice/SimData with four separate blocks,
where undefined addresses answer 0x02, and the SimDevice `action` hook, which runs on every access after
that address check: it copies the requested words from the robot's table and answers 0x04 for failing
reads. Two limits of that hook: pymodbus checks coil addresses per 16-bit word and hands the action a word
count, not a bit count, so a coil read starting inside 260-265 that runs on into 266-271 answers zeros
there instead of 0x02, and `fail_reads` takes a coil read as touching everything from its start to 265.
`ServerAsyncStop()` stops only the process-wide last-started server, so each robot shuts its own down."""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
from collections.abc import Callable
from types import TracebackType

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulators.machine import Machine, MachineState

# The defined blocks as (first address, count): everything else answers exception 0x02.
BLOCKS = (
    (128, 32),
    (256, 10),
    (270, 6),
    (280, 6),
    (290, 6),
    (300, 6),
    (310, 6),
    (400, 6),
    (410, 6),
    (450, 2),
    (768, 3),
)
ADDRESSES = frozenset(a for start, n in BLOCKS for a in range(start, start + n))
FLAGS = range(260, 266)  # also readable as coils and discrete inputs

STEP_S = 5.0  # longest integration step, so energy and temperatures follow phase changes within a tick
HOME = (0.0, -1571.0, 1571.0, -1571.0, -1571.0, 0.0)  # mrad: arm folded above the table
SWING = (1200.0, 450.0, 650.0, 500.0, 350.0, 1500.0)  # mrad amplitude of the pick-and-place motion
PERIOD_S = (12.0, 6.0, 6.0, 4.0, 8.0, 3.0)
IDLE_POWER_KW = {"setup": 0.6, "microstop": 0.5, "idle": 0.3, "down": 0.2}


def _angles(motion_s: float) -> list[float]:
    """Joint angles in mrad: a smooth periodic motion of the time spent running."""
    return [HOME[j] + SWING[j] * math.sin(2 * math.pi * motion_s / PERIOD_S[j] + j) for j in range(6)]


def _pose(motion_s: float) -> list[float]:
    """A plausible TCP pose (mm, mrad) for the joint angles; not real kinematics."""
    q = [a / 1000 for a in _angles(motion_s)]
    reach = 450 + 250 * math.cos(q[2])
    x, y, z = reach * math.cos(q[0]), reach * math.sin(q[0]), 300 + 250 * math.sin(-q[1])
    return [x * 10, y * 10, z * 10, *(a * 1000 for a in q[3:])]


def _rates(f: Callable[[float], list[float]], t: float) -> list[float]:
    h = 0.01
    return [(b - a) / h for a, b in zip(f(t), f(t + h), strict=True)]


def _power_kw(s: MachineState) -> float:
    if s.phase == "running":
        return 2.5 + 1.5 * math.sin(math.pi * s.cycle_progress) ** 2
    return IDLE_POWER_KW[s.phase]


def _words(fmt: str, value: float) -> list[int]:
    raw = struct.pack(">" + fmt, value)
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


def _i16(value: float) -> int:
    return max(-32768, min(32767, round(value))) & 0xFFFF


class ModbusRobot:
    """A UR robot on `host:port` (port 0: a free one, in `port` once started) whose registers follow
    `machine`. The table is published at each tick, so after changing the machine directly (force,
    set_counters) call `tick(0)`; `speed` 0 means no background ticking, time then moves only by `tick()`."""

    def __init__(
        self,
        device_id: str,
        port: int,
        machine: Machine,
        *,
        host: str = "127.0.0.1",
        speed: float = 1.0,
        tick_s: float = 0.1,
    ) -> None:
        self.device_id = device_id
        self.port = port
        self.machine = machine
        self.host = host
        self.speed = speed
        self.tick_s = tick_s
        self._server: ModbusTcpServer | None = None
        self._ticker: asyncio.Task | None = None
        self._motion_s = 0.0  # time spent running: drives the arm motion, frozen otherwise
        self._energy_kwh = 0.0
        self._temps = [30.0] * 7  # six joints, then the tool
        self._overrides: dict[int, int] = {}
        self._failing: frozenset[int] = frozenset()
        self._refresh()

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        def bits() -> list[SimData]:
            return [SimData(FLAGS.start, values=[False] * len(FLAGS), datatype=DataType.BITS)]

        def registers() -> list[SimData]:
            return [SimData(a, values=[0] * n, datatype=DataType.REGISTERS) for a, n in BLOCKS]

        device = SimDevice(0, simdata=(bits(), bits(), registers(), registers()), action=self._on_access)
        self._server = ModbusTcpServer(device, address=(self.host, self.port))  # device 0 answers any unit id
        await self._server.serve_forever(background=True)
        if self.port == 0:  # the kernel's pick, held from the start; a restart comes back on it
            # pymodbus annotates `transport` as a BaseTransport, but a listener's is the asyncio.Server it created.
            self.port = self._server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        if self.speed > 0:
            self._ticker = asyncio.create_task(self._run(), name=f"modbus-robot-{self.device_id}")

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
        """Like a controller reboot seen from the network; the machine and its counters carry on."""
        await self.stop()
        await self.start()

    async def __aenter__(self) -> ModbusRobot:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- time -------------------------------------------------------------------------------------

    async def tick(self, sim_seconds: float) -> None:
        """Advance the machine by `sim_seconds` and publish the new registers; `tick(0)` just publishes."""
        left = max(0.0, sim_seconds)
        while left > 0:
            dt = min(left, STEP_S)
            s = self.machine.state
            self._energy_kwh += _power_kw(s) * dt / 3600
            if s.phase == "running":
                self._motion_s += dt
            self._warm(s.phase, dt)
            self.machine.step(dt)
            left -= dt
        self._refresh()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            await self.tick(self.tick_s * self.speed)

    def _warm(self, phase: str, dt: float) -> None:
        """Temperatures approach a phase-dependent level with a 10-minute time constant."""
        busy = phase in ("setup", "microstop")
        targets = [38.0 + j if phase == "running" else 33.0 if busy else 30.0 for j in range(6)]
        targets.append(40.0 if phase == "running" else 31.0)
        k = 1 - math.exp(-dt / 600)
        self._temps = [t + (goal - t) * k for t, goal in zip(self._temps, targets, strict=True)]

    # -- fault injection --------------------------------------------------------------------------

    def set_register(self, address: int, value: int) -> None:
        """Make `address` read `value` (negative means int16) until `clear_overrides()`."""
        if address not in ADDRESSES:
            raise ValueError(f"register {address} is not in the robot's table")
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

    # -- registers --------------------------------------------------------------------------------

    def _refresh(self) -> None:
        s = self.machine.state
        running = s.phase == "running"
        down = s.phase == "down"
        estop = down and (s.alarm_code or "").startswith("ESTOP")
        programs = self.machine.profile.programs
        angles = _angles(self._motion_s)
        speeds = _rates(_angles, self._motion_s) if running else [0.0] * 6
        pose = _pose(self._motion_s)
        tcp_speeds = _rates(_pose, self._motion_s) if running else [0.0] * 6
        if running:
            currents = [1200 + 150 * j + 0.4 * abs(v) for j, v in enumerate(speeds)]
        else:
            currents = [0.0 if down else 400.0] * 6  # brakes hold the arm in a stop
        total, good = s.parts_total & 0xFFFFFFFF, s.parts_good & 0xFFFFFFFF
        name = s.program.encode("ascii", "replace")[:28].ljust(28, b"\0")
        table = dict.fromkeys(ADDRESSES, 0)
        put: list[tuple[int, list[int]]] = [
            (128, [total >> 16, total & 0xFFFF, good >> 16, good & 0xFFFF]),
            (132, [programs.index(s.program) + 1 if s.program in programs else 0]),
            (140, _words("f", _power_kw(s)) + _words("d", self._energy_kwh)),
            (146, [name[i] << 8 | name[i + 1] for i in range(0, 28, 2)]),
            (256, [3, 15, 7 if running else 5, 0, 1, int(down and not estop and bool(s.alarm_code))]),
            (262, [int(estop), int(s.phase == "setup")]),
            (270, [_i16(a) for a in angles]),
            (280, [_i16(v) for v in speeds]),
            (290, [round(c) for c in currents]),
            (300, [round(t) for t in self._temps[:6]]),
            (310, [253 if running else 255] * 6),
            (400, [_i16(p) for p in pose]),
            (410, [_i16(v / 10 if i < 3 else v) for i, v in enumerate(tcp_speeds)]),  # mm/s, mrad/s
            (450, [round(250 + sum(currents) / 4), 80 if running else 60]),
            (768, [253 if running else 255, round(self._temps[6]), 350 if running else 80]),
        ]
        for start, words in put:
            table.update(zip(range(start, start + len(words)), words, strict=True))
        self._table = table

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
            return ExcCodes.ILLEGAL_ADDRESS  # the robot state is read-only
        if function_code in (1, 2):
            if address not in FLAGS:
                return ExcCodes.ILLEGAL_ADDRESS
            if self._failing.intersection(range(address, FLAGS.stop)):
                return ExcCodes.DEVICE_FAILURE
            word = sum(1 << (a % 16) for a in FLAGS if self.register(a))
            current[FLAGS.start // 16 - start_address] = word
            return None
        if self._failing.intersection(range(address, address + count)):
            return ExcCodes.DEVICE_FAILURE
        for a in range(address, address + count):
            current[a - start_address] = self.register(a)
        return None
