"""How long turning raw runs into reports takes for a big batch: 20,000 tasks × 64 workers.

No Docker: the runs are synthetic (every task completes; samples at 10 Hz, process telemetry
at 1 Hz, 3 repeats per topology and one fault run each). Prints the median of a few rounds of

- build: the figures, rows, blast radii, verdict, plots' series and process tree
  (``topo.analysis.build_report``);
- text reports: build + table, Markdown and JSON (no HTML: drawing SVG is matplotlib's time);
- all figures: everything any report shows, the HTML's plots included (the same as build
  here; before topo/analysis, ``stats.compare`` plus what the reports computed themselves).

    .venv/bin/python benchmarks/report_model.py [--root DIR] [--rounds N]

``--root`` measures another checkout of topo (one from before topo/analysis existed too, via
its ``topo.stats.compare``), so a change can be compared with what it replaced on one machine.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

TASKS, WORKERS, REPEAT = 20_000, 64, 3
SERVICE = 0.02  # s per task
MIB = 1024 * 1024


def synthetic_runs(model: Any) -> tuple[Any, list[Any]]:
    kill = model.Fault(name="one worker dies", kind="kill-worker", at_fraction=0.5)
    sc = model.Scenario(name="big", workload=model.Workload(task="cpu", tasks=TASKS),
                        workers=WORKERS, resources=model.Resources(cpus=2.0, memory=4096 * MIB),
                        single=model.SingleSpec(), multi=model.MultiSpec(), faults=(kill,))
    runs = []
    for index in range(REPEAT + 1):
        fault = kill if index == REPEAT else None
        for topology in ("single", "multi"):
            runs.append(one_run(model, topology, index, fault))
    return sc, runs


def one_run(model: Any, topology: str, index: int, fault: Any) -> Any:
    t0 = 1.0
    names = ["s"] if topology == "single" else [f"w{i}" for i in range(WORKERS)]
    role = "single" if topology == "single" else "worker"
    containers = [model.ContainerSpec(name=n, role=role, command=("x",), cpus=2.0 / len(names),
                                      memory=64 * MIB) for n in names]
    def worker(i: int) -> str:
        return f"s/{10 + i % WORKERS}" if topology == "single" else f"w{i % WORKERS}/1"

    per_slot = TASKS // WORKERS
    records = tuple(
        model.TaskRecord(id=i, worker=worker(i), ok=True, start=t0 + (i // WORKERS) * SERVICE,
                         end=t0 + (i // WORKERS + 1) * SERVICE, cpu=SERVICE / 2, core=i % 2)
        for i in range(TASKS))
    end = t0 + (per_slot + 1) * SERVICE
    passes = [t0 + k / 10 for k in range(int((end - t0) * 10) + 2)]
    samples = tuple(model.Sample(t, n, (t - t0) * 2.0 / len(names), (30 + k % 5) * MIB)
                    for k, t in enumerate(passes) for n in names)
    processes = tuple(model.ProcSample(t, names[p % len(names)], 10 + p, 1, "python3", t - t0,
                                       20 * MIB, pss=10 * MIB)
                      for t in passes[::10] for p in range(WORKERS))
    workers = tuple(model.WorkerInfo(worker(i), worker(i).split("/")[0], t0, 2, 2, None)
                    for i in range(WORKERS))
    events = (model.FaultEvent(fault.name, fault.kind, "injected", (t0 + end) / 2,
                               target=worker(0)),) if fault else ()
    return model.RunResult(topology, index, False, "ok", None, TASKS, 0.0, t0, t0, end, records,
                           samples, workers, tuple(containers), budget_cpus=2.0,
                           budget_memory=4096 * MIB, fault=fault, fault_events=events,
                           processes=processes)


def stages(sc: Any, runs: list[Any]) -> dict[str, Callable[[], object]]:
    report = importlib.import_module("topo.report")
    try:
        build_report = importlib.import_module("topo.analysis").build_report

        def text() -> object:
            model = build_report(sc, runs)
            return [report.render(model, fmt) for fmt in ("table", "md", "json")]

        return {"build": lambda: build_report(sc, runs), "text reports": text,
                "all figures": lambda: build_report(sc, runs)}
    except ModuleNotFoundError:  # a checkout from before topo/analysis
        stats = importlib.import_module("topo.stats")

        def old_text() -> object:
            comparison = stats.compare(sc, runs)
            return [report.render(comparison, fmt, results=runs, provenance={})
                    for fmt in ("table", "md", "json")]

        return {"build": lambda: stats.compare(sc, runs), "text reports": old_text,
                "all figures": lambda: old_figures(sc, runs)}


def old_figures(sc: Any, runs: list[Any]) -> object:
    """What the reports of a checkout from before topo/analysis computed besides
    ``stats.compare``: the verdict (table, Markdown and HTML each decided it), the process
    tree and the plots' series (as its plots module drew them: a timeline twice per run)."""
    stats = importlib.import_module("topo.stats")
    decide = importlib.import_module("topo.verdict").decide
    markdown = importlib.import_module("topo.report.markdown")
    plots = importlib.import_module("topo.report.plots")
    comparison = stats.compare(sc, runs)
    verdicts = [decide(comparison) for _ in range(3)]
    tree = markdown.process_tree(runs)
    timelines = [plots.throughput_timeline(r) for r in plots.measured(runs) for _ in range(2)]
    cores = [plots.cpu_cores(r.samples, r.t_deploy)
             for r in (plots.representative(runs, t) for t in ("single", "multi")) if r]
    memory = [plots.memory_total(r) for r in plots.measured(runs) if r.fault is None]
    return verdicts, tree, timelines, cores, memory, plots.core_counts(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(args.root))
    model = importlib.import_module("topo.model")
    sc, runs = synthetic_runs(model)
    print(f"{args.root}: {TASKS} tasks × {WORKERS} workers, {len(runs)} runs")
    for name, stage in stages(sc, runs).items():
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            stage()
            times.append(time.perf_counter() - start)
        print(f"{name:13} median {statistics.median(times):6.2f} s"
              f" (min {min(times):.2f}, max {max(times):.2f}, {args.rounds} rounds)")


if __name__ == "__main__":
    main()
