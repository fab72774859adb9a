"""Builds the gateway from devices.yaml and the settings: the devices it serves, its writer and spool."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from fabhub.devices import DeviceFile
from fabhub.devices.schema import ModbusDevice, MqttDevice, OpcUaDevice
from fabhub.settings import Settings
from gateway.central import CentralLink
from gateway.config import DEFAULT_RECONNECT_MAX, GatewayDevice, MissingSecret
from gateway.health import HealthSink, HealthTable
from gateway.publish import HealthPublisher, Publisher
from gateway.service import Gateway, Sink
from gateway.spool import Spool
from telemetry.writer import BatchWriter


def gateway_devices(
    devices: DeviceFile,
    environ: Mapping[str, str],
    reconnect_max: timedelta = DEFAULT_RECONNECT_MAX,
    site: str | None = None,
) -> list[GatewayDevice]:
    """The devices the gateway serves (those of `site`, or all), their secrets read from `environ`
    (MissingSecret names what is not set: load_devices with the environment reports it with file and line
    first)."""
    out = []
    for d in devices.at_site(site):
        if d.retired:
            continue
        settings = d.opcua if isinstance(d, OpcUaDevice) else d.modbus if isinstance(d, ModbusDevice) else d.mqtt
        try:
            settings = settings.resolved(environ)
        except MissingSecret as exc:
            raise MissingSecret(f"devices.{d.id}.{d.protocol}.{exc.key}", exc.variable) from None
        out.append(
            GatewayDevice(
                d.id,
                d.protocol,
                d.endpoint,
                settings,
                d.signals,
                d.states,
                d.heartbeat,
                d.ideal_cycle_time,
                d.max_rate,
                d.reconnect_max or reconnect_max,
            )
        )
    return out


def build_gateway(
    settings: Settings,
    devices: DeviceFile,
    pool: AsyncConnectionPool,
    mqtt_url: str | None,
    clock: Callable[[], datetime],
    registry: CollectorRegistry,
    environ: Mapping[str, str] = os.environ,
) -> Gateway:
    known = devices.device_ids.__contains__

    def writer(spool: Spool) -> BatchWriter:
        return BatchWriter(
            pool,
            batch_size=settings.batch_size,
            max_age=settings.batch_max_age_s,
            known_device=known,
            clock=clock,
            overflow=spool,
        )

    return _gateway(settings, devices, writer, health_table(settings, pool), mqtt_url, clock, registry, environ)


def build_publishing_gateway(
    settings: Settings,
    devices: DeviceFile,
    publish_url: str,
    mqtt_url: str | None,
    clock: Callable[[], datetime],
    registry: CollectorRegistry,
    environ: Mapping[str, str] = os.environ,
) -> Gateway:
    """A site gateway that publishes its site's samples and device health to the central broker at
    `publish_url` for ingest workers to store; it needs no database."""
    site = settings.site
    if site is None:
        raise ValueError("a publishing gateway serves one site: give --site (FABHUB_SITE)")
    # its own id at the central broker, stable like the site broker's, and apart from it: they may be one broker
    client_id = f"{settings.client_id}-publish"
    link = central_link(settings, publish_url, client_id, settings.publish_username, settings.publish_password)
    if link.path.strip("/") not in ("", site):
        raise ValueError(f"the URL's path names site {link.path.strip('/')!r}, --site {site!r}")

    made: list[Publisher] = []  # the gateway makes it with its spool; its health rounds share the connection

    def publisher(spool: Spool) -> Publisher:
        made.append(Publisher(link, site, spool, batch_size=settings.batch_size))
        return made[-1]

    gateway = _gateway(settings, devices, publisher, None, mqtt_url, clock, registry, environ)
    gateway.health = HealthPublisher(made[0], every=settings.health_every_s)
    return gateway


def central_link(
    settings: Settings, url: str, client_id: str, username: str | None, password: SecretStr | None
) -> CentralLink:
    """This process's link to the central broker: its CA from the settings (a gateway and an ingest worker
    have credentials of their own)."""
    return CentralLink.from_url(
        url,
        client_id,
        username=username,
        password=password.get_secret_value() if password is not None else None,
        ca_file=settings.central_ca_file,
    )


def _gateway(
    settings: Settings,
    devices: DeviceFile,
    sink: Callable[[Spool], Sink],
    health: HealthSink | None,
    mqtt_url: str | None,
    clock: Callable[[], datetime],
    registry: CollectorRegistry,
    environ: Mapping[str, str],
) -> Gateway:
    served = devices.at_site(settings.site)
    if mqtt_url is None and any(isinstance(d, MqttDevice) and d.endpoint is None and not d.retired for d in served):
        raise ValueError("printers publish to the site's broker: set FABHUB_MQTT_URL (or --embedded to start one)")
    return Gateway(
        gateway_devices(devices, environ, timedelta(seconds=settings.reconnect_max_s), settings.site),
        sink,
        settings.data_dir / "spool",
        mqtt_url=mqtt_url,
        registry=registry,
        clock=clock,
        spool_max_bytes=settings.spool_max_mb << 20,
        spool_policy=settings.spool_policy,
        client_id=settings.client_id,
        health=health,
        gateway_id=settings.gateway_id or f"{socket.gethostname()}:{os.getpid()}",
        site=settings.site,
    )


def health_table(settings: Settings, pool: AsyncConnectionPool) -> HealthTable:
    """The same rounds for the gateway that writes and every process that reads."""
    return HealthTable(pool, every=settings.health_every_s, stale_rounds=settings.health_stale_rounds)
