"""The golden inputs hold the figures their generator's parameters imply.

tests/golden/make_small.py: 120 tasks, 2 workers taking the next id when free (worker 0 on a
tie), a task lasting d = 0.1 s (single) or 0.11 s (multi) × (1 + 0.03 × repeat index), and
× 1.3 for multi in small-regressed. A pause (fault runs) freezes worker 0 at
p = 30·d + 0.03 s after the batch is available, in the task it started at 30·d, for
P = 1.55 s; in multi the reliable queue puts that task back HEARTBEAT = 0.5 s later.

Every expected number below is worked out by hand from those parameters (the arithmetic is
in the comments); topo computes the figures from the golden files.

No fault: each worker runs 60 tasks back to back, makespan 60·d, throughput 120 / 60d = 2/d.

Pause, single: worker 0's task 60 ends at 31d + P. Worker 1 (free at 31d) takes every task
while it is free before 31d + P: m = ceil(P/d) tasks. The R = 58 - m tasks left alternate,
worker 0 first: ceil(R/2) to worker 0, floor(R/2) to worker 1. Makespan = the later of
31d + P + ceil(R/2)·d and (31 + m + floor(R/2))·d.

Pause, multi: as single, but the task is back on the queue at r = 30d + 0.53; worker 1 takes
j = ceil(0.53/d - 1) tasks before it is free after r, redoes task 60 (ends (32 + j)·d), then
takes k = ceil(P/d - 1 - j) more before 31d + P. R = 58 - j - k; makespan = the later of
31d + P + ceil(R/2)·d and (32 + j + k + floor(R/2))·d. Worker 0 finishes task 60 too:
1 re-delivery, 1 duplicate.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from topo import results
from topo.analysis import figures as figures_of

GOLDEN = Path(__file__).resolve().parents[1] / "golden"

# (topology, repeat index, fault run) -> (makespan s, throughput tasks/s, duplicated, retried)
SMALL = {
    ("single", 0, False): (6.0, 20.0, 0, 0),  # 60 × 0.1; 2 / 0.1
    ("single", 1, False): (6.18, 19.41748, 0, 0),  # 60 × 0.103; 2 / 0.103
    ("single", 2, False): (6.36, 18.86792, 0, 0),  # 60 × 0.106; 2 / 0.106
    ("multi", 0, False): (6.6, 18.18182, 0, 0),  # 60 × 0.11; 2 / 0.11
    ("multi", 1, False): (6.798, 17.65225, 0, 0),  # 60 × 0.1133; 2 / 0.1133
    ("multi", 2, False): (6.996, 17.15266, 0, 0),  # 60 × 0.1166; 2 / 0.1166
    # d 0.1: m = ceil(15.5) = 16, R = 42: 3.1 + 1.55 + 2.1 = 6.75 vs 68 × 0.1 = 6.8;
    # 120 / 6.8
    ("single", 0, True): (6.8, 17.64706, 0, 0),
    # d 0.103: m = ceil(15.05) = 16, R = 42: 52 × 0.103 + 1.55 = 6.906 vs 68 × 0.103 = 7.004
    ("single", 1, True): (7.004, 17.13307, 0, 0),
    # d 0.106: m = ceil(14.62) = 15, R = 43: 53 × 0.106 + 1.55 = 7.168 vs 67 × 0.106 = 7.102
    ("single", 2, True): (7.168, 16.74107, 0, 0),
    # d 0.11: j = ceil(3.82) = 4, k = ceil(14.09 - 5) = 10, R = 44:
    # 53 × 0.11 + 1.55 = 7.38 vs 68 × 0.11 = 7.48; 120 / 7.48
    ("multi", 0, True): (7.48, 16.04278, 1, 1),
    # d 0.1133: j = ceil(3.68) = 4, k = ceil(13.68 - 5) = 9, R = 45:
    # 54 × 0.1133 + 1.55 = 7.6682 vs 67 × 0.1133 = 7.5911
    ("multi", 1, True): (7.6682, 15.64904, 1, 1),
    # d 0.1166: j = ceil(3.55) = 4, k = ceil(13.29 - 5) = 9, R = 45:
    # 54 × 0.1166 + 1.55 = 7.8464 vs 67 × 0.1166 = 7.8122
    ("multi", 2, True): (7.8464, 15.29364, 1, 1),
}
# small-regressed: single as in small; multi's d × 1.3; only the first 7 of 12 runs.
REGRESSED = {
    ("single", 0, False): SMALL["single", 0, False],
    ("multi", 0, False): (8.58, 13.98601, 0, 0),  # 60 × 0.143; 2 / 0.143
    ("single", 0, True): SMALL["single", 0, True],
    # d 0.143: j = ceil(2.71) = 3, k = ceil(10.84 - 4) = 7, R = 48:
    # 55 × 0.143 + 1.55 = 9.415 vs 66 × 0.143 = 9.438; 120 / 9.438
    ("multi", 0, True): (9.438, 12.71456, 1, 1),
    ("single", 1, False): SMALL["single", 1, False],
    ("multi", 1, False): (8.8374, 13.57865, 0, 0),  # 60 × 0.14729; 2 / 0.14729
    ("single", 1, True): SMALL["single", 1, True],
}


@pytest.mark.parametrize(("case", "expected"), [("small", SMALL), ("small-regressed", REGRESSED)])
def test_each_golden_run_has_the_figures_its_parameters_imply(case, expected) -> None:
    _, runs, _ = results.load(GOLDEN / f"{case}.result.json")
    assert sorted((r.topology, r.index, r.fault is not None) for r in runs) == sorted(expected)
    for r in runs:
        makespan, throughput, duplicated, retried = expected[r.topology, r.index, r.fault is not None]
        f = figures_of.run_figures(r)
        where = (case, r.topology, r.index, r.fault is not None)
        # every task done, nothing failed or lost: a pause delays, it destroys nothing
        assert (f.ledger.submitted, f.ledger.completed, f.ledger.failed, f.ledger.lost) == (
            120, 120, 0, 0), where
        assert (f.ledger.duplicated, f.ledger.retried) == (duplicated, retried), where
        # record times are rounded to 0.1 ms in the file
        assert f.makespan == pytest.approx(makespan, abs=2e-4), where
        assert f.throughput == pytest.approx(throughput, rel=5e-5), where


def test_a_re_delivery_is_a_requeue_signal_from_the_frozen_worker() -> None:
    _, runs, _ = results.load(GOLDEN / "small.result.json")
    for r in runs:
        requeues = [s for s in r.signals if s.kind == "requeue"]
        if r.topology == "multi" and r.fault is not None:
            (signal,) = requeues
            d = 0.11 * (1 + 0.03 * r.index)
            # the task worker 0 started at 30·d: id 60 (ids 0..59 went two by two before it)
            assert signal.detail == "60" and signal.container.endswith("-w0")
            assert r.t_available is not None
            assert signal.t - r.t_available == pytest.approx(30 * d + 0.53, abs=1e-6)
            # two successes of task 60: worker 1's redo, then worker 0's late one
            done = sorted((x.end, x.worker) for x in r.records if x.id == 60 and x.ok)
            assert [w.split("-")[-1] for _, w in done] == ["w1/1", "w0/1"]
        else:
            assert requeues == []
