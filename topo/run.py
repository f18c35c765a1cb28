"""The run engine moved to ``topo.engine``; these names stay importable from here."""

from topo.engine import INTERRUPTED, Progress, Saver, compare, new_run_id, plans, run_one

__all__ = ["INTERRUPTED", "Progress", "Saver", "compare", "new_run_id", "plans", "run_one"]
