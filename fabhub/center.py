"""The simulated center: a simulator for every device of devices.yaml, speaking its protocol at its
endpoint, for `fabhub simulate` and `fabhub demo`. A printer in LAN mode (an `mqtts://` endpoint) is
simulated as a real one is: its own TLS broker, its access code from the variable the device names, and
its certificate written where the device's `ca_file` expects it."""

from __future__ import annotations

import secrets
import zlib
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from fabhub.devices import DeviceFile
from fabhub.devices.schema import ModbusDevice, MqttDevice, OpcUaDevice
from simulators.machine import Machine, Profile
from simulators.modbus_robot import ModbusRobot
from simulators.mqtt_printer import MqttPrinter, printer_profile
from simulators.opcua_cnc import OpcUaCnc
from simulators.power_meter import LOADS, PowerMeter
from simulators.printer_broker import LanPrinter

ReportMode = Literal["full", "delta"]  # a simulated printer's: full reports (X1) or deltas (P1)


class Simulator(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def at_speed(devices: DeviceFile, speed: float) -> DeviceFile:
    """The devices as a gateway reading simulators at `speed` must see them: the machines make parts and use
    energy `speed` times faster than real ones, so the physical limit on a counter's step grows with it."""
    if speed <= 1:
        return devices
    scaled = []
    for d in devices.devices:
        update: dict[str, Any] = {}
        if d.max_rate is not None:
            update["max_rate"] = d.max_rate * speed
        limited = {n: s.model_copy(update={"max_per_s": s.max_per_s * speed})
                   for n, s in d.signals.items() if s.max_per_s is not None}  # fmt: skip
        if limited:
            update["signals"] = d.signals | limited
        scaled.append(d.model_copy(update=update) if update else d)
    return devices.model_copy(update={"devices": scaled})


def demo_access_codes(devices: DeviceFile, environ: MutableMapping[str, str]) -> list[str]:
    """The demo's embedded default for what a site sets: an access code for every simulated printer whose
    variable is unset (the simulator and the gateway then read the same one). Returns the variables set."""
    made = []
    for d in devices.devices:
        if isinstance(d, MqttDevice) and d.endpoint is not None:
            for variable in d.secret_variables().values():
                if variable not in environ:
                    environ[variable] = f"{secrets.randbelow(10**8):08d}"  # 8 digits, as a printer shows
                    made.append(variable)
    return made


def _lan_printer(
    d: MqttDevice, machine: Machine, mode: ReportMode, speed: float, environ: Mapping[str, str]
) -> LanPrinter:
    endpoint = urlsplit(d.endpoint or "")
    serial = d.mqtt.serial or d.id
    ca_file = d.mqtt.ca_file
    if ca_file is None or ca_file.name != f"{serial}.crt":
        raise ValueError(f"{d.id}: a simulated LAN printer writes its certificate to <dir>/{serial}.crt: name it"
                         " as mqtt.ca_file")  # fmt: skip
    code = d.mqtt.resolved(environ).password
    if not code:
        raise ValueError(f"{d.id}: a printer in LAN mode needs its access code (mqtt.password_env)")
    host, port = endpoint.hostname or "127.0.0.1", endpoint.port or 8883
    return LanPrinter(
        serial, machine, access_code=code, cert_dir=Path(ca_file).parent, host=host, port=port, mode=mode, speed=speed
    )


def simulators_for(
    devices: DeviceFile, mqtt_url: str | None, speed: float, environ: Mapping[str, str] | None = None
) -> list[Simulator]:
    """Seeds come from the device ids, so every run of the demo tells the same story. `environ` holds the
    LAN printers' access codes; `mqtt_url` is the broker the other printers publish to."""
    if mqtt_url is None and any(isinstance(d, MqttDevice) and d.endpoint is None for d in devices.devices):
        raise ValueError("printers publish to a site broker: set FABHUB_MQTT_URL")
    broker = urlsplit(mqtt_url or "")
    sims: list[Simulator] = []
    machines: dict[str, tuple[Machine, str]] = {}  # a machine's simulated life and its class, for its meter
    for n, d in enumerate(x for x in devices.machines if not x.retired):
        seed = zlib.crc32(d.id.encode())
        cycle = d.ideal_cycle_time.total_seconds() if d.ideal_cycle_time else None
        if isinstance(d, MqttDevice):
            machine = Machine(seed, printer_profile())
            mode: ReportMode = "delta" if n % 2 else "full"  # P1-style deltas and X1-style full reports side by side
            if d.endpoint is not None:
                sims.append(_lan_printer(d, machine, mode, speed, environ or {}))
            else:
                sims.append(MqttPrinter(d.mqtt.serial or d.id, broker.hostname or "127.0.0.1", broker.port or 1883,
                                        machine, mode=mode, speed=speed))  # fmt: skip
            machines[d.id] = machine, d.class_id
            continue
        endpoint = urlsplit(d.endpoint or "")
        machine = Machine(seed, Profile(ideal_cycle_s=cycle) if cycle else Profile())
        machines[d.id] = machine, d.class_id
        host, port = endpoint.hostname or "127.0.0.1", endpoint.port or 0
        if isinstance(d, OpcUaDevice):
            sims.append(OpcUaCnc(d.id, port, machine, host=host, speed=speed))
        elif isinstance(d, ModbusDevice):
            sims.append(ModbusRobot(d.id, port, machine, host=host, speed=speed))
    for d in devices.devices:
        if d.meters is None or d.retired or d.meters not in machines or not isinstance(d, ModbusDevice):
            continue
        machine, class_id = machines[d.meters]
        endpoint = urlsplit(d.endpoint or "")
        load = LOADS.get(class_id, LOADS["robot"])
        sims.append(PowerMeter(d.id, endpoint.port or 0, machine, load, seed=zlib.crc32(d.id.encode()),
                               host=endpoint.hostname or "127.0.0.1", speed=speed))  # fmt: skip
    return sims
