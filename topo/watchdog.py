"""``python -m topo.watchdog OWNER``: once OWNER's process is gone, remove everything it made.

Started by ``topo.cleanup.start_watchdog``. It lives apart from ``topo.cleanup`` because it
needs the Docker runtime, which itself uses ``topo.cleanup``'s owner labels: kept in one
module, the two would import each other.
"""

from __future__ import annotations

import sys
import time

from topo.cleanup import owner_alive, remove_everywhere
from topo.errors import TopoError
from topo.plan import OWNER
from topo.runtime.docker import DockerRuntime


def watch(owner: str, poll: float = 0.2) -> None:
    while owner_alive(owner):
        time.sleep(poll)
    try:
        remove_everywhere(DockerRuntime.connect(), f"{OWNER}={owner}")
    except TopoError:
        pass  # nothing we can do from here; the next topo start sweeps it


if __name__ == "__main__":
    watch(sys.argv[1])
