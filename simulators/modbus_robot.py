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

Fault injection and the server itself: simulators.modbus_server (`set_register`, `fail_reads`, `stop`/
`start`/`restart`), plus the machine's `reset_counters`/`set_counters` (rollover). For a robot that stops
answering or a cut link, put a `simulators.faultproxy.FaultProxy` in front of it."""

from __future__ import annotations

import math
from collections.abc import Callable

from simulators.machine import Machine, MachineState
from simulators.modbus_server import RegisterServer, words

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
FLAGS = range(260, 266)  # also readable as coils and discrete inputs

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


def _i16(value: float) -> int:
    return max(-32768, min(32767, round(value))) & 0xFFFF


class ModbusRobot(RegisterServer):
    """A UR robot whose registers follow `machine`."""

    BLOCKS = BLOCKS
    FLAGS = FLAGS

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
        super().__init__(device_id, port, host=host, speed=speed, tick_s=tick_s)
        self.machine = machine
        self._motion_s = 0.0  # time spent running: drives the arm motion, frozen otherwise
        self._energy_kwh = 0.0
        self._temps = [30.0] * 7  # six joints, then the tool
        self.refresh()

    def advance(self, dt: float) -> None:
        s = self.machine.state
        self._energy_kwh += _power_kw(s) * dt / 3600
        if s.phase == "running":
            self._motion_s += dt
        self._warm(s.phase, dt)
        self.machine.step(dt)

    def _warm(self, phase: str, dt: float) -> None:
        """Temperatures approach a phase-dependent level with a 10-minute time constant."""
        busy = phase in ("setup", "microstop")
        targets = [38.0 + j if phase == "running" else 33.0 if busy else 30.0 for j in range(6)]
        targets.append(40.0 if phase == "running" else 31.0)
        k = 1 - math.exp(-dt / 600)
        self._temps = [t + (goal - t) * k for t, goal in zip(self._temps, targets, strict=True)]

    # -- registers --------------------------------------------------------------------------------

    def registers(self) -> list[tuple[int, list[int]]]:
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
        return [
            (128, [total >> 16, total & 0xFFFF, good >> 16, good & 0xFFFF]),
            (132, [programs.index(s.program) + 1 if s.program in programs else 0]),
            (140, words("f", _power_kw(s)) + words("d", self._energy_kwh)),
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
