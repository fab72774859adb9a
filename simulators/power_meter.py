"""A CHINT DTSU666 three-phase energy meter, the common meter of Chinese switchboards, reached as centers
reach it: on the RS-485 side of a serial-to-Ethernet gateway in Modbus TCP mode (the meter's address as the
unit id). Its power follows the metered machine's phase (a base load when idle, the machine's running load
with scatter, nothing while switched off), so the gateway under test reads what a real meter on that
machine's feeder would show.

Holding registers (FC03), IEEE 754 float32, high word first, as the meter's manual maps them:

    0x2000-0x2005  line voltages Uab, Ubc, Uca       0.1 V
    0x2006-0x200B  phase voltages Ua, Ub, Uc         0.1 V
    0x200C-0x2011  phase currents Ia, Ib, Ic         0.001 A
    0x2012-0x2019  active power total, A, B, C       0.1 W
    0x401E-0x401F  imported active energy            kWh (non-volatile: kept across power cycles)

`clear_energy()` is what the meter's energy-clear command (or swapping the meter) does: the energy register
starts again from zero, while `lifetime_kwh` keeps the simulator's own count for the tests to compare with."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from simulators.machine import Machine
from simulators.modbus_server import RegisterServer, words

VOLTAGES = 0x2000
POWER = 0x2012
ENERGY = 0x401E
BLOCKS = ((VOLTAGES, 0x1A), (ENERGY, 2))
PHASE_VOLTS = 230.0
POWER_FACTOR = 0.9


@dataclass(frozen=True)
class Load:
    """A machine's electrical load in kW per phase of its work."""

    idle_kw: float
    running_kw: float
    setup_kw: float
    down_kw: float
    scatter: float = 0.1  # running load varies by up to +-10 %


LOADS = {
    "cnc": Load(idle_kw=1.2, running_kw=7.5, setup_kw=2.0, down_kw=0.8),
    "robot": Load(idle_kw=0.3, running_kw=3.0, setup_kw=0.6, down_kw=0.2),
    "printer": Load(idle_kw=0.08, running_kw=0.35, setup_kw=0.9, down_kw=0.05),  # setup: bed and nozzle heating
}


class PowerMeter(RegisterServer):
    """A DTSU666 metering `machine` with `load`; `switched_off` makes it read no load."""

    BLOCKS = BLOCKS

    def __init__(
        self,
        device_id: str,
        port: int,
        machine: Machine,
        load: Load,
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        speed: float = 1.0,
        tick_s: float = 0.1,
    ) -> None:
        super().__init__(device_id, port, host=host, speed=speed, tick_s=tick_s)
        self.machine = machine
        self.load = load
        self.switched_off = False
        self.energy_kwh = 0.0  # what the energy register holds
        self.lifetime_kwh = 0.0  # everything measured, whatever was cleared
        self._rng = random.Random(seed)
        self._power_kw = 0.0
        self._sample_power()
        self.refresh()

    def clear_energy(self) -> None:
        self.energy_kwh = 0.0
        self.refresh()

    def advance(self, dt: float) -> None:
        used = self._power_kw * dt / 3600
        self.energy_kwh += used
        self.lifetime_kwh += used
        self._sample_power()

    def _sample_power(self) -> None:
        phase = self.machine.state.phase
        load = self.load
        if self.switched_off:
            self._power_kw = 0.0
        elif phase == "running":
            self._power_kw = load.running_kw * (1 + self._rng.uniform(-load.scatter, load.scatter))
        elif phase == "setup":
            self._power_kw = load.setup_kw
        elif phase == "down":
            self._power_kw = load.down_kw
        else:  # idle, micro-stop
            self._power_kw = load.idle_kw

    def registers(self) -> list[tuple[int, list[int]]]:
        volts = 0.0 if self.switched_off else PHASE_VOLTS
        amps = self._power_kw * 1000 / (3 * volts * POWER_FACTOR) if volts else 0.0
        watts = self._power_kw * 1000
        values = (
            [volts * math.sqrt(3) * 10] * 3  # line voltages
            + [volts * 10] * 3
            + [amps * 1000] * 3
            + [watts * 10]
            + [watts * 10 / 3] * 3
        )
        return [
            (VOLTAGES, [w for v in values for w in words("f", v)]),
            (ENERGY, words("f", self.energy_kwh)),
        ]
