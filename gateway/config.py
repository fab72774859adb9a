"""Protocol settings, signal sources and state rules of a device, as `devices.yaml` states them. These
models are the gateway's; `fabhub.devices` embeds them so `fabhub devices check` validates them with
file, line and key."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from telemetry.model import SIGNAL as SIGNAL_NAME

SIGNAL = SIGNAL_NAME.pattern
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
JSON_PATH = r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$"


MAX_DURATION = timedelta(days=366)


def parse_duration(value: Any) -> Any:
    """`250ms`, `90s`, `30m`, `1.5h`, `2d` or plain seconds, up to MAX_DURATION: a larger one is a typo,
    and would overflow the date arithmetic it feeds (timedelta ends near 10^9 days)."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 500ms, 90s, 30m, 1.5h, 2d")
    if isinstance(value, int | float):
        seconds: float = value
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration like 500ms, 90s, 30m, 1.5h or 2d")
        seconds = float(match.group(1)) * _UNIT[match.group(2)]  # float(): inf beyond 1e308, never an error
    else:
        return value
    if isinstance(seconds, float) and not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite duration")
    if not 0 <= seconds <= MAX_DURATION.total_seconds():
        raise ValueError(f"{value!r} is out of range: a duration is positive and at most {MAX_DURATION.days}d")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration), Field(gt=timedelta(0), le=MAX_DURATION)]
SignalName = Annotated[str, Field(pattern=SIGNAL)]
State = Literal["running", "setup", "idle", "down", "maintenance", "offline"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# -- secrets --------------------------------------------------------------------------------------

ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="an environment variable")]


def _reference_only(value: str | None) -> str | None:
    if value is not None and not ENV_REFERENCE.match(value):
        raise ValueError("secrets come from the environment: write ${VARIABLE} (or password_env: VARIABLE)")
    return value


SecretReference = Annotated[str, BeforeValidator(_reference_only)]


class MissingSecret(LookupError):
    """A secret's environment variable is not set where the gateway runs."""

    def __init__(self, key: str, variable: str) -> None:
        self.key, self.variable = key, variable
        super().__init__(f"{key}: the environment variable {variable} is not set")


class Secrets(Strict):
    """Fields that may name environment variables: `password_env: VAR`, or `${VAR}` in the value itself
    (a password only ever so). Resolved where the gateway starts, never written to the file."""

    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ()  # fields taking ${VAR}
    ENV_FIELDS: ClassVar[dict[str, str]] = {}  # `<x>_env` field -> the field it fills

    def variables(self) -> dict[str, str]:
        """Key in the file (dotted below this level) -> the environment variable it needs."""
        out = {}
        for name in self.SECRET_FIELDS:
            match = ENV_REFERENCE.match(getattr(self, name) or "")
            if match:
                out[name] = match.group(1)
        for name in self.ENV_FIELDS:
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        for name, nested in self._nested().items():
            out.update({f"{name}.{k}": v for k, v in nested.variables().items()})
        return out

    def resolved(self, environ: Mapping[str, str]) -> Self:
        """A copy holding the secrets themselves, for the adapter; MissingSecret names what is missing."""
        update: dict[str, Any] = {}
        for key, variable in self.variables().items():
            if "." in key:
                continue
            if variable not in environ:
                raise MissingSecret(key, variable)
            update[self.ENV_FIELDS.get(key, key)] = environ[variable]
        for name, nested in self._nested().items():
            try:
                update[name] = nested.resolved(environ)
            except MissingSecret as exc:
                raise MissingSecret(f"{name}.{exc.key}", exc.variable) from None
        return self.model_copy(update=update)

    def _nested(self) -> dict[str, Secrets]:
        return {name: value for name in type(self).model_fields if isinstance(value := getattr(self, name), Secrets)}


# -- signals --------------------------------------------------------------------------------------


class SignalCommon(Strict):
    """What every source shares: scaling, plausibility range, counter handling, change reporting."""

    scale: float = 1.0
    offset: float = 0.0
    min: float | None = None
    max: float | None = None
    counter: bool = False  # a cumulative counter: the writer stores its deltas as <name>.delta
    rollover: int | None = Field(None, gt=1, le=2**64, description="where the counter wraps; default from its type")
    max_per_s: float | None = Field(
        None,
        gt=0,
        le=1e9,
        description="the most a counter can count per second (in its unit: parts, kWh); parts_* default from"
        " ideal_cycle_time",
    )
    reset_on: SignalName | None = Field(None, description="a signal (e.g. a job id) whose change restarts the count")
    resolution: float | None = Field(
        None,
        gt=0,
        le=1e6,
        description="a counter's step in its raw value, for counters read as decimals (an energy meter's float kWh:"
        " 0.01); its deltas are then counted in these steps. Default 1: a whole-number counter",
    )
    deadband: float = Field(0.0, ge=0, description="report a number only when it moves more than this")

    @model_validator(mode="after")
    def _range(self) -> SignalCommon:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is larger than max")
        for option in ("rollover", "max_per_s", "reset_on", "resolution"):
            if getattr(self, option) is not None and not self.counter:
                raise ValueError(f"{option} only applies to a counter")
        return self


