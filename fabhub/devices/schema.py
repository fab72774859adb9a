"""The shape of `devices.yaml`. Money is Decimal, durations are written as `90s`, `30m`, `1.5h`, `2d`
(or plain seconds). Protocol sections (`opcua`, `modbus`, `mqtt`) and signal sources are open mappings
here; the gateway validates their contents."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from gateway.config import (
    DEFAULT_MAX_RATE,
    Duration,
    ModbusSettings,
    ModbusSignal,
    MqttSettings,
    MqttSignal,
    OpcUaSettings,
    OpcUaSignal,
    SignalName,
    StateRule,
)
from oee.einvoice import EInvoiceSettings

ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SITE = r"^[a-z0-9][a-z0-9-]{0,31}$"  # also a topic level on the central broker: no `_`, `+`, `#` or `/`
DEFAULT_SITE = "main"
ENDPOINT_SCHEMES = {"opcua": ("opc.tcp",), "modbus": ("tcp", "modbus+tcp"), "mqtt": ("mqtt", "mqtts")}


def _decimal(value: Any) -> Any:
    # YAML floats arrive as binary floats; go through their shortest text so 180.1 stays 180.1.
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


Money = Annotated[Decimal, BeforeValidator(_decimal), Field(ge=0, max_digits=12, decimal_places=2)]
Share = Annotated[Decimal, BeforeValidator(_decimal), Field(ge=0, le=1, decimal_places=4)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class BookingRules(Strict):
    """After NEMO's reservation rules."""

    min_booking: Duration = timedelta(minutes=30)
    max_booking: Duration = timedelta(hours=8)
    granularity: Duration = timedelta(minutes=30)
    horizon_days: int = Field(30, ge=1, le=366)
    max_future_hours_per_org: int = Field(40, ge=1, le=100_000)
    late_cancellation: Duration = timedelta(hours=24)
    no_show_after: Duration = timedelta(minutes=30)
    late_cancellation_fee_share: Share = Decimal("0.5")
    no_show_fee_share: Share = Decimal("1")

    @model_validator(mode="after")
    def _consistent(self) -> BookingRules:
        if self.min_booking > self.max_booking:
            raise ValueError("min_booking is longer than max_booking")
        if timedelta(days=1) % self.granularity:
            raise ValueError("granularity must divide a day (15m, 30m, 1h, 2h, ...): the grid starts at midnight")
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


class DeviceBase(Strict):
    id: Annotated[str, Field(pattern=ID)]
    name: str = Field(min_length=1)
    class_: Annotated[str | None, Field(alias="class", pattern=ID)] = None
    meters: Annotated[str | None, Field(pattern=ID)] = Field(
        None, description="a power meter: the id of the machine whose energy it measures (a meter has no class)"
    )
    endpoint: str | None = None
    ideal_cycle_time: Duration | None = None
    hourly_rate: Money | None = None
    retired: bool = False
    heartbeat: Duration = timedelta(seconds=60)
    max_rate: float | None = Field(
        DEFAULT_MAX_RATE,
        ge=1,
        le=1000,
        description="a part counter faster than this times the ideal rate was reset; null: no such check",
    )
    reconnect_max: Duration | None = Field(None, description="longest wait between reconnects; default global")
    site: Annotated[str, Field(pattern=SITE)] = Field(
        DEFAULT_SITE, description="the site whose gateway reads it (`fabhub gateway --site NAME`)"
    )
    states: list[StateRule] = []

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        protocol = get_args(cls.model_fields["protocol"].annotation)[0]
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

    def signal_names(self) -> set[str]:
        return set(getattr(self, "signals", {}))

    @property
    def class_id(self) -> str:
        if self.class_ is None:
            raise ValueError(f"{self.id} is a power meter: it has no class")
        return self.class_

    @model_validator(mode="after")
    def _machine_or_meter(self) -> DeviceBase:
        if self.meters is None and self.class_ is None:
            raise ValueError("a machine needs its class (or `meters: <machine id>` for a power meter)")
        if self.meters is not None:
            given = [k for k in ("class_", "ideal_cycle_time", "hourly_rate", "states") if getattr(self, k)]
            if given:
                names = ", ".join("class" if k == "class_" else k for k in given)
                raise ValueError(f"a power meter is not booked and has no states: drop {names}")
            if "energy_kwh" not in self.signal_names():
                raise ValueError("a power meter needs its energy_kwh counter among its signals")
        return self

    @model_validator(mode="after")
    def _rules_use_known_signals(self) -> DeviceBase:
        known = self.signal_names()
        for i, rule in enumerate(self.states):
            unknown = rule.signals() - known
            if unknown:
                raise ValueError(f"states[{i}] uses undefined signal(s): {', '.join(sorted(unknown))}")
        for name, spec in getattr(self, "signals", {}).items():
            if spec.reset_on is not None and spec.reset_on not in known:
                raise ValueError(f"signals.{name}.reset_on names an undefined signal: {spec.reset_on}")
        return self

    def secret_variables(self) -> dict[str, str]:
        """Keys of this device (dotted, below the device) that name an environment variable -> the variable."""
        settings = getattr(self, self.protocol)  # type: ignore[attr-defined]
        return {f"{self.protocol}.{k}": v for k, v in settings.variables().items()}  # type: ignore[attr-defined]


