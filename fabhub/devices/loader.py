"""Load `devices.yaml` keeping line numbers (ruamel.yaml), so every problem, from a YAML syntax error to
a bad endpoint, is reported at once with file, line and key path."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from fabhub.devices.schema import PROTOCOLS, DeviceFile


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class DeviceFileError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_devices(path: Path, environ: Mapping[str, str] | None = None) -> DeviceFile:
    """The validated file, or DeviceFileError listing every problem. With `environ`, the file is about to
    be used for real: every secret it names must be set there."""
    model, problems = _load(path, environ)
    if problems or model is None:
        raise DeviceFileError(problems)
    return model


def check_file(path: Path, environ: Mapping[str, str] | None = None) -> list[Problem]:
    return _load(path, environ)[1]


def _load(path: Path, environ: Mapping[str, str] | None = None) -> tuple[DeviceFile | None, list[Problem]]:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(name, 1, 1, "", f"cannot read: {exc}")]
    try:
        data = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return None, [Problem(name, line, col, "", f"YAML: {exc.problem or exc.context}")]
    except YAMLError as exc:
        return None, [Problem(name, 1, 1, "", f"YAML: {exc}")]
    if not isinstance(data, dict):
        return None, [Problem(name, 1, 1, "", "expected a mapping with center, classes and devices")]
    problems = [Problem(name, *_position(data, loc), _dotted(loc), message) for loc, message in _cross_checks(data)]
    model = None
    try:
        model = DeviceFile.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _without_union_tag(tuple(err["loc"]))
            message = err["msg"].removeprefix("Value error, ")
            problems.append(Problem(name, *_position(data, loc), _dotted(loc), message))
    if model is not None and environ is not None:
        for loc, message in _missing_secrets(model, environ):
            problems.append(Problem(name, *_position(data, loc), _dotted(loc), message))
    problems.sort(key=lambda p: (p.line, p.column, p.path))
    return model, problems


def _cross_checks(data: dict) -> list[tuple[tuple, str]]:
    """What no single field knows: ids unique, classes referenced (by devices and programs) exist."""
    found: list[tuple[tuple, str]] = []
    devices = data.get("devices")
    classes = data.get("classes")
    programs = data.get("subsidy_programs")
    if isinstance(programs, dict) and isinstance(classes, dict):
        for name, program in programs.items():
            listed = program.get("classes") if isinstance(program, dict) else None
            for j, cls in enumerate(listed if isinstance(listed, list) else []):
                if isinstance(cls, str) and cls not in classes:
                    found.append((("subsidy_programs", name, "classes", j), f"unknown class {cls!r}"))
    if not isinstance(devices, list):
        return found
    ids = Counter(d.get("id") for d in devices if isinstance(d, dict))
    for i, device in enumerate(devices):
        if not isinstance(device, dict):
            continue
        if device.get("id") is not None and ids[device.get("id")] > 1:
            found.append((("devices", i, "id"), f"device id {device.get('id')!r} is used more than once"))
        cls = device.get("class")
        if isinstance(classes, dict) and isinstance(cls, str) and cls not in classes:
            found.append((("devices", i, "class"), f"unknown class {cls!r}; classes: {', '.join(classes)}"))
    return found


def _missing_secrets(model: DeviceFile, environ: Mapping[str, str]) -> list[tuple[tuple, str]]:
    found = []
    for i, device in enumerate(model.devices):
        for key, variable in device.secret_variables().items():
            if variable not in environ:
                found.append(
                    (("devices", i, *key.split(".")), f"{device.id} needs the environment variable {variable}: not set")
                )
    return found


def _without_union_tag(loc: tuple) -> tuple:
    """Pydantic names the protocol variant of a device in the error path (devices.0.modbus.signals...);
    the file has no such level."""
    if len(loc) > 2 and loc[0] == "devices" and loc[2] in PROTOCOLS:
        return loc[:2] + loc[3:]
    return loc


def _position(node: Any, loc: tuple) -> tuple[int, int]:
    """Line and column (1-based) of the deepest key or item of `loc` present in the YAML tree."""
    line, col = 1, 1
    for key in loc:
        if isinstance(node, CommentedMap) and key in node:
            line, col = node.lc.key(key)
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
            line, col = node.lc.item(key)
            node = node[key]
        else:
            break
        line, col = line + 1, col + 1
    return line, col


def _dotted(loc: tuple) -> str:
    out = ""
    for key in loc:
        if key == "[key]":
            continue
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += f".{key}" if out else str(key)
    return out
