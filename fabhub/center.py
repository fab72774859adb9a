"""The simulated center: a simulator for every device of devices.yaml, speaking its protocol at its
endpoint, for `fabhub simulate` and `fabhub demo`."""

from __future__ import annotations

import zlib
from typing import Protocol
from urllib.parse import urlsplit

from fabhub.devices import DeviceFile
from fabhub.devices.schema import ModbusDevice, MqttDevice, OpcUaDevice
from simulators.machine import Machine, Profile
from simulators.modbus_robot import ModbusRobot
from simulators.mqtt_printer import MqttPrinter, printer_profile
from simulators.opcua_cnc import OpcUaCnc


class Simulator(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def simulators_for(devices: DeviceFile, mqtt_url: str, speed: float) -> list[Simulator]:
    """Seeds come from the device ids, so every run of the demo tells the same story."""
    broker = urlsplit(mqtt_url)
    sims: list[Simulator] = []
    for n, d in enumerate(x for x in devices.devices if not x.retired):
        seed = zlib.crc32(d.id.encode())
        cycle = d.ideal_cycle_time.total_seconds() if d.ideal_cycle_time else None
        if isinstance(d, MqttDevice):
            machine = Machine(seed, printer_profile())
            mode = "delta" if n % 2 else "full"  # P1-style deltas and X1-style full reports side by side
            sims.append(MqttPrinter(d.mqtt.serial or d.id, broker.hostname or "127.0.0.1", broker.port or 1883,
                                    machine, mode=mode, speed=speed))  # fmt: skip
            continue
        endpoint = urlsplit(d.endpoint or "")
        machine = Machine(seed, Profile(ideal_cycle_s=cycle) if cycle else Profile())
        host, port = endpoint.hostname or "127.0.0.1", endpoint.port or 0
        if isinstance(d, OpcUaDevice):
            sims.append(OpcUaCnc(d.id, port, machine, host=host, speed=speed))
        elif isinstance(d, ModbusDevice):
            sims.append(ModbusRobot(d.id, port, machine, host=host, speed=speed))
    return sims
