"""The HTML report's plots: series computed from RunResults, drawn as inline SVG strings.

matplotlib is used through ``matplotlib.figure.Figure`` with no pyplot, so no GUI backend
(and no global figure state) is ever involved; the SVG backend embeds glyphs as paths, so
the SVG needs no font. Series functions are pure and return plain lists.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from topo.ledger import completion_times
from topo.model import TOPOLOGIES, FaultStatus, Role, RunResult, Sample
from topo.stats import bucket_rates, bucket_width

COLORS = {"single": "#1f77b4", "multi": "#d95f02"}
NO_FAULT = "no fault"
CPU_WINDOW = 0.5  # seconds: a rate over 10 Hz samples is mostly noise below this
MIB = 1024 * 1024
WIDTH = 9.5  # inches
PANEL = 2.3  # inches per panel

Series = tuple[list[float], list[float]]


# --------------------------------------------------------------------------- series


def measured(results: Sequence[RunResult]) -> list[RunResult]:
    return [r for r in results if not r.warmup]


def condition(result: RunResult) -> str:
    """The fault a run injected, or "no fault"."""
    return result.fault.name if result.fault else NO_FAULT


def representative(results: Sequence[RunResult], topology: str) -> RunResult | None:
    """The run that stands for a topology: its first no-fault run, else its first run."""
    mine = [r for r in measured(results) if r.topology == topology]
    return next((r for r in mine if r.fault is None), mine[0] if mine else None)


def throughput_timeline(result: RunResult) -> Series:
    """(seconds since deploy at each bucket's middle, completions per second)."""
    times = completion_times(result.records, result.task_count)
    start = result.t_available
    if start is None or not times or times[-1] <= start:
        return [], []
    # Whole buckets only, as stats.steady_rate counts them: a last partial bucket would
    # draw a drop that did not happen.
    width = bucket_width(times[-1] - start)
    rates = bucket_rates(times, start, times[-1], width)
    offset = start - result.t_deploy
    return [offset + (i + 0.5) * width for i in range(len(rates))], rates


def fault_marks(result: RunResult) -> list[tuple[float, float | None]]:
    """(injection time, end of a pause/partition or None), in seconds since deploy."""
    return [
        (e.t - result.t_deploy, None if e.t_end is None else e.t_end - result.t_deploy)
        for e in result.fault_events
        if e.status == FaultStatus.INJECTED and e.t is not None
    ]


def _by_container(samples: Sequence[Sample]) -> dict[str, list[Sample]]:
    grouped: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        grouped[s.container].append(s)
    return {name: sorted(series, key=lambda s: s.t) for name, series in grouped.items()}


def cpu_cores(
    samples: Sequence[Sample], t0: float, window: float = CPU_WINDOW
) -> dict[str, Series]:
    """Cores used by each container over time: the derivative of its cumulative CPU over
    at least ``window`` seconds, at the middle of that span, in seconds since ``t0``.
    A drop of the counter (a container re-created) counts as 0, not as negative use."""
    out = {}
    for name, series in _by_container(samples).items():
        xs, ys = [], []
        j = 0
        for i in range(1, len(series)):
            while j + 1 < i and series[i].t - series[j + 1].t >= window:
                j += 1
            dt = series[i].t - series[j].t
            if dt <= 0:
                continue
            xs.append((series[i].t + series[j].t) / 2 - t0)
            ys.append(max(0.0, (series[i].cpu - series[j].cpu) / dt))
        out[name] = (xs, ys)
    return out


def memory_total(result: RunResult) -> Series:
    """(seconds since deploy, MiB summed over the containers sampled in one pass)."""
    per_pass: dict[float, int] = defaultdict(int)
    for s in result.samples:
        per_pass[s.t] += s.memory
    ts = sorted(per_pass)
    return [t - result.t_deploy for t in ts], [per_pass[t] / MIB for t in ts]


def core_counts(results: Sequence[RunResult]) -> dict[str, Counter[int]]:
    """Task attempts per CPU core (TaskRecord.core) for each topology, over measured runs."""
    counts: dict[str, Counter[int]] = {t: Counter() for t in TOPOLOGIES}
    for r in measured(results):
        counts[r.topology].update(rec.core for rec in r.records if rec.core is not None)
    return {t: c for t, c in counts.items() if c}


def short_name(container: str) -> str:
    """"topo-6dea6f79-m0-w3" -> "w3": the part that differs inside one deployment."""
    return container.rsplit("-", 1)[-1]


# --------------------------------------------------------------------------- drawing


def _figure(panels: int) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH, 0.5 + PANEL * panels), layout="constrained")
    axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
    for ax in axes:
        ax.grid(True, color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return fig, list(axes)


def to_svg(fig: Any, name: str) -> str:
    """The figure as an ``<svg>`` element (no XML prologue), reproducible byte for byte."""
    import matplotlib

    buf = io.StringIO()
    # A fixed salt makes the ids inside the SVG stable; a salt per plot keeps two inline
    # plots of one page from sharing ids.
    with matplotlib.rc_context({"svg.hashsalt": f"topo-{name}", "svg.fonttype": "path",
                                "font.size": 9}):
        # No metadata block: a date would change every render, the rest is noise.
        fig.savefig(buf, format="svg",
                    metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def throughput_svg(results: Sequence[RunResult]) -> str | None:
    """Completions per second over time, one panel per fault condition, a line per run;
    a vertical line where each fault was injected (a band for its duration)."""
    runs = [r for r in measured(results) if throughput_timeline(r)[0]]
    if not runs:
        return None
    # The no-fault runs first, then each fault in the order its runs came.
    conditions = list(dict.fromkeys(sorted(map(condition, runs), key=lambda c: c != NO_FAULT)))
    fig, axes = _figure(len(conditions))
    for ax, cond in zip(axes, conditions):
        for r in (r for r in runs if condition(r) == cond):
            color = COLORS[r.topology]
            xs, ys = throughput_timeline(r)
            ax.plot(xs, ys, color=color, linewidth=1.4, label=r.topology)
            for t, t_end in fault_marks(r):
                ax.axvline(t, color=color, linestyle="--", linewidth=1.2)
                if t_end is not None:
                    ax.axvspan(t, t_end, color=color, alpha=0.12)
        ax.set_title(cond, loc="left", fontsize=10)
        ax.set_ylabel("tasks/s")
        ax.set_ylim(bottom=0)
    axes[-1].set_xlabel("seconds since deploy (dashed line: fault injected)")
    _legend(axes[0])
    return to_svg(fig, "throughput")


def _legend(ax: Any) -> None:
    # One entry per label even when several runs drew the same topology.
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), loc="upper right", fontsize=8, frameon=False)


