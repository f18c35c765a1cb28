"""`topo diff` as a CI gate on results measured now: the gate's scenario and its twin with
twice the CPU per task (tests/golden/gate/), measured with the shared option vocabulary
(--runs, -q, -o, --export-csv), then diffed."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

GATE = ROOT / "tests" / "golden" / "gate"


def topo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "topo.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT, env=dict(os.environ))


def measure(scenario: str, out: Path) -> Path:
    p = topo("compare", str(GATE / scenario), "--runs", "2", "-q", "-o", str(out),
             "-f", "json", "--export-csv", str(out / "figures.csv"))
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""  # -q: no progress lines, no "results:" line
    return out


@pytest.mark.docker
def test_twice_the_task_cost_fails_the_gate_and_the_same_scenario_passes(tmp_path: Path) -> None:
    base, slow = measure("base.yaml", tmp_path / "base"), measure("slow.yaml", tmp_path / "slow")
    rows = list(csv.DictReader((base / "figures.csv").open()))
    # --runs 2 instead of the file's repeat: 3 -> two measured runs per topology
    assert {r["n"] for r in rows if r["figure"] == "completed"} == {"2"}
    assert {float(r["median"]) for r in rows if r["figure"] == "completed"} == {40.0}

    p = topo("diff", str(base), str(slow), "--fail-on-regression")
    assert p.returncode == 3, p.stdout + p.stderr
    # 40 ms of CPU per task against 80 ms: beyond 10% whatever the host's load
    lines = [ln for ln in p.stderr.splitlines() if "CPU per task" in ln]
    assert len(lines) == 2 and all(ln.endswith("%)") and " ms (" in ln for ln in lines), p.stderr

    same = topo("diff", str(base), str(base), "--fail-on-regression",
                "--fail-if", "b.multi.cpu_per_task > 1.5 * a.multi.cpu_per_task")
    assert same.returncode == 0, same.stderr