MODBUS_WIDTH = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "int64": 4,
    "uint64": 4,
    "float32": 2,
    "float64": 4,
    "bit": 1,
}


class ModbusSignal(SignalCommon):
    table: Literal["holding", "input", "coil", "discrete"] = "holding"
    address: int = Field(ge=0, le=65535)
    type: Literal["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string", "bit"] = (
        "uint16"
    )
    word_order: Literal["big", "little"] = "big"
    byte_order: Literal["big", "little"] = "big"
    length: int | None = Field(None, ge=1, le=123, description="registers of a string")
    bit: int | None = Field(None, ge=0, le=15, description="bit of a register, for type bit")

    @property
    def width(self) -> int:
        """Registers (or coils) the field occupies."""
        if self.table in ("coil", "discrete"):
            return 1
        if self.type == "string":
            assert self.length is not None  # _shape requires a string's length
            return self.length
        return MODBUS_WIDTH[self.type]

    @model_validator(mode="after")
    def _shape(self) -> ModbusSignal:
        if self.table in ("coil", "discrete") and self.type != "bit":
            raise ValueError(f"a {self.table} holds one bit: use type bit")
        if self.type == "string" and self.length is None:
            raise ValueError("a string needs its length in registers")
        if self.type != "string" and self.length is not None:
            raise ValueError("length only applies to strings")
        if self.type == "bit" and self.table in ("holding", "input") and self.bit is None:
            raise ValueError("a bit of a register needs `bit` (0-15)")
        if self.address + self.width - 1 > 65535:
            raise ValueError(f"runs past the last register: {self.address} + {self.width} registers > 65536")
        return self


class OpcUaSignal(SignalCommon):
    node: str | None = Field(None, description="node id, e.g. ns=2;s=Spindle.Speed or nsu=<uri>;i=1001")
    path: str | None = Field(None, description="browse path below the machine object, e.g. MT:Monitoring/...")
    mode: Literal["subscribe", "poll"] = "subscribe"
    sampling_interval: Duration | None = None
    queue_size: int = Field(1, ge=1, le=1000)

    @model_validator(mode="after")
    def _one_address(self) -> OpcUaSignal:
        if (self.node is None) == (self.path is None):
            raise ValueError("give exactly one of node or path")
        return self


class MqttSignal(SignalCommon):
    json_path: str = Field(alias="json", pattern=JSON_PATH, description="dotted payload path")
    type: Literal["number", "text", "bool"] = "number"


# -- protocol settings ----------------------------------------------------------------------------


class ModbusSettings(Secrets):
    unit: int = Field(1, ge=0, le=247)
    poll_interval: Duration = timedelta(seconds=1)
    timeout: Duration = timedelta(seconds=1)
    max_gap: int = Field(0, ge=0, le=100, description="unused registers a coalesced read may span")


class OpcUaSecurity(Secrets):
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("private_key_password",)
    ENV_FIELDS: ClassVar[dict[str, str]] = {"private_key_password_env": "private_key_password"}

    mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    policy: Literal["Basic256Sha256"] = "Basic256Sha256"
    certificate: Path | None = None
    private_key: Path | None = None
    private_key_password: SecretReference | None = None
    private_key_password_env: EnvName | None = None
    server_certificate: Path | None = None
    application_uri: str = Field("urn:fabhub:gateway", description="must match the URI in our certificate")

    @model_validator(mode="after")
    def _keys(self) -> OpcUaSecurity:
        if self.mode != "None" and (self.certificate is None or self.private_key is None):
            raise ValueError(f"security mode {self.mode} needs certificate and private_key")
        return self


class OpcUaEvents(Strict):
    """Alarms arrive as events: the text of active ones becomes a text signal."""

    path: str = Field(description="browse path of the event notifier below the machine object")
    event_type: str = Field("MT:AlertType", description="browse path of the event type below BaseEventType")
    signal: SignalName = "alarm"
    code_field: str = "ErrorCode"
    active_field: str | None = "Active"


