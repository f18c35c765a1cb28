"""Scenario files: YAML -> a validated, frozen ``Scenario`` (format: design/scenario-format.md).

The checks are written by hand over *composed* YAML nodes rather than handed to a schema
library: every node keeps its start mark, so each error can name the exact line of the
offending key or value, which is what a user editing the file needs. Every problem becomes
one ``ScenarioError`` whose message is one line: ``<file>:<line>: <dotted.field>: <message>``
(file-level problems, such as invalid YAML, have no field).

Safety: only ``yaml.SafeLoader`` machinery is used, and only to compose nodes; values are
constructed one scalar at a time by ``SafeConstructor``, so no tag can run code. Aliases are
refused outright (that is the whole "billion laughs" attack), and nesting depth, node count
and file size are capped so no input can exhaust memory or the stack.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import keyword
import math
import os
import re
import stat
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from topo.errors import ScenarioError
from topo.model import (
    APPENDONLY,
    BUILTIN_TASKS,
    CONTAINER_UID,
    RESTART_POLICIES,
    Fault,
    FaultKind,
    MultiSpec,
    PoolKind,
    QueueKind,
    StrKind,
    RedisSpec,
    Resources,
    RunSpec,
    Scenario,
    SingleSpec,
    Workload,
)

T = TypeVar("T")
K = TypeVar("K", bound=StrKind)

MiB = 1024 * 1024
MAX_FILE_BYTES = 1 * MiB
# A scenario has a few dozen nodes; params may hold some lists. These caps only exist so
# that hostile input fails fast instead of eating memory or hitting Python's recursion limit.
MAX_DEPTH = 32
MAX_NODES = 20_000
MIN_WORKER_MEMORY = 6 * MiB  # Docker refuses a memory limit below 6 MiB
MIN_REDIS_MEMORY = 8 * MiB
MIN_WORKER_CPUS = 0.01  # Docker's smallest --cpus
MAX_CPUS = 1024.0
MAX_TIMEOUT = 7 * 24 * 3600.0
MAX_SEED = 2**63 - 1

_TAG = "tag:yaml.org,2002:"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
# Docker's image reference grammar (distribution/reference), less its 255-character cap.
_IMAGE_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_RE = re.compile(
    rf"(?:[A-Za-z0-9.-]+(?::\d+)?/)?{_IMAGE_PART}(?:/{_IMAGE_PART})*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)
_CPUSET_RE = re.compile(r"(\d{1,4})(?:-(\d{1,4}))?")
_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_SIZE_RE = re.compile(rf"{_NUMBER}\s*(?:([kmgt])i?b?|b)?", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DURATION_RE = re.compile(rf"{_NUMBER}\s*(ms|s|m|h)?", re.IGNORECASE)
_DURATION_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PERCENT_RE = re.compile(rf"{_NUMBER}\s*%")


# The JSON Schema fragment of what each reader accepts (``schema()`` builds the scenario's
# JSON Schema from the field tables below and these, so the two cannot drift apart).
_SCHEMAS: dict[Callable[[Node, str], Any], dict[str, Any]] = {}
R = TypeVar("R", bound=Callable[[Node, str], Any])


def _described(schema: dict[str, Any]) -> Callable[[R], R]:
    def attach(read: R) -> R:
        _SCHEMAS[read] = schema
        return read

    return attach


class _Problem(Exception):
    """A located problem; ``parse`` turns it into a ScenarioError naming the file."""

    def __init__(self, line: int, field: str, message: str) -> None:
        super().__init__(message)
        self.line, self.field, self.message = line, field, message


# --------------------------------------------------------------------------- public


def load(path: str | Path) -> Scenario:
    """Read, validate and return the scenario in the file at ``path``.

    ``Scenario.source`` is ``path`` as given and ``Scenario.sha256`` the hex digest of the
    file's bytes. ``workload.path`` is resolved against the file's folder. Raises
    ``ScenarioError`` (one line: ``file:line: field: message``) for anything wrong.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)  # one byte more tells "too large" apart
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read the scenario file: {e.strerror or e}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError(f"{path}:1: the file is larger than 1 MiB; a scenario is a short text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ScenarioError(
            f"{path}:{line}: the file is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})"
        ) from None
    return _parse(text, str(path), hashlib.sha256(data).hexdigest(), path.parent.resolve())


def parse(text: str, source: str = "<string>", base_dir: str | Path | None = None) -> Scenario:
    """Validate scenario YAML given as text; ``source`` names it in errors and in the result.

    ``workload.path`` is resolved against ``base_dir`` (default: the current directory).
    ``Scenario.sha256`` is the digest of the text encoded as UTF-8. Raises ``ScenarioError``.
    """
    data = text.encode("utf-8", "surrogatepass")  # lone surrogates are rejected by the reader
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError(f"{source}:1: the text is larger than 1 MiB; a scenario is short")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return _parse(text, source, hashlib.sha256(data).hexdigest(), base)


