"""Named defaults of the harness, each in one place with the reason it has its value.

The scenario's own defaults (repeat, timeout, restart policy, ...) are part of the scenario
format and live with it (``topo.model``); what is here is what a user does not write:
how every container is hardened, and how often and how long the run engine waits.
"""

from __future__ import annotations

# ----------------------------------------------------------------- every container

CONTAINER_UID = 10001
CONTAINER_USER = f"{CONTAINER_UID}:{CONTAINER_UID}"  # no root inside any container topo starts
CAP_DROP = ("ALL",)  # the agents need no capability at all
SECURITY_OPT = ("no-new-privileges",)  # as the engine stores it; Compose passes it on
READ_ONLY_ROOT = True  # the only writable places: /tmp (memory) and the run folder
MIB = 1 << 20
TMPFS_SIZE = {"/tmp": 64 * MIB}  # bytes per tmpfs path: Swarm and Kubernetes take the number
# (path, mount options) as the Docker engine and Compose take them, the size from above
TMPFS = tuple((path, f"rw,nosuid,nodev,size={size // MIB}m") for path, size in TMPFS_SIZE.items())

# ----------------------------------------------------------------- the run engine (seconds)

READY_TIMEOUT = 60.0  # for every worker to start and announce itself
POLL = 0.05  # how often the event files are read
STATES_EVERY = 0.25  # how often container states are polled (exit and restart signals)
STALL_AFTER = 15.0  # without any task line: the run has stalled
SETTLE = 2.0  # after a fault run's batch is done and the fault is over, watch this much longer
EXITED_GRACE = 2.0  # no worker running this long (and none restarting): the run is over
SAMPLE_HZ = 10.0  # how often every container's cgroup counters are read
# A single container's PID 1 stays this long after its batch, idle, its pool gone, so the
# sampler's last pass still finds its cgroup: a container that left with its last task took
# the CPU of its last sampling period with it. Teardown removes it long before (a harness
# that died leaves it to go by itself).
SINGLE_LINGER = 30.0
