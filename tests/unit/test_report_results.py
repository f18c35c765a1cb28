"""The result file is read through a versioned loader: today's v1 files render, an older
version is upgraded step by step, a newer one is refused with one clear line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from topo import report, results
from topo.analysis import build_report
from topo.errors import ResultError

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.mark.parametrize("case", ("crash", "small", "small-regressed"))
def test_the_committed_v1_results_load_and_render_in_every_format(case: str) -> None:
    path = GOLDEN / f"{case}.result.json"
    assert json.loads(path.read_text())["version"] == 1  # as topo wrote them before the loader
    sc, runs, document = results.load(path)
    model = build_report(sc, runs, results.provenance(document))
    for fmt in report.FORMATS:
        assert f"{sc.name}" in report.render(model, fmt)


def older(doc: dict[str, Any]) -> dict[str, Any]:
    """A made-up version 0 of the golden document: ``runs`` was called ``measurements``."""
    out = {**doc, "version": 0, "measurements": doc["runs"]}
    del out["runs"]
    return out


def test_an_older_version_is_migrated_step_by_step(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    doc = json.loads((GOLDEN / "small.result.json").read_text())
    path = tmp_path / "old.json"
    path.write_text(json.dumps(older(doc)))
    with pytest.raises(ResultError, match="version 0 is not supported .*reads versions 1"):
        results.load(path)

    def step(d: dict[str, Any]) -> dict[str, Any]:
        out = {**d, "version": 1, "runs": d["measurements"]}
        del out["measurements"]
        return out

    monkeypatch.setitem(results.MIGRATIONS, 0, step)
    _, runs, _ = results.load(path)
    assert len(runs) == len(doc["runs"])


def test_a_migration_that_does_not_advance_is_an_error(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"schema": "topo.result", "version": 0}))
    monkeypatch.setitem(results.MIGRATIONS, 0, lambda d: d)
    with pytest.raises(ResultError, match="did not advance"):
        results.load(path)


def test_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.json"
    path.write_text(json.dumps({"schema": "topo.result", "version": 99, "runs": []}))
    with pytest.raises(ResultError, match="version 99 is not supported"):
        results.load(path)