DEFAULT_NAMESPACES = {
    "DI": "http://opcfoundation.org/UA/DI/",
    "MA": "http://opcfoundation.org/UA/Machinery/",
    "MT": "http://opcfoundation.org/UA/MachineTool/",
}


class OpcUaSettings(Secrets):
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("username", "password")
    ENV_FIELDS: ClassVar[dict[str, str]] = {"password_env": "password"}

    machine: str = Field(description="browse path from Objects to the machine, e.g. MA:Machines/inst:cnc-01")
    namespaces: dict[str, str] = Field(default_factory=dict, description="prefix -> namespace URI")
    publishing_interval: Duration = timedelta(milliseconds=500)
    poll_interval: Duration = timedelta(seconds=1)
    timeout: Duration = timedelta(seconds=4)
    username: str | None = None
    password: SecretReference | None = None
    password_env: EnvName | None = None
    security: OpcUaSecurity = OpcUaSecurity()
    events: list[OpcUaEvents] = []

    @property
    def all_namespaces(self) -> dict[str, str]:
        return {**DEFAULT_NAMESPACES, **self.namespaces}


SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def _fingerprint(value: Any) -> Any:
    """SHA-256 as printed by openssl (`AB:CD:...`) or plain hex, kept as lowercase hex."""
    if isinstance(value, str):
        text = value.replace(":", "").strip().lower()
        if not SHA256_HEX.match(text):
            raise ValueError("a SHA-256 fingerprint is 64 hex digits (colons allowed)")
        return text
    return value