class OpcUaDevice(DeviceBase):
    protocol: Literal["opcua"]
    opcua: OpcUaSettings
    signals: dict[SignalName, OpcUaSignal] = {}

    def signal_names(self) -> set[str]:
        names = set(self.signals) | {e.signal for e in self.opcua.events}
        return names | {f"{n}.name" for n in self.signals}  # enumeration names the OPC UA adapter adds


class ModbusDevice(DeviceBase):
    protocol: Literal["modbus"]
    modbus: ModbusSettings = ModbusSettings()
    signals: dict[SignalName, ModbusSignal] = {}


class MqttDevice(DeviceBase):
    protocol: Literal["mqtt"]
    mqtt: MqttSettings = MqttSettings()
    signals: dict[SignalName, MqttSignal] = {}

    @model_validator(mode="after")
    def _serial(self) -> MqttDevice:
        templates = [self.mqtt.topic, self.mqtt.request_topic or ""]
        if any("{serial}" in t for t in templates) and self.mqtt.serial is None:
            raise ValueError("the topic uses {serial}: set mqtt.serial to the printer's serial number")
        return self

    @model_validator(mode="after")
    def _connection(self) -> MqttDevice:
        scheme = urlsplit(self.endpoint).scheme if self.endpoint else None
        tls = self.mqtt.tls_options
        if scheme is None and (tls or self.mqtt.username or self.mqtt.password or self.mqtt.password_env):
            raise ValueError(
                "TLS and login options belong to a device that is its own broker (endpoint: mqtts://...); "
                "the site broker's are in FABHUB_MQTT_URL"
            )
        if scheme == "mqtt" and tls:
            raise ValueError(f"{', '.join(tls)}: only with an mqtts:// endpoint")
        return self

    def topic(self, template: str) -> str:
        return template.replace("{serial}", self.mqtt.serial or "").replace("{device_id}", self.id)


Device = Annotated[OpcUaDevice | ModbusDevice | MqttDevice, Field(discriminator="protocol")]
PROTOCOLS = ("opcua", "modbus", "mqtt")


class SubsidyProgram(Strict):
    """A funding program: a share off the market price for eligible customers and device classes, valid
    between two dates (inclusive, the center's calendar) and capped per customer per calendar year."""

    name: str = Field(min_length=1)
    share: Share
    classes: list[Annotated[str, Field(pattern=ID)]] = Field(min_length=1)
    valid_from: date
    valid_to: date
    annual_cap: Money

    @model_validator(mode="after")
    def _dates(self) -> SubsidyProgram:
        if self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self


class Center(Strict):
    name: str = Field(min_length=1)
    name_en: str | None = None


class Carbon(Strict):
    """The grid emission factor every CO2 figure is computed with and stated beside. Default: the national
    average the Ministry of Ecology and Environment published for 2022; a provincial factor may replace it."""

    factor: Annotated[Decimal, BeforeValidator(_decimal), Field(gt=0, le=5, decimal_places=4)] = Decimal("0.5703")
    source: str = Field("生态环境部 2022 年全国电力平均二氧化碳排放因子", min_length=1, max_length=200)
    year: int = Field(2022, ge=2000, le=2100)


class DeviceFile(Strict):
    """Top-level keys starting with `x-` are free for YAML anchors (shared signal maps), as in Compose."""

    center: Center
    classes: dict[Annotated[str, Field(pattern=ID)], DeviceClass] = Field(min_length=1)
    devices: list[Device] = Field(min_length=1)
    subsidy_programs: dict[Annotated[str, Field(pattern=ID)], SubsidyProgram] = {}
    carbon: Carbon = Carbon()
    einvoice: EInvoiceSettings = EInvoiceSettings()

    @model_validator(mode="after")
    def _einvoice_classes(self) -> DeviceFile:
        unknown = sorted(set(self.einvoice.classes) - set(self.classes))
        if unknown:
            raise ValueError(f"einvoice.classes names unknown device class(es): {', '.join(unknown)}")
        return self

    @property
    def machines(self) -> list[OpcUaDevice | ModbusDevice | MqttDevice]:
        """The devices that are booked (every one but the power meters)."""
        return [d for d in self.devices if d.meters is None]

    def energy_sources(self) -> dict[str, tuple[str, ...]]:
        """Where each machine's energy is measured: its power meters, else its own energy_kwh counter.
        A machine with neither has no energy figures (unknown, not zero)."""
        meters: dict[str, list[str]] = {}
        for d in self.devices:
            if d.meters is not None:
                meters.setdefault(d.meters, []).append(d.id)
        return {
            m.id: tuple(meters.get(m.id, [m.id]))
            for m in self.machines
            if m.id in meters or "energy_kwh" in m.signal_names()
        }

    @model_validator(mode="before")
    @classmethod
    def _drop_extensions(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
        return data

    def device(self, device_id: str) -> OpcUaDevice | ModbusDevice | MqttDevice | None:
        return next((d for d in self.devices if d.id == device_id), None)

    @property
    def device_ids(self) -> frozenset[str]:
        return frozenset(d.id for d in self.devices)

    @property
    def sites(self) -> list[str]:
        return sorted({d.site for d in self.devices})

    def at_site(self, site: str | None) -> list[OpcUaDevice | ModbusDevice | MqttDevice]:
        """The devices a gateway for `site` reads (None: every site's, a single-site center's gateway)."""
        if site is not None and site not in self.sites:
            raise ValueError(f"no device has site {site!r}; the sites in the file are: {', '.join(self.sites)}")
        return [d for d in self.devices if site is None or d.site == site]
