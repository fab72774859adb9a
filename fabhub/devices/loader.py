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
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import MappingEndEvent, MappingStartEvent, SequenceEndEvent, SequenceStartEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

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
        data, found = _read_yaml(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return None, [Problem(name, line, col, "", f"YAML: {exc.problem or exc.context}")]
    except YAMLError as exc:
        return None, [Problem(name, 1, 1, "", f"YAML: {exc}")]
    except RecursionError:
        line, col = _too_deep(text)
        return None, [Problem(name, line, col, "", "YAML: nested too deeply")]
    if found:
        return None, [Problem(name, line, col, _dotted(loc), message) for loc, line, col, message in found]
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


class _Constructor(RoundTripConstructor):
    """A scalar that YAML's own types cannot hold (a date 2025-13-45, an integer of 5,000 digits, `!!int abc`)
    stays its text, so the schema reports it with its key instead of the loader raising."""

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        try:
            return super().construct_non_recursive_object(node, tag)
        except (ValueError, TypeError, KeyError, OverflowError, ConstructorError):
            if isinstance(node, ScalarNode):
                return node.value
            raise


# Tags a devices file may carry (most implicitly): anything else (`!foo`, `!!binary`, `!!set`, `!!python/...`)
# is a mistake the schema would otherwise see as some other type, or not at all.
_CORE = "tag:yaml.org,2002:"
_TAGS = {f"{_CORE}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp", "map", "seq", "merge")}


def _read_yaml(text: str) -> tuple[Any, list[tuple[tuple, int, int, str]]]:
    """The document, or the problems of its node graph (foreign tags, an alias inside its own anchor) with
    their key path, line and column; those are looked for before anything is built from the graph."""
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    root = yaml.compose(text)
    found = _graph_problems(root)
    if found or root is None:
        return None, found
    return yaml.constructor.construct_document(root), []


def _graph_problems(root: Node | None) -> list[tuple[tuple, int, int, str]]:
    """Depth first over the node graph without recursion; an edge back to a node on the current path is an
    anchor loop (`&a [*a]`), which ruamel builds into a self-containing object or fails on (merges)."""
    found: list[tuple[tuple, int, int, str]] = []
    if root is None:
        return found
    on_path: set[int] = set()
    done: set[int] = set()
    # (node, its key path, where to report it, whether its children are all done)
    stack: list[tuple[Node, tuple, Any, bool]] = [(root, (), root.start_mark, False)]
    while stack:
        node, loc, mark, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            done.add(id(node))
            continue
        line, column = mark.line + 1, mark.column + 1
        if id(node) in on_path:
            found.append((loc, line, column, "an alias (*) inside its own anchor (&): a loop"))
            continue
        if id(node) in done:
            continue
        tag = str(node.tag)
        if tag not in _TAGS:
            found.append((loc, line, column, f"unsupported YAML tag {tag.replace(_CORE, '!!')}"))
        if isinstance(node, ScalarNode):
            done.add(id(node))
            continue
        on_path.add(id(node))
        stack.append((node, loc, mark, True))
        children: list[tuple[Node, tuple, Any, bool]]
        if isinstance(node, MappingNode):
            children = [(v, (*loc, _key(k)), k.start_mark, False) for k, v in node.value]
        else:  # an item that loops back has the anchor's mark: report it at its list
            children = [
                (v, (*loc, i), node.start_mark if id(v) in on_path else v.start_mark, False)
                for i, v in enumerate(node.value)
            ]
        stack.extend(reversed(children))
    found.sort(key=lambda f: (f[1], f[2]))
    return found


def _key(node: Node) -> Any:
    return node.value if isinstance(node, ScalarNode) else "?"


def _too_deep(text: str) -> tuple[int, int]:
    """Where the nesting is deepest (1-based line and column), found from the parser's events, which need
    no recursion."""
    depth, deepest, where = 0, -1, (1, 1)
    try:
        for event in YAML(typ="rt").parse(text):
            if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
                depth += 1
                if depth > deepest:
                    deepest, where = depth, (event.start_mark.line + 1, event.start_mark.column + 1)
            elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                depth -= 1
    except YAMLError:
        pass
    return where


def _cross_checks(data: dict) -> list[tuple[tuple, str]]:
    """What no single field knows: ids unique, classes referenced (by devices and programs) exist, power
    meters measure machines of the file."""
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
    ids = Counter(d.get("id") for d in devices if isinstance(d, dict) and isinstance(d.get("id"), str))
    machines = {d["id"] for d in devices if isinstance(d, dict) and isinstance(d.get("id"), str) and "meters" not in d}
    for i, device in enumerate(devices):
        if not isinstance(device, dict):
            continue
        if isinstance(device.get("id"), str) and ids[device.get("id")] > 1:
            found.append((("devices", i, "id"), f"device id {device.get('id')!r} is used more than once"))
        cls = device.get("class")
        if isinstance(classes, dict) and isinstance(cls, str) and cls not in classes:
            found.append((("devices", i, "class"), f"unknown class {cls!r}; classes: {', '.join(classes)}"))
        metered = device.get("meters")
        if isinstance(metered, str) and metered not in machines:
            found.append((("devices", i, "meters"), f"{metered!r} is not a machine in this file"))
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