class MqttSettings(Secrets):
    """A device on the site broker (no `endpoint`), or a device that is its own broker, as a Bambu printer
    in LAN mode is (`endpoint: mqtts://<ip>:8883`): then it gets its own connection, credentials and TLS."""

    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("username", "password")
    ENV_FIELDS: ClassVar[dict[str, str]] = {"password_env": "password"}

    topic: str = "device/{serial}/report"
    serial: str | None = Field(None, pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    request_topic: str | None = "device/{serial}/request"
    pushall_on_connect: bool = True
    pushall_every: Duration | None = Field(
        timedelta(minutes=5), description="ask again for a full report now and then (P1/A1 send only deltas)"
    )
    merge_deltas: bool = True
    offline_after: Duration = timedelta(seconds=10)
    time_json: str | None = Field(None, pattern=JSON_PATH, description="where a report carries its own time")
    username: str | None = None
    password: SecretReference | None = None
    password_env: EnvName | None = None
    ca_file: Path | None = Field(None, description="PEM of the CA (or the certificate itself) to trust")
    tls_fingerprint: Annotated[str | None, BeforeValidator(_fingerprint)] = Field(
        None, description="SHA-256 of the device's certificate, pinned"
    )
    tls_verify_hostname: bool = True

    @property
    def pinned(self) -> bool:
        return self.ca_file is not None or self.tls_fingerprint is not None

    @property
    def tls_options(self) -> list[str]:
        fields = self.model_fields_set & {"ca_file", "tls_fingerprint", "tls_verify_hostname"}
        return sorted(fields)

    @model_validator(mode="after")
    def _never_accept_anything(self) -> MqttSettings:
        if not self.tls_verify_hostname and not self.pinned:
            raise ValueError(
                "tls_verify_hostname: false without ca_file or tls_fingerprint would accept any certificate:"
                " pin the device's certificate (tls_fingerprint) or give the CA that signed it (ca_file)"
            )
        if self.password is not None and self.password_env is not None:
            raise ValueError("give password or password_env, not both")
        return self

    @field_validator("topic", "request_topic")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if "{serial}" not in value and "{device_id}" not in value:
            raise ValueError("the topic template must contain {serial} or {device_id}")
        if any(c in value for c in "#+"):
            raise ValueError("a device topic names one device: no wildcards")
        return value


# -- state rules ----------------------------------------------------------------------------------


class Condition(Strict):
    signal: SignalName
    eq: float | str | bool | None = None
    ne: float | str | bool | None = None
    in_: list[float | str | bool] | None = Field(None, alias="in")
    gt: float | None = None
    lt: float | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        tests = [t for t in ("eq", "ne", "in_", "gt", "lt") if getattr(self, t) is not None]
        if len(tests) != 1:
            raise ValueError("a condition needs exactly one of eq, ne, in, gt, lt")
        return self

    def holds(self, values: dict[str, Any]) -> bool:
        if self.signal not in values:
            return False
        v = values[self.signal]
        if self.eq is not None:
            return v == self.eq
        if self.ne is not None:
            return v != self.ne
        if self.in_ is not None:
            return v in self.in_
        if not isinstance(v, int | float):
            return False
        return v > self.gt if self.gt is not None else v < self.lt  # type: ignore[operator]


class StateRule(Strict):
    """First matching rule wins: `when` (one condition), `all`, `any`, none of them (a default), or
    `map` (a protocol value straight to a state)."""

    state: State | None = None
    when: Condition | None = None
    all: list[Condition] | None = None
    any: list[Condition] | None = None
    map: SignalName | None = None
    values: dict[str, State] | None = None

    @model_validator(mode="after")
    def _form(self) -> StateRule:
        if self.map is not None:
            if self.values is None or self.state is not None or self.conditions():
                raise ValueError("a map rule has `map` and `values` only")
        elif self.state is None:
            raise ValueError("a rule needs `state` (or `map` with `values`)")
        elif self.values is not None:
            raise ValueError("`values` belongs to a map rule")
        return self

    def conditions(self) -> list[Condition]:
        return [*([self.when] if self.when else []), *(self.all or []), *(self.any or [])]

    def signals(self) -> set[str]:
        return {c.signal for c in self.conditions()} | ({self.map} if self.map else set())

    def apply(self, values: dict[str, Any]) -> str | None:
        if self.map is not None:
            value = values.get(self.map)
            return None if value is None else self.values.get(str(value))  # type: ignore[union-attr]
        if self.when is not None and not self.when.holds(values):
            return None
        if self.all is not None and not all(c.holds(values) for c in self.all):
            return None
        if self.any is not None and not any(c.holds(values) for c in self.any):
            return None
        return self.state


def derive_state(rules: list[StateRule], values: dict[str, Any]) -> str | None:
    for rule in rules:
        state = rule.apply(values)
        if state is not None:
            return state
    return None


@dataclass(frozen=True)
class CounterRule:
    """How the writer judges a counter's steps (telemetry.counters)."""

    modulus: int | None = None  # in steps
    max_per_s: float | None = None  # steps a second
    reset_on: str | None = None
    resolution: float = 1.0  # raw value of a step
    unit: float = 1.0  # what a step is worth in the signal's unit (kWh, parts): resolution x scale
    every: int = 0  # steps to gather before handing the value on (the deadband), unless the heartbeat is due


PART_COUNTER = "parts_"
DEFAULT_MAX_RATE = 3.0
DEFAULT_RECONNECT_MAX = timedelta(seconds=10)


@dataclass(frozen=True)
class GatewayDevice:
    """What the gateway needs of a device; the composition root builds it from devices.yaml."""

    id: str
    protocol: Literal["opcua", "modbus", "mqtt"]
    endpoint: str | None
    settings: OpcUaSettings | ModbusSettings | MqttSettings
    signals: dict[str, OpcUaSignal] | dict[str, ModbusSignal] | dict[str, MqttSignal]
    states: list[StateRule]
    heartbeat: timedelta
    ideal_cycle_time: timedelta | None = None
    max_rate: float | None = DEFAULT_MAX_RATE  # a part counter faster than this times the ideal rate was reset
    reconnect_max: timedelta = DEFAULT_RECONNECT_MAX

    def counter_rules(self) -> dict[str, CounterRule]:
        """Counters count in steps of their `resolution` (1: whole numbers), each worth `resolution` x `scale`
        of the signal's unit. Integer registers wrap where their type does unless `rollover` (raw) says
        otherwise; decimals never wrap. Part counters may not outrun `max_rate` times the ideal cycle (one part
        per ideal_cycle_time), other counters their own `max_per_s` (in the signal's unit a second)."""
        rules = {}
        for name, spec in self.signals.items():
            if not spec.counter:
                continue
            resolution = spec.resolution or 1.0
            unit = resolution * spec.scale
            modulus = spec.rollover
            if modulus is None and isinstance(spec, ModbusSignal) and spec.type in MODBUS_WIDTH:
                modulus = None if spec.type.startswith("float") else 1 << (16 * MODBUS_WIDTH[spec.type])
            if modulus is not None:
                modulus = round(modulus / resolution)
            max_per_s = spec.max_per_s / unit if spec.max_per_s is not None else None
            if max_per_s is None and name.startswith(PART_COUNTER) and self.ideal_cycle_time and self.max_rate:
                max_per_s = self.max_rate / self.ideal_cycle_time.total_seconds()
            every = math.floor(spec.deadband / unit) if spec.deadband else 0
            rules[name] = CounterRule(modulus, max_per_s, spec.reset_on, resolution, unit, every)
        return rules
