"""`devices.yaml`: the center's device classes and devices, and the checker that points at the file,
line and key of every problem."""

from fabhub.devices.loader import DeviceFileError, Problem, check_file, load_devices
from fabhub.devices.schema import Device, DeviceClass, DeviceFile

__all__ = ["Device", "DeviceClass", "DeviceFile", "DeviceFileError", "Problem", "check_file", "load_devices"]
