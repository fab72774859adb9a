"""The life of a simulated machine, independent of protocol: setup, jobs of parts at the ideal cycle time
(with scatter and occasional scrap), micro-stops, alarms and idle time. A seeded random generator makes
a run repeatable; `step(seconds)` advances simulated time, so a test can run an hour in a second and a
driver loop can run it at `speed` times real time. The protocol servers only translate this state."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

PHASES = ("setup", "running", "microstop", "idle", "down")


@dataclass
class Profile:
    """How a machine behaves; durations in simulated seconds."""

    ideal_cycle_s: float = 240.0
    cycle_scatter: float = 0.08  # cycle time varies by up to +-8 %
    scrap_rate: float = 0.03
    microstop_rate: float = 0.05  # chance per part of a micro-stop after it
    microstop_s: tuple[float, float] = (20.0, 120.0)
    alarm_rate: float = 0.01  # chance per part of an alarm (down) after it
    alarm_s: tuple[float, float] = (300.0, 1200.0)
    setup_s: tuple[float, float] = (300.0, 1200.0)
    idle_s: tuple[float, float] = (300.0, 3600.0)
    parts_per_job: tuple[int, int] = (10, 60)
    programs: tuple[str, ...] = ("O1001 BRACKET", "O2040 FLANGE", "O3300 HOUSING")
    alarms: tuple[tuple[str, str], ...] = (
        ("ALM-1021", "Spindle overload"),
        ("ALM-2003", "Tool breakage detected"),
        ("ALM-3110", "Coolant level low"),
        ("ALM-4002", "Door interlock open"),
    )


@dataclass
class MachineState:
    phase: str = "idle"
    program: str = ""
    parts_total: int = 0  # cumulative counter, as a device keeps it
    parts_good: int = 0
    job_parts_done: int = 0
    job_parts_planned: int = 0
    cycle_progress: float = 0.0  # 0..1 within the current part
    alarm_code: str | None = None
    alarm_text: str | None = None
    phase_elapsed_s: float = 0.0
    sim_time_s: float = 0.0
    changes: int = 0  # bumps on every phase change, so a server can tell


@dataclass
class Machine:
    seed: int
    profile: Profile = field(default_factory=Profile)
    counter_modulus: int = 2**32  # the device counter's width: it wraps around here

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.state = MachineState()
        self._phase_left = self._between(self.profile.idle_s) / 4  # start partway into an idle spell
        self._cycle_s = self._next_cycle()

    # -- time -------------------------------------------------------------------------------------

    def step(self, seconds: float) -> MachineState:
        """Advance simulated time, crossing as many phase and part boundaries as needed."""
        left = max(0.0, seconds)
        s = self.state
        while left > 0:
            if s.phase == "running":
                remaining = (1.0 - s.cycle_progress) * self._cycle_s
                dt = min(left, remaining)
                s.cycle_progress += dt / self._cycle_s
                self._tick(dt)
                left -= dt
                if s.cycle_progress >= 1.0 - 1e-9:
                    self._part_done()
            else:
                dt = min(left, self._phase_left)
                self._phase_left -= dt
                self._tick(dt)
                left -= dt
                if self._phase_left <= 1e-9:
                    self._phase_over()
        return s

    def _tick(self, dt: float) -> None:
        self.state.sim_time_s += dt
        self.state.phase_elapsed_s += dt

    # -- transitions ------------------------------------------------------------------------------

    def _enter(self, phase: str, duration: float = 0.0) -> None:
        s = self.state
        s.phase = phase
        s.phase_elapsed_s = 0.0
        s.changes += 1
        self._phase_left = duration
        if phase != "down":
            s.alarm_code = s.alarm_text = None

    def _part_done(self) -> None:
        s = self.state
        s.cycle_progress = 0.0
        s.parts_total = (s.parts_total + 1) % self.counter_modulus
        if self.rng.random() >= self.profile.scrap_rate:
            s.parts_good = (s.parts_good + 1) % self.counter_modulus
        s.job_parts_done += 1
        self._cycle_s = self._next_cycle()
        if s.job_parts_done >= s.job_parts_planned:
            self._enter("idle", self._between(self.profile.idle_s))
        elif self.rng.random() < self.profile.alarm_rate:
            self._raise_alarm(self._between(self.profile.alarm_s))
        elif self.rng.random() < self.profile.microstop_rate:
            self._enter("microstop", self._between(self.profile.microstop_s))

    def _phase_over(self) -> None:
        s = self.state
        if s.phase == "idle":
            s.program = self.rng.choice(self.profile.programs)
            s.job_parts_planned = self.rng.randint(*self.profile.parts_per_job)
            s.job_parts_done = 0
            self._enter("setup", self._between(self.profile.setup_s))
        elif s.phase in ("setup", "microstop", "down"):
            self._enter("running")

    def _raise_alarm(self, duration: float) -> None:
        code, text = self.rng.choice(self.profile.alarms)
        self._enter("down", duration)
        self.state.alarm_code, self.state.alarm_text = code, text

    # -- fault injection --------------------------------------------------------------------------

    def force(self, phase: str, duration_s: float) -> None:
        """Put the machine into `phase` for `duration_s` simulated seconds (an alarm for `down`)."""
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; one of {', '.join(PHASES)}")
        if phase == "down":
            self._raise_alarm(duration_s)
        else:
            if phase in ("running", "setup") and not self.state.program:
                self.state.program = self.profile.programs[0]
            if phase == "running":  # runs until told otherwise
                self.state.job_parts_planned = self.state.job_parts_done + 10**6
            self._enter(phase, duration_s)

    def reset_counters(self) -> None:
        """What a controller does on a power cycle or an operator reset: counters back to zero."""
        self.state.parts_total = 0
        self.state.parts_good = 0

    def set_counters(self, total: int, good: int) -> None:
        """Place the counters, e.g. just below the wrap-around to test rollover."""
        self.state.parts_total = total % self.counter_modulus
        self.state.parts_good = good % self.counter_modulus

    # -- helpers ----------------------------------------------------------------------------------

    def _between(self, bounds: tuple[float, float]) -> float:
        return self.rng.uniform(*bounds)

    def _next_cycle(self) -> float:
        p = self.profile
        return p.ideal_cycle_s * (1.0 + self.rng.uniform(-p.cycle_scatter, p.cycle_scatter))
