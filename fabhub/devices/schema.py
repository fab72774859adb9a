"""The shape of `devices.yaml`. Money is Decimal, durations are written as `90s`, `30m`, `1.5h`, `2d`
(or plain seconds). Protocol sections (`opcua`, `modbus`, `mqtt`) and signal sources are open mappings
here; the gateway validates their contents."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SIGNAL = r"^[a-z][a-z0-9_]{0,63}(\.[a-z0-9_]{1,64}){0,3}$"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
ENDPOINT_SCHEMES = {"opcua": ("opc.tcp",), "modbus": ("tcp", "modbus+tcp"), "mqtt": ("mqtt", "mqtts")}


def _duration(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 90s, 30m, 1.5h, 2d")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration like 90s, 30m, 1.5h or 2d")
        return timedelta(seconds=float(match.group(1)) * _UNIT[match.group(2)])
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


def _decimal(value: Any) -> Any:
    # YAML floats arrive as binary floats; go through their shortest text so 180.1 stays 180.1.
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration), AfterValidator(_positive)]
Money = Annotated[Decimal, BeforeValidator(_decimal), Field(ge=0, max_digits=12, decimal_places=2)]
Share = Annotated[Decimal, BeforeValidator(_decimal), Field(ge=0, le=1, decimal_places=4)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BookingRules(Strict):
    """After NEMO's reservation rules."""

    min_booking: Duration = timedelta(minutes=30)
    max_booking: Duration = timedelta(hours=8)
    granularity: Duration = timedelta(minutes=30)
    horizon_days: int = Field(30, ge=1, le=366)
    max_future_hours_per_org: int = Field(40, ge=1)
    late_cancellation: Duration = timedelta(hours=24)
    no_show_after: Duration = timedelta(minutes=30)
    late_cancellation_fee_share: Share = Decimal("0.5")
    no_show_fee_share: Share = Decimal("1")

    @model_validator(mode="after")
    def _consistent(self) -> BookingRules:
        if self.min_booking > self.max_booking:
            raise ValueError("min_booking is longer than max_booking")
        for name in ("min_booking", "max_booking"):
            if getattr(self, name) % self.granularity:
                raise ValueError(f"{name} is not a whole number of granularity steps")
        return self


class DeviceClass(Strict):
    name: str = Field(min_length=1)
    name_zh: str | None = None
    hourly_rate: Money
    billing_basis: Literal["booked", "metered", "overage"] = "booked"
    metered_minimum_share: Share = Decimal("0")
    rules: BookingRules = BookingRules()


class Device(Strict):
    id: Annotated[str, Field(pattern=ID)]
    name: str = Field(min_length=1)
    class_: Annotated[str, Field(alias="class", pattern=ID)]
    protocol: Literal["opcua", "modbus", "mqtt"]
    endpoint: str | None = None
    ideal_cycle_time: Duration | None = None
    hourly_rate: Money | None = None
    retired: bool = False
    signals: dict[Annotated[str, Field(pattern=SIGNAL)], Any] = {}
    states: dict[str, Any] | list[Any] | None = None
    opcua: dict[str, Any] | None = None
    modbus: dict[str, Any] | None = None
    mqtt: dict[str, Any] | None = None

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None, info: ValidationInfo) -> str | None:
        protocol = info.data.get("protocol")
        if protocol is None:
            return value
        if value is None:
            if protocol == "mqtt":
                return None  # printers publish through the center's broker
            raise ValueError(f"{protocol} devices need an endpoint")
        parts = urlsplit(value)
        schemes = ENDPOINT_SCHEMES[protocol]
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"{protocol} endpoints look like {schemes[0]}://host:port, not {value!r}")
        try:
            parts.port  # noqa: B018 - raises on a port out of range
        except ValueError as exc:
            raise ValueError(f"bad port in {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _own_protocol_only(self) -> Device:
        for other in ENDPOINT_SCHEMES:
            if other != self.protocol and getattr(self, other) is not None:
                raise ValueError(f"section '{other}' given for a device whose protocol is {self.protocol}")
        return self


class Center(Strict):
    name: str = Field(min_length=1)
    name_en: str | None = None


class DeviceFile(Strict):
    center: Center
    classes: dict[Annotated[str, Field(pattern=ID)], DeviceClass] = Field(min_length=1)
    devices: list[Device] = Field(min_length=1)

    def device(self, device_id: str) -> Device | None:
        return next((d for d in self.devices if d.id == device_id), None)

    @property
    def device_ids(self) -> frozenset[str]:
        return frozenset(d.id for d in self.devices)
