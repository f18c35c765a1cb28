"""Everything topo computes from raw runs, once, for every report (metrics.md).

Layers, each importing only those above it (enforced by tests/unit/test_imports.py):

- ``rates``: bucket rates, steady rate, quantiles, spreads, bootstrap ratios;
- ``figures``: the figures of one run; ``blast``: the damage of one fault in one run;
- ``warnings``: doubts about the figures, with advice; ``verdict``: who wins, in words;
- ``comparison``: each figure across repeats, as rows; ``aggregate``: blast radii over repeats;
- ``describe``, ``timelines``: the prose and series a report shows;
- ``build``: ``build_report``, the frozen ``topo.report.model.Report`` every format renders.
"""

from topo.analysis.build import build_report

__all__ = ["build_report"]
