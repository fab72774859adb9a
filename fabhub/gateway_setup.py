"""Builds the gateway from devices.yaml and the settings: the devices it serves, its writer and spool."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from fabhub.devices import DeviceFile
from fabhub.devices.schema import ModbusDevice, MqttDevice, OpcUaDevice
from fabhub.settings import Settings
from gateway.config import DEFAULT_RECONNECT_MAX, GatewayDevice, MissingSecret
from gateway.health import HealthTable
from gateway.service import Gateway
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

    served = devices.at_site(settings.site)
    if mqtt_url is None and any(isinstance(d, MqttDevice) and d.endpoint is None and not d.retired for d in served):
        raise ValueError("printers publish to the site's broker: set FABHUB_MQTT_URL (or --embedded to start one)")
    return Gateway(
        gateway_devices(devices, environ, timedelta(seconds=settings.reconnect_max_s), settings.site),
        writer,
        settings.data_dir / "spool",
        mqtt_url=mqtt_url,
        registry=registry,
        clock=clock,
        spool_max_bytes=settings.spool_max_mb << 20,
        spool_policy=settings.spool_policy,
        client_id=settings.client_id,
        health=health_table(settings, pool),
        gateway_id=settings.gateway_id or f"{socket.gethostname()}:{os.getpid()}",
        site=settings.site,
    )


def health_table(settings: Settings, pool: AsyncConnectionPool) -> HealthTable:
    """The same rounds for the gateway that writes and every process that reads."""
    return HealthTable(pool, every=settings.health_every_s, stale_rounds=settings.health_stale_rounds)
