"""The run engine: which runs happen in which order (``schedule``), one deployment's life
from deploy to teardown (``lifecycle``), and following a running batch (``watch``).

Timing is a frozen ``EngineConfig`` and time itself an injectable ``Clock`` (``config``), so
the unit tests run whole comparisons on a fake runtime and a fake clock without sleeping.
"""

from topo.engine.config import Clock, EngineConfig, SystemClock
from topo.engine.lifecycle import INTERRUPTED, run_one
from topo.engine.schedule import Progress, Saver, compare, new_run_id, plans

__all__ = ["Clock", "EngineConfig", "INTERRUPTED", "Progress", "Saver", "SystemClock",
           "compare", "new_run_id", "plans", "run_one"]
