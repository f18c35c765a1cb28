"""The agents fork (every single pool) while their telemetry thread runs. A module that a
thread imports lazily is a deadlock waiting to happen: a fork taken while that thread holds
the module's import lock leaves the child waiting for it forever (seen as an mp-pool worker
that never became ready, stuck in ``_ModuleLock.acquire`` under ``open(..., encoding=
"ascii")`` in ``cpu_quota``: the telemetry thread was importing ``encodings.ascii``).

So: once the agent modules are imported, what their threads and their forked workers run
must import nothing more. Checked in a fresh interpreter set up as in the containers (no
locale variables, no site hooks that import codecs early: ``-S`` with the packages' folders
on PYTHONPATH), against the list of modules loaded before and after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, sys, tempfile, os
os.environ["TOPO_RUN_DIR"] = tempfile.mkdtemp()
os.makedirs(os.path.join(os.environ["TOPO_RUN_DIR"], "events"))
import topo.agent.single, topo.agent.telemetry, topo.agent.common as common
from topo.agent.protocol import Procs
before = set(sys.modules)
events = common.Events("probe")
procs = topo.agent.telemetry.snapshot(with_memory_maps=True)   # one telemetry pass
events.emit(Procs(container="probe", t=0.0, procs=procs))      # ... and its line
topo.agent.telemetry.thread_cpu(os.getpid())
common.announce_ready(events, "probe/1", "probe")       # a pool worker's first steps
events.emit(common.task_record(0, "probe/1", lambda i: None, lambda: 0))  # ... a task
common.failed(events, "probe", 1, "BrokenProcessPool: gone")  # ... PID 1's write-off
common.cpu_quota()
common.memory_limit()
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_the_agents_threads_and_workers_import_nothing_after_start() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHON"))}
    packages = [p for p in sys.path if p.endswith("-packages")]
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *packages])
    out = subprocess.run([sys.executable, "-S", "-c", PROBE], capture_output=True, text=True,
                         env=env, timeout=60, check=True).stdout
    assert json.loads(out) == []
