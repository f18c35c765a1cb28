"""The import layers of topo, read from the source (every import, function-local ones too).

- no cycle anywhere in topo/, counting the package ``__init__`` an import runs;
- topo/report/ renders the report model and nothing else: its modules import from topo only
  ``topo.report.*``, and ``topo.report.model`` only ``topo.model`` besides;
- topo/report/ does no arithmetic on figures: no ``statistics``, no sum/median/mean.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "topo"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(name: str) -> set[str]:
    """The topo modules ``name`` imports, wherever the import statement is."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            found.add(base)
            # "from topo.report import table" imports the module topo.report.table
            found.update(f"{base}.{alias.name}" for alias in node.names
                         if f"{base}.{alias.name}" in MODULES)
    return {m for m in found if m in MODULES}


def ancestors(name: str) -> Iterator[str]:
    parts = name.split(".")
    for i in range(1, len(parts)):
        yield ".".join(parts[:i])


def edges(name: str) -> set[str]:
    """What importing ``name`` runs: each module it imports and that module's packages,
    except its own packages (a package importing its children is no cycle)."""
    own = set(ancestors(name)) | {name}
    out: set[str] = set()
    for target in imported(name):
        out.update(m for m in (*ancestors(target), target) if m not in own and m in MODULES)
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_reader_sees_a_function_local_import_and_a_cycle() -> None:
    # The report's dispatcher imports its formats inside a function.
    assert "topo.report.table" in imported("topo.report")
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_there_is_no_import_cycle_in_topo() -> None:
    graph = {name: edges(name) for name in MODULES}
    assert find_cycle(graph) is None


def test_the_reports_import_only_the_report_model_and_their_helpers() -> None:
    report = {n for n in MODULES if n.startswith("topo.report.") or n == "topo.report"}
    assert {"topo.report.table", "topo.report.html", "topo.report.model"} <= report
    for name in sorted(report):
        allowed = ("topo.report", "topo.model") if name == "topo.report.model" else ("topo.report",)
        outside = {m for m in imported(name)
                   if not any(m == a or m.startswith(a + ".") for a in allowed)}
        assert not outside, f"{name} imports {sorted(outside)}"


ARITHMETIC = {"sum", "median", "mean", "fmean", "median_low", "median_high", "fsum"}


def test_the_reports_compute_no_figure() -> None:
    for name, path in MODULES.items():
        if not name.startswith("topo.report"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert "statistics" not in modules, f"{name} imports statistics"
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                assert called not in ARITHMETIC, f"{name}:{node.lineno} calls {called}()"
