"""docs/result-schema.md against real result files: every field its `topo.result` tables
document is written, and every field written is documented."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from topo import model

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "result-schema.md"
GOLDEN = ROOT / "tests" / "golden" / "small.result.json"

# what each runs[] array holds, as written by topo.results.to_json
ELEMENTS = {"records": model.TaskRecord, "samples": model.Sample, "workers": model.WorkerInfo,
            "containers": model.ContainerSpec, "fault_events": model.FaultEvent,
            "signals": model.Signal, "processes": model.ProcSample}


def _tables() -> list[list[list[str]]]:
    """The Markdown tables of the ``topo.result`` section, as rows of cells."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## `topo.result` version 1", 1)[1].split("\n## ", 1)[0]
    tables: list[list[list[str]]] = [[]]
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = re.split(r"(?<!\\)\|", line)[1:-1]
            tables[-1].append([c.strip() for c in cells])
        elif tables[-1]:
            tables.append([])
    return [t for t in tables if t]


def _outside_parentheses(cell: str) -> str:
    depth, kept = 0, []
    for ch in cell:
        depth += ch == "("
        if depth == 0:
            kept.append(ch)
        depth -= ch == ")" and depth > 0
    return "".join(kept)


def _names(cell: str) -> list[str]:
    """The field names in backticks, leaving out what parentheses say about them."""
    names = re.findall(r"`([^`]+)`", _outside_parentheses(cell))
    return [n for n in names if re.fullmatch(r"\w+(\[\])?", n)]


def _element_names(meaning: str) -> list[str]:
    """An array row's element fields: after "what it is:" when the text starts so."""
    text = _outside_parentheses(meaning)
    head, colon, rest = text.partition(":")
    return _names(rest if colon and "`" not in head else text)


def documented() -> set[str]:
    """Dotted names: top-level fields, runs[] fields, and runs[].X[] element fields."""
    top, runs = _tables()
    out = {n for row in top for n in _names(row[0])}
    for field, _type, meaning in runs:
        for name in _names(field):
            out.add(f"runs[].{name}")
            if name.endswith("[]") and name[:-2] in ELEMENTS:
                out |= {f"runs[].{name}.{sub}" for sub in _element_names(meaning)}
    return out


def written(document: dict[str, Any]) -> set[str]:
    """The same dotted names, as a result file holds them (every run, every element)."""
    out = set(document)
    for run in document["runs"]:
        for key, value in run.items():
            name = f"{key}[]" if isinstance(value, list) else key
            out.add(f"runs[].{name}")
            if key in ELEMENTS:
                out |= {f"runs[].{name}.{sub}" for element in value for sub in element}
    return out


def writer() -> set[str]:
    """What the current writer can write: the model's dataclass fields (a task record is
    the protocol's own record, whose fields are its FIELDS)."""
    out = {f"runs[].{f.name}" + ("[]" if f.name in ELEMENTS or f.name == "host" else "")
           for f in dataclasses.fields(model.RunResult)}
    for key, cls in ELEMENTS.items():
        names = cls.FIELDS if cls is model.TaskRecord else [f.name for f in dataclasses.fields(cls)]
        out |= {f"runs[].{key}[].{name}" for name in names}
    return out


def test_the_tables_are_found() -> None:
    names = documented()
    assert {"created", "runs", "runs[].records[]", "runs[].records[].cpu"} <= names


def test_every_field_of_a_real_result_file_is_documented() -> None:
    document = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert written(document) - documented() == set()


def test_every_documented_field_is_in_the_real_file_or_written_by_the_current_model() -> None:
    document = json.loads(GOLDEN.read_text(encoding="utf-8"))
    optional = {"scenario_copy", "sweep_workers"}  # top level: compare/sweep copied the scenario
    missing = documented() - written(document) - optional
    # small.result.json predates these; the current writer has each of them
    assert missing <= writer(), missing - writer()
    assert writer() - documented() == set()
