"""Rate and spread primitives every other analysis module builds on (metrics.md).

Pure and stdlib-only: completion times in, rates, quantiles, spreads and bootstrap ratios out.
It imports nothing from topo but the model, so figures, blast and comparison can all share
it without an import cycle.
"""

from __future__ import annotations

import bisect
import math
import random
import statistics
from collections.abc import Iterable, Sequence

from topo.model import Quantiles, Ratio, Sample, Spread

MAX_BUCKET = 1.0  # seconds: metrics.md asks for buckets of at most 1 s
MIN_BUCKET = 0.05  # seconds: finer than the ~10 Hz sampling would only show noise
BUCKETS_PER_MAKESPAN = 20  # short runs still get enough buckets for a median
MIN_STEADY_BUCKETS = 3  # fewer buckets make a "median rate" meaningless
STEADY_FROM, STEADY_TO = 0.1, 0.9  # fractions of completions bounding the steady state
_EPS = 1e-9  # absorbs float error when a time falls exactly on a bucket edge

def bucket_rates(times: Sequence[float], start: float, end: float, width: float) -> list[float]:
    """Completions per second in consecutive buckets of ``width`` s from ``start``.

    Only whole buckets that end by ``end`` are kept: a partial bucket would understate its
    rate. Buckets are half-open, [start + i*width, start + (i+1)*width).
    """
    counts = [0] * max(0, int((end - start) / width + _EPS))
    n, floor = len(counts), math.floor  # local names: this loop runs once per completion
    for t in times:
        i = floor((t - start) / width + _EPS)
        if 0 <= i < n:
            counts[i] += 1
    return [n / width for n in counts]

def bucket_width(makespan: float) -> float:
    """Timeline bucket width: makespan/20, at most 1 s and at least 0.05 s."""
    return max(MIN_BUCKET, min(MAX_BUCKET, makespan / BUCKETS_PER_MAKESPAN))

def steady_rate(
    times: Sequence[float], makespan: float | None, width: float | None = None
) -> float | None:
    """Median bucket rate between the 10% and 90% completion times (sorted ``times``).

    The 10% time is the k-th completion with k = ceil(0.1·n), likewise for 90%. Buckets are
    ``width`` s wide, by default ``bucket_width(makespan)``. None when fewer than 3 whole
    buckets fit between them.
    """
    if makespan is None or not times:
        return None
    low = times[_rank(len(times), STEADY_FROM)]
    high = times[_rank(len(times), STEADY_TO)]
    rates = bucket_rates(times, low, high, width or bucket_width(makespan))
    return statistics.median(rates) if len(rates) >= MIN_STEADY_BUCKETS else None

def _rank(n: int, fraction: float) -> int:
    # 0-based index of the ceil(fraction*n)-th item; _EPS keeps 0.1*30 from rounding to 4.
    return max(0, math.ceil(fraction * n - _EPS) - 1)

def quantiles(values: Sequence[float]) -> Quantiles | None:
    """p50, p95, p99 (linear interpolation between order statistics) and max."""
    if not values:
        return None
    ordered = sorted(values)

    def q(p: float) -> float:
        pos = p * (len(ordered) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    return Quantiles(q(0.50), q(0.95), q(0.99), ordered[-1], len(ordered))

def cumulative_at(series: Sequence[Sample], t: float) -> float:
    """Cumulative CPU of one container at time ``t`` (``series`` sorted by time).

    Linear between the samples around ``t``; before the first or after the last sample it
    is that sample's value, since nothing better is known. 0.0 without samples.
    """
    if not series:
        return 0.0
    i = bisect.bisect_right([s.t for s in series], t)
    if i == 0:
        return series[0].cpu
    if i == len(series):
        return series[-1].cpu
    before, after = series[i - 1], series[i]  # before.t <= t < after.t, so no zero division
    return before.cpu + (after.cpu - before.cpu) * (t - before.t) / (after.t - before.t)

def spread(values: Iterable[float | None]) -> Spread | None:
    """Median, min, max, mean, sample standard deviation and the values themselves, of the
    values that were measured (None values are skipped)."""
    measured = [v for v in values if v is not None]
    if not measured:
        return None
    finite = all(math.isfinite(v) for v in measured)  # a "never" (inf) has no mean
    mean = statistics.fmean(measured) if finite else None
    stddev = statistics.stdev(measured) if finite and len(measured) > 1 else None
    return Spread(statistics.median(measured), min(measured), max(measured), len(measured),
                  mean, stddev, tuple(measured))

def bootstrap_ratio(
    single: Sequence[float], multi: Sequence[float], *, iterations: int = 2000, seed: int = 0
) -> Ratio:
    """median(multi) / median(single) with a 95% percentile bootstrap interval.

    The interval needs at least 2 values on each side, else ci_low/ci_high are None.
    Seeded, so a report of the same results is the same report. Raises ValueError when a
    side is empty or median(single) is 0; ``ratio_of`` is the wrapper that returns None.
    """
    if not single or not multi or statistics.median(single) == 0:
        raise ValueError("ratio needs values on both sides and a non-zero single median")
    value = statistics.median(multi) / statistics.median(single)
    if len(single) < 2 or len(multi) < 2:
        return Ratio(value, None, None)
    rng = random.Random(seed)
    ratios = []
    for _ in range(iterations):
        denominator = statistics.median(rng.choices(single, k=len(single)))
        # A resample whose median is 0 has no ratio; it is skipped rather than made infinite.
        if denominator != 0:
            ratios.append(statistics.median(rng.choices(multi, k=len(multi))) / denominator)
    if not ratios:
        return Ratio(value, None, None)
    ratios.sort()
    return Ratio(value, _quantile(ratios, 0.025), _quantile(ratios, 0.975))

def ratio_of(single: Sequence[float], multi: Sequence[float], **kwargs: int) -> Ratio | None:
    """``bootstrap_ratio`` or None when no ratio exists (a side empty, single median 0)."""
    try:
        return bootstrap_ratio(single, multi, **kwargs)
    except ValueError:
        return None

def _quantile(ordered: Sequence[float], q: float) -> float:
    # Linear interpolation between closest ranks (numpy's default), on sorted values.
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

