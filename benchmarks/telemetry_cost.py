"""What topo's in-container telemetry costs: CPU of the telemetry thread per container.

A container like single's (PID 1 and N forked, idle worker processes) runs for a fixed time
twice, with and without the telemetry thread; the difference in the container's own CPU
(its cgroup, read from inside) is the telemetry's cost, as a share of one core. The target is
at most 1% of a core per container.

Usage: .venv/bin/python benchmarks/telemetry_cost.py [seconds] [processes]
"""

from __future__ import annotations

import json
import subprocess
import sys

from _common import DockerRuntime, ROOT  # noqa: F401  (ROOT puts topo on sys.path)

from topo.model import MultiSpec, Resources, RunSpec, Scenario, SingleSpec, Workload

PROBE = """
import json, os, sys, time
from topo.agent import common, telemetry
secs, n, on = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "on"
os.makedirs("/tmp/run/events", exist_ok=True)
common.RUN_DIR = "/tmp/run"
kids = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        time.sleep(secs + 5)
        os._exit(0)
    kids.append(pid)
def cpu():
    try:  # cgroup v1
        with open("/sys/fs/cgroup/cpuacct/cpuacct.usage") as f:
            return int(f.read()) / 1e9
    except OSError:  # cgroup v2
        with open("/sys/fs/cgroup/cpu.stat") as f:
            return int(f.read().split()[1]) / 1e6
events = common.Events("probe")
c0, t0 = cpu(), time.time()
if on:
    telemetry.start(events, "probe")
time.sleep(secs)
used, wall = cpu() - c0, time.time() - t0
lines = sum(1 for _ in open("/tmp/run/events/probe.jsonl"))
print(json.dumps({"cpu": used, "wall": wall, "lines": lines}))
for pid in kids:
    os.kill(pid, 9)
"""


def main() -> None:
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 20
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    runtime = DockerRuntime.connect()
    sc = Scenario(name="telemetry", workload=Workload(task="noop", tasks=1), workers=n,
                  resources=Resources(cpus=1, memory=256 * 2**20), single=SingleSpec(),
                  multi=MultiSpec(), run=RunSpec())
    image = runtime.ensure_image(sc)
    got = {}
    for mode in ("off", "on"):
        out = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--cpus", "1", "--user", "10001",
             "--tmpfs", "/tmp", "--label", "topo.managed=true", image,
             "python3", "-c", PROBE, str(secs), str(n), mode],
            check=True, capture_output=True, text=True).stdout
        got[mode] = json.loads(out)
    cost = (got["on"]["cpu"] - got["off"]["cpu"]) / got["on"]["wall"]
    print(f"container with PID 1 + {n} workers, {secs:g} s: CPU {got['off']['cpu']:.3f} s "
          f"without telemetry, {got['on']['cpu']:.3f} s with it ({got['on']['lines']} passes)")
    print(f"telemetry costs {100 * cost:.2f}% of one core per container (target <= 1%)")


if __name__ == "__main__":
    main()