def cores_svg(results: Sequence[RunResult]) -> str | None:
    """CPU cores used per container over time, one panel per topology (its representative
    run), with the budget as a dotted line."""
    runs = [r for r in (representative(results, t) for t in TOPOLOGIES) if r and r.samples]
    if not runs:
        return None
    fig, axes = _figure(len(runs))
    for ax, r in zip(axes, runs):
        series = cpu_cores(r.samples, r.t_deploy)
        for name in sorted(series, key=short_name):
            ax.plot(*series[name], linewidth=1.1, label=short_name(name))
        top = max((max(ys, default=0.0) for _, ys in series.values()), default=0.0)
        if r.budget_cpus:
            ax.axhline(r.budget_cpus, color="#555555", linestyle=":", linewidth=1.2,
                       label="budget")
            top = max(top, r.budget_cpus)
        quotas = {c.cpus for c in r.containers if c.role == Role.WORKER}
        if len(quotas) == 1 and r.budget_cpus not in quotas:
            ax.axhline(quotas.pop(), color="#555555", linestyle="-.", linewidth=1.0,
                       label="worker quota")
        ax.set_ylim(0, top * 1.15 or 1)
        ax.set_title(f"{r.topology} ({condition(r)}, run {r.index + 1})", loc="left",
                     fontsize=10)
        ax.set_ylabel("cores")
        ax.legend(loc="upper right", fontsize=8, frameon=False, ncol=4)
    axes[-1].set_xlabel(f"seconds since deploy (rate over ≥ {CPU_WINDOW:g} s of cgroup CPU)")
    return to_svg(fig, "cores")


def core_spread_svg(results: Sequence[RunResult]) -> str | None:
    """Share of task attempts that ran on each CPU core, bars per topology."""
    counts = core_counts(results)
    if not counts:
        return None
    cores = sorted(set().union(*counts.values()))
    fig, (ax,) = _figure(1)
    width = 0.8 / len(counts)
    for k, (topology, c) in enumerate(counts.items()):
        total = sum(c.values())
        xs = [i + (k - (len(counts) - 1) / 2) * width for i in range(len(cores))]
        ax.bar(xs, [100 * c[core] / total for core in cores], width=width,
               color=COLORS[topology], label=f"{topology} ({total} attempts)")
    ax.set_xticks(range(len(cores)), [f"core {core}" for core in cores])
    ax.set_ylim(0, 125 * max(max(c.values()) / sum(c.values()) for c in counts.values()))
    ax.set_ylabel("% of task attempts")
    ax.set_title("where tasks ran (psutil cpu_num at the end of each task)", loc="left",
                 fontsize=10)
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    return to_svg(fig, "core-spread")


def memory_svg(results: Sequence[RunResult]) -> str | None:
    """Memory of each topology over time (sum over its containers), a line per no-fault run
    (every run when none was fault-free)."""
    runs = [r for r in measured(results) if r.samples]
    calm = [r for r in runs if r.fault is None] or runs
    if not calm:
        return None
    fig, (ax,) = _figure(1)
    for r in calm:
        ax.plot(*memory_total(r), color=COLORS[r.topology], linewidth=1.2, label=r.topology)
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("seconds since deploy")
    ax.set_title("memory per topology (cgroup usage − inactive file, summed)", loc="left",
                 fontsize=10)
    _legend(ax)
    return to_svg(fig, "memory")


PLOTS = (
    ("throughput", "Throughput over time", throughput_svg),
    ("cores", "CPU cores per container", cores_svg),
    ("core-spread", "Where tasks ran, per core", core_spread_svg),
    ("memory", "Memory over time", memory_svg),
)
