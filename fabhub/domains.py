"""The domain services every entry point wires the same way (the app, and the CLI's jobs and invoices), so
they cannot drift apart: the booking catalogue from devices.yaml, the OEE service and invoicing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from booking.catalogue import Catalogue
from fabhub.catalogue import catalogue_from, oee_facts
from fabhub.devices import DeviceFile
from fabhub.settings import Settings
from oee.invoices import Invoicing
from oee.service import OeeService


@dataclass(frozen=True)
class Domains:
    catalogue: Catalogue
    oee: OeeService
    invoicing: Invoicing


def domains_for(settings: Settings, devices: DeviceFile, clock: Callable[[], datetime]) -> Domains:
    oee = OeeService(*oee_facts(devices), settings.zone, clock)
    return Domains(catalogue_from(devices), oee, Invoicing(oee, settings.vat_rate, settings.zone, clock))
