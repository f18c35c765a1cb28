"""The HTML report's plots: the report model's series, drawn as inline SVG strings.

matplotlib is used through ``matplotlib.figure.Figure`` with no pyplot, so no GUI backend
(and no global figure state) is ever involved; the SVG backend embeds glyphs as paths, so
the SVG needs no font. The series come computed (``topo.analysis.timelines``).
"""

from __future__ import annotations

import io
from typing import Any

from topo.report.model import Plots

COLORS = {"single": "#1f77b4", "multi": "#d95f02"}
CPU_WINDOW = 0.5  # seconds: the span timelines.cpu_cores rates over, as the axis says
WIDTH = 9.5  # inches
PANEL = 2.3  # inches per panel


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


def throughput_svg(plots: Plots) -> str | None:
    """Completions per second over time, one panel per fault condition, a line per run;
    a vertical line where each fault was injected (a band for its duration)."""
    if not plots.throughput:
        return None
    fig, axes = _figure(len(plots.throughput))
    for ax, (cond, lines) in zip(axes, plots.throughput):
        for line in lines:
            color = COLORS[line.topology]
            ax.plot(line.xs, line.ys, color=color, linewidth=1.4, label=line.label)
            for t, t_end in line.marks:
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


def cores_svg(plots: Plots) -> str | None:
    """CPU cores used per container over time, one panel per topology (its representative
    run), with the budget as a dotted line."""
    if not plots.cores:
        return None
    fig, axes = _figure(len(plots.cores))
    for ax, panel in zip(axes, plots.cores):
        for line in panel.lines:
            ax.plot(line.xs, line.ys, linewidth=1.1, label=line.label)
        if panel.budget is not None:
            ax.axhline(panel.budget, color="#555555", linestyle=":", linewidth=1.2,
                       label="budget")
        if panel.quota is not None:
            ax.axhline(panel.quota, color="#555555", linestyle="-.", linewidth=1.0,
                       label="worker quota")
        ax.set_ylim(0, panel.top)
        ax.set_title(panel.title, loc="left", fontsize=10)
        ax.set_ylabel("cores")
        ax.legend(loc="upper right", fontsize=8, frameon=False, ncol=4)
    axes[-1].set_xlabel(f"seconds since deploy (rate over ≥ {CPU_WINDOW:g} s of cgroup CPU)")
    return to_svg(fig, "cores")


def core_spread_svg(plots: Plots) -> str | None:
    """Share of task attempts that ran on each CPU core, bars per topology."""
    if not plots.core_shares:
        return None
    fig, (ax,) = _figure(1)
    bars = len(plots.core_shares)
    width = 0.8 / bars
    for k, share in enumerate(plots.core_shares):
        xs = [i + (k - (bars - 1) / 2) * width for i in range(len(plots.core_ids))]
        ax.bar(xs, share.shares, width=width, color=COLORS[share.topology],
               label=f"{share.topology} ({share.attempts} attempts)")
    ax.set_xticks(range(len(plots.core_ids)), [f"core {core}" for core in plots.core_ids])
    ax.set_ylim(0, plots.core_top)
    ax.set_ylabel("% of task attempts")
    ax.set_title("where tasks ran (the task thread's CPU at the end of each task)", loc="left",
                 fontsize=10)
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    return to_svg(fig, "core-spread")


def memory_svg(plots: Plots) -> str | None:
    """Memory of each topology over time (sum over its containers), a line per no-fault run
    (every run when none was fault-free)."""
    if not plots.memory:
        return None
    fig, (ax,) = _figure(1)
    for line in plots.memory:
        ax.plot(line.xs, line.ys, color=COLORS[line.topology], linewidth=1.2, label=line.label)
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
