"""Settings from `FABHUB_*` environment variables (DESIGN.md lists the contract)."""

from __future__ import annotations

import socket
from datetime import timedelta
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.proxies import IPNetwork, parse_networks
from fabhub.devices.schema import SITE
from notify.channels import Robot, Smtp


class Unset(Exception):
    """A setting a production process must be given, left unset without `embedded`."""


SHARED = {
    "database_url": "the database every FabHub process shares",
    "secret_key": "the token signing key every FabHub process shares",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FABHUB_", extra="ignore", frozen=True)

    database_url: str | None = Field(
        None, description="PostgreSQL URL; unset: an embedded PostgreSQL under data_dir, with `embedded` only"
    )
    mqtt_url: str | None = Field(
        None, description="the site's MQTT broker URL; unset: an embedded broker, with `embedded` only"
    )
    embedded: bool = Field(
        False,
        description="let unset database_url, mqtt_url and secret_key fall back to an embedded PostgreSQL, broker"
        " and a key generated under data_dir (the demo's defaults); off, a process refuses to start without them",
    )
    site: str | None = Field(
        None, pattern=SITE, description="the site whose devices this process's gateway reads; unset: every site"
    )
    mqtt_client_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="this process's MQTT client id at the site broker; unset: fabhub-gateway-<site>-<host>",
    )
    statement_timeout_s: float = Field(
        30, gt=0, le=3600, description="longest a database statement may run before it is cancelled"
    )
    devices: Path = Path("devices.yaml")
    data_dir: Path = Path(".fabhub")
    secret_key: SecretStr | None = Field(
        None, description="signs access tokens (32+ characters); unset: a random key kept in data_dir/secret-key"
    )
    vat_rate: Decimal = Field(
        Decimal("0.06"), ge=0, le=1, decimal_places=4, description="VAT on services; amounts are tax-inclusive"
    )
    payment_term_days: int = Field(
        30, ge=0, le=365, description="days after issue before an invoice with an open amount is overdue"
    )
    access_token_minutes: int = Field(15, ge=1, le=24 * 60)
    session_hours: int = Field(12, ge=1, le=24 * 7, description="how long a browser stays logged in")
    secure_cookies: bool = Field(False, description="send the pages' cookies over HTTPS only (behind TLS)")
    login_failures_per_account: int = Field(5, ge=1, description="failed logins per account before a pause")
    login_failures_per_address: int = Field(20, ge=1, description="failed logins per client address")
    login_window_minutes: int = Field(15, ge=1)
    api_key_rate_per_min: int = Field(600, ge=1, description="requests per API key per minute, across processes")
    trusted_proxies: str = Field(
        "",
        description="comma-separated addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For and"
        " X-Forwarded-Proto are believed; unset: none, the connection's peer is the client",
    )
    timezone: str = "Asia/Shanghai"
    timescaledb: Literal["auto", "require", "off"] = Field(
        "auto", description="auto: use the extension when the server has it preloaded; require: fail without"
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_body_bytes: int = Field(1 << 20, ge=1024, description="largest request body accepted (413 beyond)")
    db_pool_size: int = Field(10, ge=2, le=200)
    batch_size: int = Field(5000, ge=1, le=1_000_000)
    batch_max_age_s: float = Field(
        0.2, gt=0, le=60, description="the boards hear of a change when its batch is stored: part of their delay"
    )
    raw_retention_days: int = Field(30, ge=1)
    rollup_retention_days: int | None = Field(None, ge=1, description="unset: keep rollups forever")
    rollup_lookback_s: int = Field(300, ge=60, le=86_400)
    run_jobs: bool = Field(True, description="run scheduled jobs in this process")
    run_gateway: bool = Field(True, description="run the device gateway in this process")
    reconnect_max_s: float = Field(
        10.0, gt=0, le=3600, description="longest wait between a device's reconnects (devices may set their own)"
    )
    spool_max_mb: int = Field(1024, ge=1, description="disk spool bound while the database is away")
    spool_policy: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    gateway_id: str | None = Field(None, description="who reports the devices' health; unset: host:pid")
    health_every_s: float = Field(5.0, gt=0, le=300, description="seconds between a gateway's health reports")
    health_stale_rounds: int = Field(
        3, ge=1, description="reports missed before a gateway's devices read as unknown in /api/v1/devices"
    )
    ingest_url: str | None = Field(
        None, description="the central broker `fabhub ingest` reads from, mqtt://host:port or mqtts://host:port"
    )
    central_ca_file: Path | None = Field(
        None, description="CA file for an mqtts:// central broker; unset: the system's CAs"
    )
    publish_username: str | None = Field(None, description="user of `fabhub gateway --publish` at the central broker")
    publish_password: SecretStr | None = None
    ingest_username: str | None = Field(None, description="user of `fabhub ingest` at the central broker")
    ingest_password: SecretStr | None = None
    smtp_url: SecretStr | None = Field(
        None,
        description="notification email: smtps://user:password@host (TLS) or smtp://user:password@host:587"
        " (STARTTLS); unset: no email is sent",
    )
    smtp_from: str = Field("FabHub <fabhub@localhost>", description="the From of notification email")
    technicians_robot: SecretStr | None = Field(
        None,
        description="the technicians' group robot for machine alerts: wecom:URL, dingtalk:URL or feishu:URL"
        " (the webhook URL as the service shows it); unset: technicians are emailed",
    )
    technicians_robot_secret: SecretStr | None = Field(None, description="the robot's signing secret, if it has one")

    @field_validator("smtp_url")
    @classmethod
    def _smtp(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            Smtp.from_url(value.get_secret_value(), "check")
        return value

    @field_validator("technicians_robot")
    @classmethod
    def _robot(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            Robot.from_setting(value.get_secret_value(), None)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @cached_property
    def trusted_networks(self) -> tuple[IPNetwork, ...]:
        return parse_networks(self.trusted_proxies)

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def require(self, *names: str) -> None:
        """Raise Unset naming every one of `names` that is unset, unless embedded defaults were asked for."""
        missing = [n for n in names if not _given(getattr(self, n))]
        if missing and not self.embedded:
            raise Unset(
                "; ".join(f"FABHUB_{n.upper()} is not set ({SHARED.get(n, 'needed here')})" for n in missing)
                + ": set it, or pass --embedded (FABHUB_EMBEDDED=true) to try FabHub on embedded defaults"
            )

    @property
    def client_id(self) -> str:
        """Stable across restarts, so the broker keeps the persistent session's messages for the next start;
        distinct per site and host, so two sites' gateways never take each other's connection."""
        return self.mqtt_client_id or f"fabhub-gateway-{self.site or 'all'}-{socket.gethostname()}"[:64]

    @property
    def rollup_lookback(self) -> timedelta:
        return timedelta(seconds=self.rollup_lookback_s)


def _given(value: object) -> bool:
    """Set and not empty: `FABHUB_DATABASE_URL=` in an environment file is as good as unset."""
    return bool(value.get_secret_value() if isinstance(value, SecretStr) else value)
