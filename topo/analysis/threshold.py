"""``topo diff --fail-if`` expressions: small, unit-aware and never ``eval``-ed.

An expression such as ``b.multi.throughput < 0.9 * a.multi.throughput`` or
``multi.service_p95 > 50ms`` is parsed with ``ast`` and evaluated by walking the tree.
Allowed: ``a.<topology>.<figure>`` (the baseline's median), ``b.<topology>.<figure>`` and
plain ``<topology>.<figure>`` (the compared result B's median), numbers, numbers with a unit
(``50ms``, ``2s``, ``1.5GB``, ``512MiB``, ``90%``), ``+ - * /``, unary minus, comparisons
(chained too) and ``and`` / ``or``.

Units are checked: a time compares with a time, a size with a size. A bare number next to a
figure is in the unit the figure's table row shows (ms for latencies, MiB for memory), so
expressions written before units existed keep their meaning. Messages show each figure in
the unit the user wrote for its kind, else in its row's unit.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from topo.model import TOPOLOGIES, Scenario, Spread
from topo.report.cells import numbers


class FigureRow(Protocol):
    """What a diff and a threshold read of one row of a report."""

    @property
    def key(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def unit(self) -> str: ...
    @property
    def single(self) -> Spread | None: ...
    @property
    def multi(self) -> Spread | None: ...
    @property
    def higher_is_better(self) -> bool | None: ...


class Figures(Protocol):
    """A ``topo.report.model.Report``, or the ``Comparison`` it is built from."""

    @property
    def scenario(self) -> Scenario: ...
    @property
    def rows(self) -> Sequence[FigureRow]: ...

SIDES = ("a", "b")

# written unit -> (kind, factor to the kind's base unit: seconds, bytes, percent)
UNITS: Mapping[str, tuple[str, float]] = {
    "us": ("time", 1e-6), "µs": ("time", 1e-6), "ms": ("time", 1e-3), "s": ("time", 1.0),
    "min": ("time", 60.0), "h": ("time", 3600.0),
    "B": ("size", 1.0), "KB": ("size", 1e3), "MB": ("size", 1e6), "GB": ("size", 1e9),
    "TB": ("size", 1e12), "KiB": ("size", 2.0**10), "MiB": ("size", 2.0**20),
    "GiB": ("size", 2.0**30), "TiB": ("size", 2.0**40),
    "%": ("percent", 1.0),
}
# A number directly followed by a unit; longest units first so "ms" is not read as "m" + "s".
_UNIT_NAMES = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))
_QUANTITY_RE = re.compile(
    rf"(?<![\w.])((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*({_UNIT_NAMES})(?![\w.])")
_PLACEHOLDER = "_q{}_"

_BINARY: Mapping[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_COMPARE: Mapping[type, Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.Compare, ast.BinOp, ast.UnaryOp,
            ast.USub, ast.UAdd, ast.Constant, ast.Attribute, ast.Name, ast.Load,
            *_BINARY, *_COMPARE)


class ThresholdError(ValueError):
    """The expression is not one ``--fail-if`` accepts; the message says why."""


@dataclass(frozen=True)
class Name:
    """A figure an expression names: ``side`` is "a" or "b"; ``text`` as the user wrote it."""

    side: str
    topology: str
    figure: str
    text: str


@dataclass(frozen=True)
class Threshold:
    text: str
    tree: ast.Expression
    quantities: tuple[tuple[float, str], ...]  # (number, unit) of each placeholder _q<i>_

    @property
    def names(self) -> tuple[Name, ...]:
        """Every figure the expression uses, in order of appearance."""
        found = [_name(n) for n in ast.walk(self.tree) if isinstance(n, ast.Attribute)]
        return tuple(n for n in found if n is not None)

    def unit_for(self, kind: str) -> str | None:
        """The first unit the user wrote for ``kind`` (time, size, percent)."""
        return next((u for _, u in self.quantities if UNITS[u][0] == kind), None)


def parse_threshold(text: str) -> Threshold:
    """Check ``text`` is an allowed expression; ThresholdError naming what is not."""
    quantities: list[tuple[float, str]] = []

    def placeholder(match: re.Match[str]) -> str:
        quantities.append((float(match[1]), match[2]))
        return _PLACEHOLDER.format(len(quantities) - 1)

    source = _QUANTITY_RE.sub(placeholder, text.strip())
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as e:
        raise ThresholdError(f"{text!r} is not an expression: {e.msg}") from e
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        _check(node, text, len(quantities))
        if isinstance(node, ast.Attribute) and id(node) not in inner and _name(node) is None:
            raise ThresholdError(f"{text!r}: names are [a.|b.]single.<figure> or"
                                 " [a.|b.]multi.<figure>")
        if isinstance(node, ast.Name) and id(node) not in inner and not _is_placeholder(node.id):
            raise ThresholdError(f"{text!r}: {node.id!r} alone is no figure; use"
                                 f" {node.id}.<figure>" if node.id in TOPOLOGIES else
                                 f"{text!r}: unknown name {node.id!r}")
    threshold = Threshold(text.strip(), tree, tuple(quantities))
    for name in threshold.names:
        if name.topology not in TOPOLOGIES:
            raise ThresholdError(f"{text!r}: {name.text!r}: names are [a.|b.]single.<figure>"
                                 " or [a.|b.]multi.<figure>")
    return threshold


def _is_placeholder(identifier: str) -> bool:
    return re.fullmatch(r"_q\d+_", identifier) is not None


def _check(node: ast.AST, text: str, placeholders: int) -> None:
    if not isinstance(node, _ALLOWED):
        raise ThresholdError(f"{text!r}: {type(node).__name__} is not allowed in a threshold")
    if isinstance(node, ast.Constant) and (
        isinstance(node.value, bool) or not isinstance(node.value, (int, float))
    ):
        raise ThresholdError(f"{text!r}: only numbers may appear as constants")
    if isinstance(node, ast.Attribute) and _name(node) is None and not _is_prefix(node):
        raise ThresholdError(f"{text!r}: names are [a.|b.]single.<figure> or"
                             " [a.|b.]multi.<figure>")
    if isinstance(node, ast.Name) and not (
        node.id in (*TOPOLOGIES, *SIDES)
        or (_is_placeholder(node.id) and int(node.id[2:-1]) < placeholders)
    ):
        raise ThresholdError(f"{text!r}: unknown name {node.id!r}; use [a.|b.]single.<figure>"
                             " or [a.|b.]multi.<figure>, and units right after numbers")


def _is_prefix(node: ast.Attribute) -> bool:
    """``b.multi`` inside ``b.multi.throughput``: checked as part of the whole name."""
    return isinstance(node.value, ast.Name) and node.value.id in SIDES


def _name(node: ast.Attribute) -> Name | None:
    """The figure an attribute names, or None when it is a prefix (``b.multi``) or invalid."""
    inner = node.value
    if isinstance(inner, ast.Name) and inner.id in TOPOLOGIES:
        return Name("b", inner.id, node.attr, f"{inner.id}.{node.attr}")
    if (isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Name)
            and inner.value.id in SIDES):
        side = inner.value.id
        return Name(side, inner.attr, node.attr, f"{side}.{inner.attr}.{node.attr}")
    return None


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class _Quantity:
    """A value in its kind's base unit; ``kind`` None for a bare number. ``unit`` is how a
    bare number next to it is read (the figure's row unit, or the unit written)."""

    value: float
    kind: str | None
    unit: str | None


class _Unmeasured(Exception):
    pass


def row_unit(unit: str) -> tuple[str, float]:
    """(kind, factor to base) of a figure row's unit; "tasks", "cores"... are their own kind."""
    return UNITS.get(unit, (unit, 1.0))


def failure(threshold: Threshold, b: Figures, a: Figures | None = None) -> str | None:
    """Why the results fail the threshold (its expression is true, as in ``--fail-if``), or
    None when they pass. ``b`` is the compared result, ``a`` the baseline (needed when the
    expression names ``a.``). An unmeasured figure fails it; an unknown figure or units that
    do not go together are a ThresholdError."""
    figures = _figures(threshold, {"a": a, "b": b})
    try:
        true = _truth(_value(threshold.tree.body, threshold, figures))
    except _Unmeasured as e:
        return f"{threshold.text}: {e} was not measured"
    except ZeroDivisionError:
        return f"{threshold.text}: division by zero"
    if not true:
        return None
    shown = ", ".join(f"{n.text} = {_show(n, s, unit, threshold)}"
                      for n, (s, unit) in figures.items() if s is not None)
    return f"{threshold.text} ({shown})"


def _figures(threshold: Threshold, sides: Mapping[str, Figures | None]
             ) -> dict[Name, tuple[Spread | None, str]]:
    """Each named figure's spread and row unit; ThresholdError for what does not exist."""
    found: dict[Name, tuple[Spread | None, str]] = {}
    for name in threshold.names:
        comparison = sides[name.side]
        if comparison is None:
            raise ThresholdError(f"{threshold.text!r}: {name.text} needs a baseline result A")
        rows = {row.key: row for row in comparison.rows}
        if name.figure not in rows:
            raise ThresholdError(f"{threshold.text!r}: no figure {name.figure!r}; figures:"
                                 f" {', '.join(rows)}")
        row = rows[name.figure]
        found[name] = (getattr(row, name.topology), row.unit)
    return found


def _show(name: Name, spread: Spread, unit: str, threshold: Threshold) -> str:
    """The median with its unit: the one the user wrote for this kind, else the row's."""
    kind, factor = row_unit(unit)
    wanted = threshold.unit_for(kind)
    if wanted is None or wanted == unit:
        return f"{numbers(spread.median)[0]} {unit}".rstrip()
    value = spread.median * factor / UNITS[wanted][1]
    return f"{numbers(value)[0]} {wanted} ({numbers(spread.median)[0]} {unit})"


def _value(node: ast.AST, threshold: Threshold,
           figures: Mapping[Name, tuple[Spread | None, str]]) -> Any:
    if isinstance(node, ast.Constant):
        return _Quantity(float(node.value), None, None)  # type: ignore[arg-type]  # a number: _check
    if isinstance(node, ast.Name):  # a placeholder: a number with its unit
        number, unit = threshold.quantities[int(node.id[2:-1])]
        kind, factor = UNITS[unit]
        return _Quantity(number * factor, kind, unit)
    if isinstance(node, ast.Attribute):
        name = _name(node)
        assert name is not None  # parse_threshold refused anything else
        spread, unit = figures[name]
        if spread is None or not math.isfinite(spread.median):
            raise _Unmeasured(name.text)
        kind, factor = row_unit(unit)
        return _Quantity(spread.median * factor, kind, unit)
    if isinstance(node, ast.UnaryOp):
        q = _value(node.operand, threshold, figures)
        return _Quantity(-q.value if isinstance(node.op, ast.USub) else q.value, q.kind, q.unit)
    if isinstance(node, ast.BinOp):
        left = _value(node.left, threshold, figures)
        right = _value(node.right, threshold, figures)
        return _arithmetic(node.op, left, right, threshold.text)
    if isinstance(node, ast.BoolOp):
        results = (_truth(_value(v, threshold, figures)) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.Compare):
        return _compare(node, threshold, figures)
    raise ThresholdError(f"{type(node).__name__} is not allowed in a threshold")


def _truth(value: Any) -> bool:
    return value.value != 0 if isinstance(value, _Quantity) else bool(value)


def _compare(node: ast.Compare, threshold: Threshold,
             figures: Mapping[Name, tuple[Spread | None, str]]) -> bool:
    left = _value(node.left, threshold, figures)
    for op, right_node in zip(node.ops, node.comparators):
        right = _value(right_node, threshold, figures)
        x, y = _together(left, right, threshold.text)
        if not _COMPARE[type(op)](x.value, y.value):
            return False
        left = right
    return True


def _arithmetic(op: ast.operator, left: _Quantity, right: _Quantity, text: str) -> _Quantity:
    if isinstance(op, (ast.Add, ast.Sub)):
        x, y = _together(left, right, text)
        return _Quantity(_BINARY[type(op)](x.value, y.value), x.kind, x.unit)
    if isinstance(op, ast.Mult):
        if left.kind is not None and right.kind is not None:
            raise ThresholdError(f"{text!r}: cannot multiply a {left.kind} by a {right.kind}")
        kept = left if left.kind is not None else right
        return _Quantity(left.value * right.value, kept.kind, kept.unit)
    # division: a figure / a number keeps its kind; two of a kind make a plain ratio
    if right.kind is None:
        return _Quantity(left.value / right.value, left.kind, left.unit)
    x, y = _together(left, right, text)
    return _Quantity(x.value / y.value, None, None)


def _together(x: _Quantity, y: _Quantity, text: str) -> tuple[_Quantity, _Quantity]:
    """x and y in the same base unit; a bare number takes the unit of the other side."""
    if x.kind is None and y.kind is not None:
        return _bare_as(x, y), y
    if y.kind is None and x.kind is not None:
        return x, _bare_as(y, x)
    if x.kind != y.kind:
        raise ThresholdError(f"{text!r}: cannot compare a {x.kind} ({x.unit}) with a"
                             f" {y.kind} ({y.unit})")
    return x, y


def _bare_as(bare: _Quantity, other: _Quantity) -> _Quantity:
    factor = row_unit(other.unit)[1] if other.unit else 1.0
    return _Quantity(bare.value * factor, other.kind, other.unit)