def parse_size(value: Any) -> int:
    """Bytes in a Docker-style size: an int of bytes, or "1024", "256k", "512m", "1.5g", "1t".

    Suffixes are case-insensitive and binary (k = 1024, as Docker reads them); "kb", "ki" and
    "kib" mean the same as "k". Raises ValueError with a message meant for a user.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"must not be negative, got {value}")
        return value
    match = _SIZE_RE.fullmatch(value.strip()) if isinstance(value, str) and len(value) < 64 else None
    if match is None:
        raise ValueError(f"must be a size such as 512m, 1g or a number of bytes, got {_describe(value)}")
    number, unit = match.groups()
    return int(Decimal(number) * _SIZE_UNITS[unit and unit.lower()])  # int() floors, as Docker does


def parse_duration(value: Any) -> float:
    """Seconds in a duration: a number of seconds, or "500ms", "5s", "1.5s", "2m", "1h".

    A string without a unit is seconds. Raises ValueError with a message meant for a user.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION_RE.fullmatch(value.strip()) if isinstance(value, str) and len(value) < 64 else None
        if match is None:
            raise ValueError(f"must be a duration such as 500ms, 5s, 2m or a number of seconds, got {_describe(value)}")
        number, unit = match.groups()
        seconds = float(number) * _DURATION_UNITS[unit and unit.lower()]
    if not math.isfinite(seconds):
        raise ValueError(f"must be a finite duration, got {_describe(value)}")
    if seconds < 0:
        raise ValueError(f"must not be negative, got {_describe(value)}")
    return seconds


# --------------------------------------------------------------------------- YAML -> nodes


def _parse(text: str, source: str, sha256: str, base_dir: Path) -> Scenario:
    try:
        root = _compose(text)
        scenario = _scenario(root, base_dir)
    except _Problem as p:
        where = f"{source}:{p.line}"  # as given, folder included: an editor jumps there
        message = f"{p.field}: {p.message}" if p.field else p.message
        raise ScenarioError(_one_line(f"{where}: {message}")) from None
    return replace(scenario, source=source, sha256=sha256)


