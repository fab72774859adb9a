"""A Bambu Lab 3D printer on MQTT, driven by the protocol-independent `Machine` (one part is one print).

It publishes what the real printers publish on `device/<serial>/report` (captures in
/work/shared/protocols/bambu): a `{"print": {...}}` push_status object, whole every time in "full" mode
(X1 series) or only the changed fields in "delta" mode (P1 series), and it answers a pushall request with
the whole object. The fault injection (raw payloads, overridden fields, numbers sent as strings, dropped
connections) is there so consumers get tested against the untidy things real printers and networks do.

All state lives on the event loop; paho's network thread only hands messages and connection events over.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import random
import ssl
import zlib
from collections.abc import Callable
from typing import Any, Literal

import paho.mqtt.client as mqtt

from simulators.machine import Machine, Profile

GCODE_STATES = {"setup": "PREPARE", "running": "RUNNING", "microstop": "PAUSE", "down": "FAILED"}
NOZZLE_C, BED_C, AMBIENT_C = 220.0, 60.0, 24.0
CHUNK_S = 60.0  # longest simulated step between checks for a gcode_state change
POLL_S = 0.25  # how soon (real seconds) the driver loop notices a change, e.g. a forced one
CONNECT_TIMEOUT_S = 10.0
GCODE_FILE = "/data/Metadata/plate_1.gcode"  # what a single-plate print from Bambu Studio shows
ALWAYS_SENT = ("command", "sequence_id")  # a delta report carries these even when unchanged

_PRINTER = Profile(
    ideal_cycle_s=3 * 3600.0,
    cycle_scatter=0.15,
    scrap_rate=0.05,
    # Machine draws micro-stops and alarms between parts of a job, so with one print per job they only
    # come from force(); the rates are zero to say so.
    microstop_rate=0.0,
    microstop_s=(60.0, 600.0),
    alarm_rate=0.0,
    alarm_s=(600.0, 1800.0),
    setup_s=(240.0, 900.0),  # heating, bed levelling, flow calibration
    idle_s=(600.0, 7200.0),  # waiting for someone to clear the plate
    parts_per_job=(1, 1),
    programs=(
        "CyberBrick Gridfinity Organizer Box",
        "Fidget Collection",
        "Cable Clip x12",
        "Raspberry Pi 5 Case",
        "Filament Spool Holder",
    ),
    alarms=(  # print_error codes as the Bambu app shows them
        ("0300_400C", "The task was canceled."),
        ("0300_8003", "Spaghetti defects were detected by the AI Print Monitoring."),
        ("0300_8004", "Filament ran out. Please load new filament."),
        ("0700_8010", "AMS assist motor overloaded."),
    ),
)


def printer_profile(**overrides: Any) -> Profile:
    """A Machine profile for a printer: one print per job, prints of a few hours."""
    return dataclasses.replace(_PRINTER, **overrides)


def _error_number(code: str) -> int:
    """Printer codes are hex ("0300_400C" is 50348044); any other code gets a stable number of its own."""
    try:
        return int(code.replace("_", ""), 16)
    except ValueError:
        return 0x0300_0000 | zlib.crc32(code.encode()) & 0xFFFF


def _hms(error: int) -> dict[str, int]:
    """An HMS entry in the module of the error; shaped like a real one, though the mapping is invented."""
    return {"attr": (error & 0xFFFF_0000) | 0x0100, "code": 0x0001_0000 | (error & 0xFFFF)}


def _layers(program: str) -> int:
    return 50 + zlib.crc32(program.encode()) % 250


def _approach(value: float, goal: float, dt: float, tau: float) -> float:
    return goal + (value - goal) * math.exp(-dt / tau)


def _sensor(value: float) -> float:
    return round(value * 32) / 32  # the printers report temperatures in 1/32 degree steps


def _same(a: Any, b: Any) -> bool:
    """Equal as sent: 1 and 1.0 or True differ on the wire, and NaN equals NaN."""
    return json.dumps(a) == json.dumps(b)


class MqttPrinter:
    """One printer on the broker, translating its Machine's state into Bambu reports."""

    def __init__(
        self,
        serial: str,
        broker_host: str,
        broker_port: int,
        machine: Machine,
        *,
        mode: Literal["full", "delta"] = "full",
        report_interval_s: float = 1.0,
        speed: float = 1.0,
        stringly: float = 0.0,
        seed: int | None = None,
        tls: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        """`speed` 0 stops the clock: reports then come only from tick() and pushall. `seed` defaults to the
        machine's, so one seed fixes the whole run. `tls`, `username` and `password` are for a broker that wants
        them, such as the printer's own in LAN mode (simulators.printer_broker); without them the printer
        connects in clear and anonymously, as to the site broker."""
        if mode not in ("full", "delta"):
            raise ValueError(f"mode must be 'full' or 'delta', not {mode!r}")
        self.serial = serial
        self.broker_host = broker_host
        self.broker_port = broker_port
        self.machine = machine
        self.mode = mode
        self.report_interval_s = report_interval_s
        self.speed = speed
        self.stringly = stringly
        self.report_topic = f"device/{serial}/report"
        self.request_topic = f"device/{serial}/request"
        self.state: dict[str, Any] = {}  # every field as last sent: what a consumer merging reports holds
        self.rng = random.Random(machine.seed if seed is None else seed)
        self._sequence = self.rng.randrange(10_000)
        self._wifi_dbm = -self.rng.randint(38, 60)
        self._nozzle = self._bed = self._chamber = AMBIENT_C
        self._overrides: dict[str, Any] = {}
        self._sent: dict[str, Any] = {}  # the last report's fields before stringly, to tell what changed
        self._sent_gcode_state: str | None = None
        self._connected = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fabhub-sim-{serial}")
        self._client.reconnect_delay_set(1, 5)
        if tls is not None:
            self._client.tls_set_context(tls)
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.reconnect()
        if self.speed > 0:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.disconnect()

    async def __aenter__(self) -> MqttPrinter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def tick(self, sim_seconds: float) -> None:
        """Advance the machine and report, for tests that drive the clock themselves."""
        self._advance(sim_seconds)
        self._publish()

    async def _run(self) -> None:
        slices = max(1, math.ceil(self.report_interval_s / POLL_S))
        slice_s = self.report_interval_s / slices
        count = 0
        while True:
            await asyncio.sleep(slice_s)
            self._advance(slice_s * self.speed)
            count += 1
            if count >= slices or self._gcode_state() != self._sent_gcode_state:
                count = 0
                self._publish()

    def _advance(self, sim_seconds: float) -> None:
        """Step in chunks and report each gcode_state change at once: over one long step a short state
        (the FINISH between two jobs, say) would never be seen."""
        left = sim_seconds
        while left > 0:
            dt = min(left, CHUNK_S)
            left -= dt
            self.machine.step(dt)
            self._heat(dt)
            if left > 0 and self._gcode_state() != self._sent_gcode_state:
                self._publish()

    # -- fault injection --------------------------------------------------------------------------

    def publish_raw(self, payload: bytes, topic: str | None = None) -> None:
        self._client.publish(topic or self.report_topic, payload, qos=1)

    def override(self, fields: dict[str, Any]) -> None:
        """Send these values, exactly as given, in the reports until clear_overrides()."""
        self._overrides.update(fields)

    def clear_overrides(self) -> None:
        self._overrides.clear()

    async def disconnect(self) -> None:
        """Drop off the broker as a printer losing its Wi-Fi would: reports made meanwhile are lost."""
        self._connected.clear()
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    async def reconnect(self) -> None:
        """Come back after disconnect(); the first report is a full one, as a printer sends on connecting."""
        self._client.connect_async(self.broker_host, self.broker_port)
        self._client.loop_start()
        await asyncio.wait_for(self._connected.wait(), CONNECT_TIMEOUT_S)

    # -- paho's network thread --------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            return
        client.subscribe(self.request_topic, qos=1)  # again on every connect: the session may be new
        self._call(self._on_connected)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, *_args: Any) -> None:
        self._call(self._connected.clear)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._call(self._on_request, message.payload)

    def _call(self, callback: Callable[..., object], *args: Any) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(callback, *args)

    # -- on the event loop ------------------------------------------------------------------------

    def _on_connected(self) -> None:
        self._connected.set()
        self._publish(full=True)

    def _on_request(self, payload: bytes) -> None:
        try:
            command = json.loads(payload)["pushing"]["command"]
        except (ValueError, KeyError, TypeError):
            return  # a printer ignores what it does not understand
        if command == "pushall":
            self._publish(full=True)

    # -- the report -------------------------------------------------------------------------------

    def _gcode_state(self) -> str:
        s = self.machine.state
        if s.phase == "idle":
            return "FINISH" if 0 < s.job_parts_planned <= s.job_parts_done else "IDLE"
        return GCODE_STATES[s.phase]

    def _heat(self, dt: float) -> None:
        heating = self._gcode_state() in ("PREPARE", "RUNNING", "PAUSE")
        self._nozzle = _approach(self._nozzle, NOZZLE_C if heating else AMBIENT_C, dt, 40.0)
        self._bed = _approach(self._bed, BED_C if heating else AMBIENT_C, dt, 180.0)
        self._chamber = _approach(self._chamber, AMBIENT_C + 0.3 * (self._bed - AMBIENT_C), dt, 900.0)

    def _fields(self) -> dict[str, Any]:
        s = self.machine.state
        gcode_state = self._gcode_state()
        printing = gcode_state in ("RUNNING", "PAUSE", "FAILED")
        heating = gcode_state in ("PREPARE", "RUNNING", "PAUSE")
        progress = 1.0 if gcode_state == "FINISH" else s.cycle_progress if printing else 0.0
        total_layers = _layers(s.program) if s.program else 0
        if printing:
            layer = min(total_layers, int(progress * total_layers) + 1)
        else:
            layer = total_layers if gcode_state == "FINISH" else 0
        if printing or gcode_state == "PREPARE":
            remaining_min = round((1.0 - progress) * self.machine.profile.ideal_cycle_s / 60)
        else:
            remaining_min = 0
        error = _error_number(s.alarm_code) if gcode_state == "FAILED" and s.alarm_code else 0
        nozzle = _sensor(self._nozzle)
        return {
            "nozzle_temper": nozzle,
            "nozzle_target_temper": NOZZLE_C if heating else 0.0,
            "bed_temper": _sensor(self._bed),
            "bed_target_temper": BED_C if heating else 0.0,
            "chamber_temper": _sensor(self._chamber),
            "heatbreak_fan_speed": "13" if nozzle > 50 else "0",
            "cooling_fan_speed": "15" if gcode_state == "RUNNING" else "0",
            "big_fan1_speed": "10" if gcode_state == "RUNNING" else "0",
            "mc_percent": int(progress * 100),
            "mc_remaining_time": remaining_min,
            "spd_lvl": 2,
            "print_error": error,
            "wifi_signal": f"{self._wifi_dbm}dBm",
            "gcode_state": gcode_state,
            "subtask_name": s.program,
            "gcode_file": GCODE_FILE if s.program and gcode_state not in ("IDLE", "FINISH") else "",
            "layer_num": layer,
            "total_layer_num": total_layers,
            "hms": [_hms(error)] if error else [],
            "command": "push_status",
            "msg": 0,
            "sequence_id": str(self._sequence),
        }

    def _publish(self, *, full: bool = False) -> None:
        if not self._connected.is_set():
            return
        if self.rng.random() < 0.1:
            self._wifi_dbm = max(-70, min(-35, self._wifi_dbm + self.rng.choice((-1, 1))))
        self._sequence += 1
        fields = self._fields() | self._overrides
        if full or self.mode == "full":
            body = fields
        else:
            body = {
                k: v
                for k, v in fields.items()
                if k in ALWAYS_SENT or k not in self._sent or not _same(v, self._sent[k])
            }
        self._sent = fields
        self._sent_gcode_state = self._gcode_state()
        body = {k: v if k in self._overrides else self._maybe_string(v) for k, v in body.items()}
        self.state.update(body)
        self._client.publish(self.report_topic, json.dumps({"print": body}).encode(), qos=1)

    def _maybe_string(self, value: Any) -> Any:
        """Real printers now and then send a number as a string ("22" for 22)."""
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if numeric and self.stringly and self.rng.random() < self.stringly:
            return str(value)
        return value
