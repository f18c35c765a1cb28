"""The agents run in a team's own image, on Python 3.9 or newer (topo.images.MIN_PYTHON),
while topo itself is developed on 3.11. Nothing here runs a 3.9 interpreter (none is on
this machine); it checks the two ways 3.10+ code slips into the agents: syntax 3.9 cannot
parse, and ``X | Y`` of types evaluated at run time (3.9 has no ``type.__or__``; in an
annotation, under ``from __future__ import annotations``, it is never evaluated)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from topo import images

ROOT = Path(__file__).resolve().parents[2]
AGENT = sorted((ROOT / "topo" / "agent").glob("*.py")) + [ROOT / "topo" / "workloads.py"]
TYPES = {"int", "float", "str", "bytes", "bool", "list", "dict", "tuple", "set", "type", "object"}


def _typelike(node: ast.expr) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _typelike(node.left) or _typelike(node.right)
    if isinstance(node, ast.Constant):
        return node.value is None
    if isinstance(node, ast.Subscript):
        return _typelike(node.value)
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    constant = name.isupper() and len(name) > 1  # os.O_APPEND | os.O_CREAT: flags, not types
    return name in TYPES or (name[:1].isupper() and not constant)


def _annotations(tree: ast.AST) -> set[int]:
    """ids of every node inside an annotation (never evaluated with the __future__ import)."""
    roots: list[ast.expr] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.AnnAssign):
            roots.append(n.annotation)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = n.args
            roots += [x.annotation for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]
                      if x is not None and x.annotation is not None]
            if n.returns is not None:
                roots.append(n.returns)
    return {id(m) for r in roots for m in ast.walk(r)}


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of every node under ``if TYPE_CHECKING:`` (its body only, not its else)."""
    out: set[int] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.If) and isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING":
            out |= {id(m) for stmt in n.body for m in ast.walk(stmt)}
    return out


def runtime_unions(source: str) -> list[int]:
    """Lines where ``X | Y`` of types is evaluated at run time."""
    tree = ast.parse(source)
    skip = _annotations(tree) | _type_checking_only(tree)
    return sorted({n.lineno for n in ast.walk(tree)
                   if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr)
                   and id(n) not in skip and _typelike(n)})


def test_the_check_finds_what_39_rejects_and_passes_what_it_takes() -> None:
    bad = ("from __future__ import annotations\nimport os, queue\n"
           "Event = A | B\n"
           "Done = queue.SimpleQueue[tuple[int, float | None]]\n"
           "def f(x: int | None) -> A | None:\n    y: B | None = None\n    return x | 3\n"
           "if TYPE_CHECKING:\n    E = A | B\nelse:\n    E = C | D\n"
           "flags = os.O_WRONLY | os.O_APPEND\n")
    assert runtime_unions(bad) == [3, 4, 11]


@pytest.mark.parametrize("path", AGENT, ids=lambda p: p.name)
def test_an_agent_module_runs_on_the_oldest_python_topo_accepts(path: Path) -> None:
    assert images.MIN_PYTHON == (3, 9)
    source = path.read_text(encoding="utf-8")
    ast.parse(source, feature_version=images.MIN_PYTHON)  # no syntax of a later Python
    assert runtime_unions(source) == [], f"{path.name}: X | Y of types evaluated at run time"
