"""Two saved reports, figure by figure, and ``--fail-if`` thresholds for CI.

A change is a regression when a figure with a direction moved the worse way by more than
TOLERANCE (10%) of its value in A. Thresholds are small expressions over the figures of
the compared result B, such as ``multi.throughput < 0.9 * single.throughput``; they are
parsed with ``ast`` and evaluated by walking the tree, never with ``eval``. Allowed:
``single.<figure>`` and ``multi.<figure>`` (the median of that figure), numbers,
``+ - * /``, unary minus, comparisons (chained too) and ``and`` / ``or``.

Both sides are anything with ``rows`` (key, label, single, multi, higher_is_better) and a
``scenario``: a ``topo.report.model.Report``, or the ``Comparison`` it is built from.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from topo.model import TOPOLOGIES, Scenario, Spread
from topo.report.cells import INCOMPLETE, numbers
from topo.report.model import TOLERANCE, Change, Diff


class _Row(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def single(self) -> Spread | None: ...
    @property
    def multi(self) -> Spread | None: ...
    @property
    def higher_is_better(self) -> bool | None: ...


class Figures(Protocol):
    """What a diff reads of a report."""

    @property
    def scenario(self) -> Scenario: ...
    @property
    def rows(self) -> Sequence[_Row]: ...


# --------------------------------------------------------------------------- diff


def report(a_name: str, a: Figures, b_name: str, b: Figures,
           complete: tuple[bool, bool] = (True, True)) -> Diff:
    """What ``topo diff`` shows: B against A, with the caveats and the regressions counted."""
    changes = diff(a, b)
    return Diff(a_name, b_name, changes, tuple(caveats(a, b, complete)),
                sum(c.regression for c in changes))


def diff(a: Figures, b: Figures, tolerance: float = TOLERANCE) -> tuple[Change, ...]:
    """Every figure measured in both A and B, per topology, in B's order of rows."""
    before = {row.key: row for row in a.rows}
    changes = []
    for row in b.rows:
        old = before.get(row.key)
        if old is None:
            continue
        for topology in TOPOLOGIES:
            x, y = getattr(old, topology), getattr(row, topology)
            if x is not None and y is not None:
                changes.append(_change(row, topology, x.median, y.median, tolerance))
    return tuple(changes)


def _change(row: _Row, topology: str, a: float, b: float, tolerance: float) -> Change:
    relative = (b - a) / abs(a) if a else None
    worse = better = False
    if row.higher_is_better is not None and a != b:
        up_is_good = row.higher_is_better
        moved_up = b > a
        big = relative is None or abs(relative) > tolerance
        worse = big and moved_up != up_is_good
        better = big and moved_up == up_is_good
    return Change(row.key, row.label, topology, a, b, relative, worse, better)


def caveats(a: Figures, b: Figures, complete: tuple[bool, bool] = (True, True)) -> list[str]:
    """What makes the two results less comparable: a partial file, another scenario."""
    found = [
        f"{INCOMPLETE}: {side} is a partial result (complete: false)"
        for side, done in zip("AB", complete) if not done
    ]
    sa, sb = a.scenario, b.scenario
    if (sa.sha256 or sb.sha256) and sa.sha256 != sb.sha256:
        found.append(
            f"A and B ran different scenario files ({sa.name} {sa.sha256[:12] or '?'},"
            f" {sb.name} {sb.sha256[:12] or '?'})"
        )
    return found


# --------------------------------------------------------------------------- thresholds


class ThresholdError(ValueError):
    """The expression is not one ``--fail-if`` accepts; the message says why."""


_BINARY: Mapping[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_COMPARE: Mapping[type, Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}


@dataclass(frozen=True)
class Threshold:
    text: str
    tree: ast.Expression

    @property
    def names(self) -> tuple[tuple[str, str], ...]:
        """(topology, figure) of every name the expression uses."""
        return tuple(
            (node.value.id, node.attr)  # type: ignore[attr-defined]
            for node in ast.walk(self.tree) if isinstance(node, ast.Attribute)
        )


def parse_threshold(text: str) -> Threshold:
    """Check ``text`` is an allowed expression; ThresholdError naming what is not."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ThresholdError(f"{text!r} is not an expression: {e.msg}") from e
    qualified = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        _check(node, text)
        if isinstance(node, ast.Name) and id(node) not in qualified:
            raise ThresholdError(f"{text!r}: {node.id!r} alone is no figure; use"
                                 f" {node.id}.<figure>")
    return Threshold(text.strip(), tree)


def _check(node: ast.AST, text: str) -> None:
    allowed = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.Compare, ast.BinOp,
               ast.UnaryOp, ast.USub, ast.UAdd, ast.Constant, ast.Attribute, ast.Name,
               ast.Load, *_BINARY, *_COMPARE)
    if not isinstance(node, allowed):
        raise ThresholdError(f"{text!r}: {type(node).__name__} is not allowed in a threshold")
    if isinstance(node, ast.Constant) and (
        isinstance(node.value, bool) or not isinstance(node.value, (int, float))
    ):
        raise ThresholdError(f"{text!r}: only numbers may appear as constants")
    if isinstance(node, ast.Attribute) and not (
        isinstance(node.value, ast.Name) and node.value.id in TOPOLOGIES
    ):
        raise ThresholdError(f"{text!r}: names are single.<figure> or multi.<figure>")
    if isinstance(node, ast.Name) and node.id not in TOPOLOGIES:
        raise ThresholdError(f"{text!r}: unknown name {node.id!r}; use single.<figure> or"
                             " multi.<figure>")


class _Unmeasured(Exception):
    pass


def failure(threshold: Threshold, comparison: Figures) -> str | None:
    """Why ``comparison`` fails the threshold (its expression is true, as in ``--fail-if``),
    or None when it passes. A figure that was not measured fails it too; a figure that does
    not exist is a ThresholdError."""
    rows = {row.key: row for row in comparison.rows}
    for topology, figure in threshold.names:
        if figure not in rows:
            raise ThresholdError(
                f"{threshold.text!r}: no figure {figure!r}; figures: {', '.join(rows)}"
            )
    values = {(t, f): getattr(rows[f], t) for t, f in threshold.names}
    try:
        true = bool(_value(threshold.tree.body, values))
    except _Unmeasured as e:
        return f"{threshold.text}: {e} was not measured"
    except ZeroDivisionError:
        return f"{threshold.text}: division by zero"
    if not true:
        return None
    shown = ", ".join(f"{t}.{f} = {numbers(s.median)[0]}" for (t, f), s in values.items() if s)
    return f"{threshold.text} ({shown})"


def _value(node: ast.AST, values: Mapping[tuple[str, str], Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Attribute):
        name = (node.value.id, node.attr)  # type: ignore[attr-defined]
        spread = values[name]
        if spread is None or not math.isfinite(spread.median):
            raise _Unmeasured(".".join(name))
        return spread.median
    if isinstance(node, ast.UnaryOp):
        operand = _value(node.operand, values)
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_value(node.left, values), _value(node.right, values))
    if isinstance(node, ast.BoolOp):
        results = (_value(v, values) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.Compare):
        left = _value(node.left, values)
        for op, right_node in zip(node.ops, node.comparators):
            right = _value(right_node, values)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    raise ThresholdError(f"{type(node).__name__} is not allowed in a threshold")
