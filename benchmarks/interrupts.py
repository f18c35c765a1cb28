"""Interrupt `topo compare` with SIGINT, SIGTERM and SIGKILL at start-up, mid-run and during
teardown; count what topo leaves behind (containers and networks of its run) 15 s later.

Usage: .venv/bin/python benchmarks/interrupts.py
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT

SCENARIO = """\
version: 1
name: interrupts
workload: {task: io, tasks: 60, params: {ms: 50}}
workers: 2
resources: {cpus: 1, memory: 256m}
run: {repeat: 1, timeout: 60s}
"""


def leftovers(scenario: str) -> int:
    out = []
    for kind in (["ps", "-aq"], ["network", "ls", "-q"]):
        out += subprocess.run(["docker", *kind, "--filter", f"label=topo.scenario={scenario}"],
                              capture_output=True, text=True, check=True).stdout.split()
    return len(out)


def wait_for(out: Path, phase: str, proc: subprocess.Popen[str]) -> None:
    """start-up: the first container exists; mid-run: tasks ran; teardown: the first run ended."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        events = list(out.glob("raw/*/events/*.jsonl"))
        if phase == "start-up" and list(out.glob("raw/*/run.json")):
            return
        if phase == "mid-run" and any('"ev":"task"' in p.read_text() for p in events):
            return
        if phase == "teardown" and any(p.read_text().count('"ok":true') >= 30 for p in events):
            return  # the single run is about to end: teardown follows within a poll
        time.sleep(0.02)


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "s.yaml")
        path.write_text(SCENARIO)
        for signo in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            for phase in ("start-up", "mid-run", "teardown"):
                out = Path(tmp, f"{signo.name}-{phase}")
                proc = subprocess.Popen([sys.executable, "-m", "topo.cli", "compare", str(path),
                                         "--out", str(out)], cwd=ROOT, text=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                wait_for(out, phase, proc)
                proc.send_signal(signo)
                _, err = proc.communicate(timeout=60)
                time.sleep(15)
                left = leftovers("interrupts")
                traceback = "Traceback" in err
                rows.append((signo.name, phase, proc.returncode, left, traceback))
                print(f"{signo.name:8} {phase:9} exit {proc.returncode:4}  left after 15 s: {left}"
                      f"  traceback: {'yes' if traceback else 'no'}", flush=True)
    print(f"total left: {sum(r[3] for r in rows)}; tracebacks: {sum(r[4] for r in rows)}")


if __name__ == "__main__":
    main()