class _SafeComposer(yaml.SafeLoader):
    """A SafeLoader used only to compose nodes; it refuses aliases, deep nesting and bulk."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            # Refusing every alias is simpler and safer than budgeting their expansion, and a
            # scenario has nothing worth sharing between two places.
            raise _Problem(line, "", f"YAML aliases (*{event.anchor}) are not allowed; write the value out")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Problem(line, "", f"too many YAML values (more than {MAX_NODES})")
        if self._depth >= MAX_DEPTH:
            raise _Problem(line, "", f"values are nested more than {MAX_DEPTH} levels deep")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _compose(text: str) -> Node | None:
    """The single document of ``text`` as a node tree (None when it is empty)."""
    loader = None
    try:
        loader = _SafeComposer(text)  # the reader checks for unprintable characters here
        return loader.get_single_node()
    except yaml.reader.ReaderError as e:
        line = text[: e.position].count("\n") + 1
        raise _Problem(line, "", f"invalid YAML: unacceptable character #x{e.character:04x}") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        if isinstance(e, yaml.composer.ComposerError) and "another document" in (e.problem or ""):
            raise _Problem(line, "", "more than one YAML document; a scenario is one document") from None
        raise _Problem(line, "", f"invalid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise _Problem(1, "", f"invalid YAML: {e}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _one_line(message: str) -> str:
    # YAML error texts and user values may carry control characters; the CLI prints one line.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


@dataclass(frozen=True)
class _Shape:
    """Stands in for a list or mapping where a scalar was expected, so messages can name it."""

    noun: str


def _scalar(node: Node, field: str) -> Any:
    """The Python value of a scalar node; a ``_Shape`` for a list or mapping."""
    if not isinstance(node, ScalarNode):
        expected = _TAG + ("seq" if isinstance(node, SequenceNode) else "map")
        if node.tag != expected:
            raise _Problem(_line(node), field, f"unsupported YAML tag {_short_tag(node.tag)!r}")
        return _Shape("a list" if isinstance(node, SequenceNode) else "a mapping")
    if node.tag not in SafeConstructor.yaml_constructors:
        raise _Problem(_line(node), field, f"unsupported YAML tag {_short_tag(node.tag)!r}")
    try:
        return SafeConstructor().construct_object(node, deep=True)
    except ConstructorError as e:
        raise _Problem(_line(node), field, f"invalid value: {e.problem}") from None
    except (ValueError, OverflowError) as e:  # e.g. a date like 2024-13-45, a 5000-digit int
        raise _Problem(_line(node), field, f"invalid value {_show(node.value)}: {e}") from None


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _describe(value: Any) -> str:
    """How a message names a value the user wrote: ``'4' (a string)``, ``true (a boolean)``."""
    if isinstance(value, _Shape):
        return value.noun
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (int, float)):
        return _show(value)
    if isinstance(value, str):
        return f"{_show(value)} (a string)"
    return f"{_show(str(value))} (a {type(value).__name__})"


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _TAG + "null"


# --------------------------------------------------------------------------- mappings


def _key(node: Node, field: str) -> str:
    if isinstance(node, ScalarNode) and node.tag == _TAG + "str":
        return str(node.value)
    if isinstance(node, ScalarNode) and node.tag == _TAG + "merge":
        raise _Problem(_line(node), field, "merge keys (<<) are not supported; write the keys out")
    got = _scalar(node, field)
    # `on:`, `yes:` and `1:` are not strings in YAML 1.1; quoting them is the fix.
    hint = "" if isinstance(got, _Shape) else " (quote it)"
    raise _Problem(_line(node), field, f"keys must be strings, got {_describe(got)}{hint}")


def _unknown(key: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1) or difflib.get_close_matches(key.lower(), allowed, n=1)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key; expected one of: {', '.join(allowed)}"


def _pairs(node: Node, field: str, allowed: tuple[str, ...] | None) -> dict[str, tuple[Node, Node]]:
    """Key -> (key node, value node) of a mapping; rejects non-string, duplicate, unknown keys."""
    if not isinstance(node, MappingNode) or node.tag != _TAG + "map":
        raise _Problem(_line(node), field, f"must be a mapping, got {_describe(_scalar(node, field))}")
    entries: dict[str, tuple[Node, Node]] = {}
    for key_node, value_node in node.value:
        key = _key(key_node, field)
        path = f"{field}.{key}" if field else key
        if key in entries:
            first = _line(entries[key][0])
            raise _Problem(_line(key_node), path, f"duplicate key (first at line {first})")
        if allowed is not None and key not in allowed:
            raise _Problem(_line(key_node), path, _unknown(key, allowed))
        entries[key] = (key_node, value_node)
    return entries


class _Section:
    """One mapping of the file being read, with its dotted path and a line for its errors.

    ``line`` is where the mapping is introduced (its key's line), so "required field missing"
    points at the parent a field belongs in. An absent or null section reads as all-defaults.
    """

    def __init__(self, node: Node | None, field: str, allowed: tuple[str, ...], line: int) -> None:
        self.field, self.line = field, line
        self.entries = {} if node is None or _is_null(node) else _pairs(node, field, allowed)

    def path(self, key: str) -> str:
        return f"{self.field}.{key}" if self.field else key

    def node(self, key: str) -> Node | None:
        entry = self.entries.get(key)
        return None if entry is None else entry[1]

    def line_of(self, key: str) -> int:
        """Line of the key's value when given, else of the section: where to blame the field."""
        node = self.node(key)
        return self.line if node is None else _line(node)

    def take(self, key: str, read: Callable[[Node, str], T], default: T) -> T:
        node = self.node(key)
        return default if node is None else read(node, self.path(key))

    def need(self, key: str, read: Callable[[Node, str], T]) -> T:
        node = self.node(key)
        if node is None:
            raise _Problem(self.line, self.path(key), "required field missing")
        return read(node, self.path(key))

    def section(self, key: str, allowed: tuple[str, ...]) -> _Section:
        entry = self.entries.get(key)
        line = self.line if entry is None else _line(entry[0])
        return _Section(self.node(key), self.path(key), allowed, line)


# --------------------------------------------------------------------------- readers
# Each reader is (node, dotted field) -> value and raises _Problem at the node's line.


def _int(lo: int, hi: int | None = None) -> Callable[[Node, str], int]:
    noun = {0: "a non-negative integer", 1: "a positive integer"}.get(lo, "an integer")
    bounds = {"minimum": lo} if hi is None else {"minimum": lo, "maximum": hi}

    @_described({"type": "integer", **bounds})
    def read(node: Node, field: str) -> int:
        value = _scalar(node, field)
        # bool is an int in Python, but `workers: true` is a mistake, not 1.
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Problem(_line(node), field, f"must be {noun}, got {_describe(value)}")
        if value < lo:
            low = f"must be {noun}" if lo in (0, 1) else f"must be at least {lo}"
            raise _Problem(_line(node), field, f"{low}, got {value}")
        if hi is not None and value > hi:
            raise _Problem(_line(node), field, f"must be at most {hi}, got {value}")
        return value

    return read


def _number(hi: float) -> Callable[[Node, str], float]:
    """A number > 0 and <= hi (CPU counts)."""

    @_described({"type": "number", "exclusiveMinimum": 0, "maximum": hi})
    def read(node: Node, field: str) -> float:
        value = _scalar(node, field)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise _Problem(_line(node), field, f"must be a number, got {_describe(value)}")
        if value <= 0:
            raise _Problem(_line(node), field, f"must be greater than 0, got {value}")
        if value > hi:
            raise _Problem(_line(node), field, f"must be at most {hi:g}, got {value}")
        return float(value)

    return read


def _choice(options: tuple[str, ...]) -> Callable[[Node, str], str]:
    # YAML 1.1 readers (PyYAML) see a bare `no` as false; read() takes it as "no" too
    @_described({"enum": [*options, *([False] if "no" in options else [])]})
    def read(node: Node, field: str) -> str:
        value = _scalar(node, field)
        # YAML 1.1 reads a bare `no` as false; `restart: no` means Docker's "no" policy.
        if isinstance(value, bool) and isinstance(node, ScalarNode) and node.value.lower() in options:
            return str(node.value.lower())
        if isinstance(value, str) and value in options:
            return value
        close = difflib.get_close_matches(value, options, n=1) if isinstance(value, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise _Problem(_line(node), field, f"must be one of {', '.join(options)}; got {_describe(value)}{hint}")

    return read


def _kind(kinds: type[K]) -> Callable[[Node, str], K]:
    """``_choice`` among the values of ``kinds``, read as the member."""
    choose = _choice(tuple(k.value for k in kinds))

    def read(node: Node, field: str) -> K:
        return kinds(choose(node, field))

    _SCHEMAS[read] = _SCHEMAS[choose]
    return read


@_described({"type": "string"})
def _string(node: Node, field: str) -> str:
    value = _scalar(node, field)
    if not isinstance(value, str):
        hint = "" if value is None or isinstance(value, _Shape) else " (quote it)"
        raise _Problem(_line(node), field, f"must be a string, got {_describe(value)}{hint}")
    return value


def _format_size(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", MiB), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.4g} {unit}"
    return f"{size} bytes"


_SIZE_SCHEMA = {"type": ["integer", "string"], "pattern": r"^\s*(\d+(\.\d*)?|\.\d+)\s*([kKmMgGtT][iI]?[bB]?|[bB])?\s*$"}


def _size(minimum: int) -> Callable[[Node, str], int]:
    @_described({**_SIZE_SCHEMA, "minimum": minimum})
    def read(node: Node, field: str) -> int:
        value = _scalar(node, field)
        try:
            size = parse_size(value)
        except ValueError as e:
            raise _Problem(_line(node), field, str(e)) from None
        if size < minimum:
            raise _Problem(_line(node), field, f"must be at least {_format_size(minimum)}, got {_format_size(size)}")
        return size

    return read


_DURATION_SCHEMA = {"type": ["number", "string"], "pattern": r"^\s*(\d+(\.\d*)?|\.\d+)\s*([mM][sS]|[sSmMhH])?\s*$"}


def _duration(maximum: float) -> Callable[[Node, str], float]:
    """A duration > 0 and <= maximum seconds."""

    @_described({**_DURATION_SCHEMA, "exclusiveMinimum": 0, "maximum": maximum})
    def read(node: Node, field: str) -> float:
        value = _scalar(node, field)
        try:
            seconds = parse_duration(value)
        except ValueError as e:
            raise _Problem(_line(node), field, str(e)) from None
        if seconds <= 0:
            raise _Problem(_line(node), field, f"must be longer than 0s, got {_describe(value)}")
        if seconds > maximum:
            raise _Problem(_line(node), field, f"must be at most {maximum:g}s, got {_describe(value)}")
        return seconds

    return read


@_described({"type": "string", "pattern": f"^{_NAME_RE.pattern}$"})
def _name(node: Node, field: str) -> str:
    value = _string(node, field)
    if not _NAME_RE.fullmatch(value):
        # The name ends up in container and network names, which Docker restricts.
        rule = "must be 1-40 letters, digits, '-' or '_', starting with a letter or digit"
        raise _Problem(_line(node), field, f"{rule}; got {_show(value)}")
    return value


@_described({"type": "string", "anyOf": [
    {"enum": list(BUILTIN_TASKS)},
    {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"}]})
def _task(node: Node, field: str) -> str:
    value = _string(node, field)
    module, colon, function = value.partition(":")
    parts = [*module.split("."), function]
    if value in BUILTIN_TASKS or (colon and all(p.isidentifier() and not keyword.iskeyword(p) for p in parts)):
        return value
    close = difflib.get_close_matches(value, BUILTIN_TASKS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    rule = f"must be a built-in task ({', '.join(BUILTIN_TASKS)}) or 'package.module:function'"
    raise _Problem(_line(node), field, f"{rule}, got {_show(value)}{hint}")


def _folder(base_dir: Path) -> Callable[[Node, str], str | None]:
    return _existing(base_dir, "folder", Path.is_dir)


def _file(base_dir: Path) -> Callable[[Node, str], str | None]:
    return _existing(base_dir, "file", Path.is_file)


_PATH_SCHEMA = {"type": ["string", "null"], "minLength": 1}


def _existing(base_dir: Path, noun: str, exists: Callable[[Path], bool]) -> Callable[[Node, str], str | None]:
    """A path relative to the scenario's folder, resolved, that must exist as a ``noun``."""

    def read(node: Node, field: str) -> str | None:
        value = _scalar(node, field)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise _Problem(_line(node), field, f"must be the path of a {noun}, got {_describe(value)}")
        try:
            path = (base_dir / Path(value).expanduser()).resolve()
            found = exists(path)
        except (OSError, ValueError, RuntimeError):  # NUL bytes, names too long, no home dir
            found = False
        if not found:
            raise _Problem(_line(node), field, f"no such {noun}: {_show(value)} (relative to {base_dir})")
        return str(path)

    return read


def _data_folder(base_dir: Path) -> Callable[[Node, str], str | None]:
    """A folder that exists and that the containers' user can read all of (it is mounted
    as it is: bind mounts keep the host's owners and modes)."""
    folder = _folder(base_dir)

    def read(node: Node, field: str) -> str | None:
        path = folder(node, field)
        if path is not None:
            blocked = unreadable(Path(path))
            if blocked is not None:
                # whole paths (up to a sane length): the user copies the command
                message = (f"{_show(str(blocked), 400)} is not readable by the containers' user "
                           f"(uid {CONTAINER_UID}); allow it with: chmod -R o+rX {_show(path, 400)}")
                raise _Problem(_line(node), field, message)
        return path

    return read


def unreadable(folder: Path, uid: int = CONTAINER_UID, gid: int = CONTAINER_UID) -> Path | None:
    """The first file or folder under ``folder`` (itself included) that ``uid:gid`` cannot
    read (a folder: list and enter), judged by its owner, group and mode bits; None if all
    can be read. The folder's parents do not matter: the engine mounts it as root."""
    paths = [folder]
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        paths += [Path(root, name) for name in (*dirs, *sorted(files))]
    for path in paths:
        try:
            st = path.stat()
        except OSError:  # a dangling link, or a folder even this process may not enter
            return path
        need = 0o5 if stat.S_ISDIR(st.st_mode) else 0o4
        shift = 6 if st.st_uid == uid else 3 if st.st_gid == gid else 0
        if (st.st_mode >> shift) & need != need:
            return path
    return None


@_described({"type": "boolean"})
def _bool(node: Node, field: str) -> bool:
    value = _scalar(node, field)
    if not isinstance(value, bool):
        raise _Problem(_line(node), field, f"must be true or false, got {_describe(value)}")
    return value


@_described({"type": ["string", "null"], "pattern": f"^{_IMAGE_RE.pattern}$"})
def _image(node: Node, field: str) -> str | None:
    value = _scalar(node, field)
    if value is None:
        return None
    text = _string(node, field)
    if not _IMAGE_RE.fullmatch(text):
        rule = "must be a Docker image reference such as team/etl:1.4 or registry:5000/etl@sha256:..."
        raise _Problem(_line(node), field, f"{rule}; got {_show(text)}")
    return text


def _json_like(node: Node, field: str) -> Any:
    """Params go to every task as keyword arguments and into result files: keep them JSON."""
    if isinstance(node, MappingNode) and node.tag == _TAG + "map":
        pairs = _pairs(node, field, None)
        return {key: _json_like(value, f"{field}.{key}") for key, (_, value) in pairs.items()}
    if isinstance(node, SequenceNode) and node.tag == _TAG + "seq":
        return [_json_like(item, f"{field}[{i}]") for i, item in enumerate(node.value)]
    value = _scalar(node, field)
    if value is None or isinstance(value, (str, int)) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise _Problem(
        _line(node), field, f"must be a string, finite number, boolean, null, list or mapping; got {_describe(value)}"
    )


@_described({"type": ["object", "null"]})
def _params(node: Node, field: str) -> dict[str, Any]:
    if _is_null(node):
        return {}
    value = _json_like(node, field)
    if not isinstance(value, dict):
        raise _Problem(_line(node), field, f"must be a mapping of keyword arguments, got {_describe(value)}")
    return value


@_described({"anyOf": [{"type": "null"}, {"const": "auto"},
                        {"type": "integer", "minimum": 1, "maximum": 256}]})
def _processes(node: Node, field: str) -> int | str | None:
    value = _scalar(node, field)
    if value is None or value == "auto":
        return value  # type: ignore[no-any-return]
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 256:
        return value
    raise _Problem(_line(node), field, f'must be null, "auto" or an integer from 1 to 256, got {_describe(value)}')


@_described({"type": ["string", "integer", "null"],
             "pattern": r"^\d{1,4}(-\d{1,4})?(,\d{1,4}(-\d{1,4})?)*$"})
def _cpuset(node: Node, field: str) -> str | None:
    value = _scalar(node, field)
    if value is None:
        return None
    # `cpuset: 3` reads as an int; a single CPU number is a fine cpuset, so take its text.
    text = str(node.value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(text, str):
        ranges = [_CPUSET_RE.fullmatch(part) for part in text.split(",")]
        if all(m is not None and (m[2] is None or int(m[1]) <= int(m[2])) for m in ranges):
            return text
    raise _Problem(_line(node), field, f'must be null or CPUs such as "0-1" or "0,2", got {_describe(value)}')


@_described({"type": ["string", "number"], "minimum": 0, "pattern":
             r"^\s*((\d+(\.\d*)?|\.\d+)\s*%|(\d+(\.\d*)?|\.\d+)\s*([mM][sS]|[sSmMhH])?)\s*$"})
def _at(node: Node, field: str) -> tuple[float | None, float | None]:
    """(at_fraction, at_seconds) of a fault's ``at``: "30%" of tasks done, or "5s" since start."""
    value = _scalar(node, field)
    if isinstance(value, str) and value.strip().endswith("%"):
        match = _PERCENT_RE.fullmatch(value.strip())
        percent = float(match[1]) if match else -1.0
        if not 0 < percent < 100:
            message = f"a percentage must be between 0% and 100%, both excluded; got {_show(value)}"
            raise _Problem(_line(node), field, message)
        return percent / 100, None
    try:
        return None, parse_duration(value)
    except ValueError:
        rule = 'must be a share of tasks completed such as "30%" or a time since start such as "5s"'
        message = f"{rule}, got {_describe(value)}"
        raise _Problem(_line(node), field, message) from None


# --------------------------------------------------------------------------- sections

@dataclass(frozen=True)
class Field:
    """One key of the scenario format: how its value is read (``read``; None for a path,
    which the section reads against the file's folder), its default (REQUIRED when it has
    none), what it means, and for a section its own fields (``many``: a list of them)."""

    read: Callable[[Node, str], Any] | None = None
    default: Any = None
    help: str = ""
    fields: dict[str, Field] | None = None
    many: bool = False


REQUIRED: Any = object()


def _model_default(cls: type, name: str) -> Any:
    """The default the model's dataclass gives ``name``: a scenario default is written once,
    where the value lives, and the format's field table (and so the schema) reads it."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    assert f.default is not dataclasses.MISSING, f"{cls.__name__}.{name} has no default"
    return f.default

# The format's field tables: the validator reads each key through them and ``schema()``
# writes the JSON Schema from them. A new field is one line here (and its use below).
_WORKLOAD = {
    "task": Field(_task, REQUIRED, "A built-in task or package.module:function."),
    "path": Field(None, None, "Folder holding the task's package, relative to this file."),
    "tasks": Field(_int(1, 1_000_000), 100, "How many tasks each run does."),
    "params": Field(_params, _model_default(Workload, "params"), "Keyword arguments every task receives."),
    "seed": Field(_int(0, MAX_SEED), _model_default(Workload, "seed"), "Seed of the task parameters' random draws."),
    "requirements": Field(None, None, "A requirements file, installed from wheels."),
    "image": Field(_image, None, "Your own image to run the workers in."),
    "data": Field(None, None, "A folder mounted read-only in every worker."),
}
_RESOURCES = {
    "cpus": Field(_number(MAX_CPUS), 1.0, "CPUs of the whole budget, shared by the workers."),
    "memory": Field(_size(MIN_WORKER_MEMORY), 1024 * MiB, "Memory of the whole budget."),
    "cpuset": Field(_cpuset, _model_default(Resources, "cpuset"), 'Host CPUs to run on, e.g. "0-1".'),
}
_SINGLE = {
    "pool": Field(_kind(PoolKind), _model_default(SingleSpec, "pool"), "How the one container runs N workers."),
    "processes": Field(_processes, _model_default(SingleSpec, "processes"), 'Pool size: null (= workers), "auto" or a number.'),
    "preload": Field(_bool, _model_default(SingleSpec, "preload"), "Import the task before forking the workers."),
    "restart": Field(_choice(RESTART_POLICIES), _model_default(SingleSpec, "restart"), "Docker's restart policy of the container."),
}
_REDIS = {
    "cpus": Field(_number(MAX_CPUS), _model_default(RedisSpec, "cpus"), "Redis's CPUs, outside the workers' budget."),
    "memory": Field(_size(MIN_REDIS_MEMORY), _model_default(RedisSpec, "memory"), "Redis's memory."),
    "appendonly": Field(_choice(APPENDONLY), _model_default(RedisSpec, "appendonly"), "Redis's appendfsync."),
}
_MULTI = {
    "queue": Field(_kind(QueueKind), _model_default(MultiSpec, "queue"), "How workers take tasks."),
    "prefetch": Field(_int(1, 10_000), _model_default(MultiSpec, "prefetch"), "Tasks a worker takes at once."),
    "restart": Field(_choice(RESTART_POLICIES), _model_default(MultiSpec, "restart"), "Docker's restart policy."),
    "redis": Field(fields=_REDIS, help="The queue's Redis."),
    "acks_late": Field(_bool, _model_default(MultiSpec, "acks_late"), "queue celery: acknowledge after the task ran."),
    "visibility_timeout": Field(_duration(MAX_TIMEOUT), _model_default(MultiSpec, "visibility_timeout"),
                                "queue celery: seconds before an unacknowledged task comes back."),
}
_TOPOLOGY = {
    "single": Field(fields=_SINGLE, help="One container with N worker processes."),
    "multi": Field(fields=_MULTI, help="N single-process containers fed by Redis."),
}
_FAULT = {
    "name": Field(_string, REQUIRED, "Unique name of the fault."),
    "kind": Field(_kind(FaultKind), REQUIRED, "What happens."),
    "at": Field(_at, REQUIRED, 'When: "30%" of tasks done or "5s" after the start.'),
    "duration": Field(_duration(MAX_TIMEOUT), _model_default(Fault, "duration"), "How long a pause or partition lasts."),
}
_RUN = {
    "repeat": Field(_int(1, 100), _model_default(RunSpec, "repeat"), "Measured runs per topology."),
    "warmup": Field(_int(0, 10), _model_default(RunSpec, "warmup"), "Runs per topology made first and not counted."),
    "timeout": Field(_duration(MAX_TIMEOUT), _model_default(RunSpec, "timeout"), "Longest a run may take."),
}
FIELDS = {
    "version": Field(_int(1), 1, "Format version; 1."),
    "name": Field(_name, REQUIRED, "Names the containers and results."),
    "description": Field(_string, "", "Free text."),
    "workload": Field(default=REQUIRED, fields=_WORKLOAD, help="What each task does and how many."),
    "workers": Field(_int(1, 64), REQUIRED, "N: worker processes or containers."),
    "resources": Field(fields=_RESOURCES, help="The budget both topologies share."),
    "topologies": Field(fields=_TOPOLOGY, help="Which topologies run (default: both)."),
    "faults": Field(fields=_FAULT, many=True, help="Faults injected in their own runs."),
    "run": Field(fields=_RUN, help="Repeats and limits."),
}
_TOP_KEYS = tuple(FIELDS)
_WORKLOAD_KEYS = tuple(_WORKLOAD)
_RESOURCES_KEYS = tuple(_RESOURCES)
_TOPOLOGY_KEYS = tuple(_TOPOLOGY)
_SINGLE_KEYS = tuple(_SINGLE)
_MULTI_KEYS = tuple(_MULTI)
_REDIS_KEYS = tuple(_REDIS)
_FAULT_KEYS = tuple(_FAULT)
_RUN_KEYS = tuple(_RUN)
_TIMED_FAULTS = (FaultKind.PAUSE, FaultKind.PARTITION)
_MULTI_ONLY_FAULTS = (FaultKind.KILL_REDIS, FaultKind.PARTITION)  # nothing to act on in a single container


SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"


def schema_text() -> str:
    """``schema()`` as the text of topo/schema/scenario.schema.json."""
    import json

    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


def schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file, from the same field tables the validator reads.

    It checks each field's type, range and choices (for editors: completion and errors as
    you type); rules across fields (a fault kind that needs multi, memory per worker) are
    the validator's alone, so a file the schema accepts may still fail ``topo validate``.
    """
    return {"$schema": SCHEMA_URI, "title": "topo scenario",
            "description": "A topo scenario (docs/scenario-format.md).", **_object(FIELDS)}


def _object(table: dict[str, Field]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object", "additionalProperties": False,
        "properties": {key: _property(f) for key, f in table.items()},
    }
    required = [key for key, f in table.items() if f.default is REQUIRED]
    return {**out, "required": required} if required else out


def _property(f: Field) -> dict[str, Any]:
    if f.fields is not None:
        body = _object(f.fields)
        # an absent or null section reads as all defaults, unless it has required fields
        nullable = "required" not in body
        body = ({"type": ["array", "null"], "items": body} if f.many
                else {**body, "type": ["object", "null"] if nullable else "object"})
    else:
        body = dict(_SCHEMAS[f.read] if f.read is not None else _PATH_SCHEMA)
        if f.default is not REQUIRED:
            body["default"] = f.default
    return {"description": f.help, **body}


def _get(s: _Section, table: dict[str, Field], key: str) -> Any:
    """The value of ``key`` read as its field says (its default when absent)."""
    f = table[key]
    assert f.read is not None, key  # paths are read against the file's folder
    return s.need(key, f.read) if f.default is REQUIRED else s.take(key, f.read, f.default)


def _scenario(root: Node | None, base_dir: Path) -> Scenario:
    if root is None or _is_null(root):
        raise _Problem(1, "", "the file is empty; a scenario needs at least name, workload.task and workers")
    if not isinstance(root, MappingNode) or root.tag != _TAG + "map":
        got = _describe(_scalar(root, ""))
        raise _Problem(_line(root), "", f"the top level must be a mapping of fields, got {got}")
    top = _Section(root, "", _TOP_KEYS, _line(root))
    version = _get(top, FIELDS, "version")
    if version != 1:
        raise _Problem(top.line_of("version"), "version", f"unsupported version {version}; this topo reads version 1")
    name = _get(top, FIELDS, "name")
    description = _get(top, FIELDS, "description")
    workload = _workload(top.section("workload", _WORKLOAD_KEYS), base_dir)
    workers = _get(top, FIELDS, "workers")
    single, multi = _topologies(top)
    run = _run(top.section("run", _RUN_KEYS))
    return Scenario(
        name=name,
        description=description,
        workload=workload,
        workers=workers,
        resources=_resources(top.section("resources", _RESOURCES_KEYS), workers, multi is not None),
        single=single,
        multi=multi,
        faults=_faults(top, multi is not None, run.timeout),
        run=run,
        version=version,
    )


def _workload(s: _Section, base_dir: Path) -> Workload:
    return Workload(
        task=_get(s, _WORKLOAD, "task"),
        tasks=_get(s, _WORKLOAD, "tasks"),
        params=_get(s, _WORKLOAD, "params"),
        seed=_get(s, _WORKLOAD, "seed"),
        path=s.take("path", _folder(base_dir), None),
        data=s.take("data", _data_folder(base_dir), None),
        requirements=s.take("requirements", _file(base_dir), None),
        image=_get(s, _WORKLOAD, "image"),
    )


def _resources(s: _Section, workers: int, multi: bool) -> Resources:
    cpus, memory, cpuset = (_get(s, _RESOURCES, key) for key in _RESOURCES)
    if memory // workers < MIN_WORKER_MEMORY:
        share = _format_size(memory // workers)
        message = f"{_format_size(memory)} for {workers} workers is {share} each; each needs at least 6 MiB"
        raise _Problem(s.line_of("memory"), s.path("memory"), message)
    # The tolerance keeps e.g. 0.64 CPUs / 64 workers from failing on float rounding.
    if multi and cpus / workers < MIN_WORKER_CPUS - 1e-9:
        share = f"{cpus:g} CPUs for {workers} worker containers is {cpus / workers:.3g} each"
        message = f"{share}; Docker needs at least {MIN_WORKER_CPUS}"
        raise _Problem(s.line_of("cpus"), s.path("cpus"), message)
    return Resources(cpus=cpus, memory=memory, cpuset=cpuset)


def _topologies(top: _Section) -> tuple[SingleSpec | None, MultiSpec | None]:
    """Both topologies by default; when ``topologies`` is given, only the ones it lists."""
    if top.node("topologies") is None:
        return SingleSpec(), MultiSpec()
    s = top.section("topologies", _TOPOLOGY_KEYS)
    single = _single(s.section("single", _SINGLE_KEYS)) if "single" in s.entries else None
    multi = _multi(s.section("multi", _MULTI_KEYS)) if "multi" in s.entries else None
    if single is None and multi is None:
        raise _Problem(s.line, "topologies", "must list at least one of single, multi (or leave the key out for both)")
    return single, multi


def _single(s: _Section) -> SingleSpec:
    spec = SingleSpec(**{key: _get(s, _SINGLE, key) for key in _SINGLE})
    if spec.pool == PoolKind.CELERY_PREFORK and spec.preload:
        # Celery's worker imports the task module before it forks its pool, always.
        raise _Problem(s.line_of("preload"), s.path("preload"),
                       "celery-prefork always imports the task module before forking; leave preload out")
    return spec


def _multi(s: _Section) -> MultiSpec:
    redis = s.section("redis", _REDIS_KEYS)
    queue = _get(s, _MULTI, "queue")
    for key in ("acks_late", "visibility_timeout"):
        if queue != QueueKind.CELERY and s.node(key) is not None:
            raise _Problem(s.line_of(key), s.path(key), f"applies to queue: celery only (queue is {queue})")
    return MultiSpec(
        queue=queue,
        prefetch=_get(s, _MULTI, "prefetch"),
        restart=_get(s, _MULTI, "restart"),
        acks_late=_get(s, _MULTI, "acks_late"),
        visibility_timeout=_get(s, _MULTI, "visibility_timeout"),
        redis=RedisSpec(**{key: _get(redis, _REDIS, key) for key in _REDIS}),
    )


def _run(s: _Section) -> RunSpec:
    return RunSpec(**{key: _get(s, _RUN, key) for key in _RUN})


def _faults(top: _Section, multi: bool, timeout: float) -> tuple[Fault, ...]:
    node = top.node("faults")
    if node is None or _is_null(node):
        return ()
    if not isinstance(node, SequenceNode) or node.tag != _TAG + "seq":
        raise _Problem(_line(node), "faults", f"must be a list of faults, got {_describe(_scalar(node, 'faults'))}")
    faults: list[Fault] = []
    first_line: dict[str, int] = {}
    for i, item in enumerate(node.value):
        s = _Section(item, f"faults[{i}]", _FAULT_KEYS, _line(item))
        fault = _fault(s, multi, timeout)
        if fault.name in first_line:
            message = f"duplicate fault name {_show(fault.name)} (first at line {first_line[fault.name]})"
            raise _Problem(s.line_of("name"), s.path("name"), message)
        first_line[fault.name] = s.line_of("name")
        faults.append(fault)
    return tuple(faults)


def _fault(s: _Section, multi: bool, timeout: float) -> Fault:
    name = _get(s, _FAULT, "name")
    if not name.strip():
        raise _Problem(s.line_of("name"), s.path("name"), "must not be empty")
    kind = _get(s, _FAULT, "kind")
    at_fraction, at_seconds = _get(s, _FAULT, "at")
    duration = _get(s, _FAULT, "duration")
    if kind in _TIMED_FAULTS and duration is None:
        raise _Problem(s.line, s.path("duration"), f"required for a {kind} fault (how long it lasts)")
    if kind not in _TIMED_FAULTS:
        duration = None  # the format's own example gives one to kill-worker: it has no effect
    if kind == FaultKind.OOM and at_fraction is None:
        message = "an oom fault takes a percentage of tasks (its poison task is picked by its place in the batch)"
        raise _Problem(s.line_of("at"), s.path("at"), message)
    if kind in _MULTI_ONLY_FAULTS and not multi:
        message = f"{kind} applies to the multi topology only, and this scenario does not run it"
        raise _Problem(s.line_of("kind"), s.path("kind"), message)
    if at_seconds is not None and at_seconds >= timeout:
        message = f"{at_seconds:g}s is not before run.timeout ({timeout:g}s), so the fault would never fire"
        raise _Problem(s.line_of("at"), s.path("at"), message)
    return Fault(name=name, kind=kind, at_fraction=at_fraction, at_seconds=at_seconds, duration=duration)
