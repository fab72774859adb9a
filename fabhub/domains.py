"""The domain services every entry point wires the same way (the app, and the CLI's jobs and invoices), so
they cannot drift apart: the booking catalogue from devices.yaml, the OEE service and invoicing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from booking.catalogue import Catalogue
from fabhub.catalogue import catalogue_from, oee_facts
from fabhub.devices import DeviceFile
from fabhub.settings import Settings
from notify.channels import Robot, Smtp
from notify.dispatch import TECHNICIANS, Notifier
from notify.messages import Voice
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


def notifier_for(
    settings: Settings, devices: DeviceFile, clock: Callable[[], datetime], pool: AsyncConnectionPool
) -> Notifier:
    """The channels the settings configure: email with FABHUB_SMTP_URL, the technicians' group robot with
    FABHUB_TECHNICIANS_ROBOT (secrets, so from the environment only)."""
    smtp = Smtp.from_url(settings.smtp_url.get_secret_value(), settings.smtp_from) if settings.smtp_url else None
    robots: dict[str, Robot] = {}
    if settings.technicians_robot is not None:
        secret = settings.technicians_robot_secret
        robots[TECHNICIANS] = Robot.from_setting(
            settings.technicians_robot.get_secret_value(), secret.get_secret_value() if secret else None
        )
    return Notifier(pool, Voice(devices.center.name, settings.zone), clock, smtp, robots)
