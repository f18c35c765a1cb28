"""The HTML report: one self-contained file with four inline SVG plots; the plot series."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path

import pytest

from topo import results
from topo.analysis import build_report, timelines
from topo.model import FaultEvent, RunResult, Sample, TaskRecord
from topo.report import html
from topo.report.model import Plots, Report

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
PLOT_IDS = ("plot-throughput", "plot-cores", "plot-core-spread", "plot-memory")


@pytest.fixture(scope="module")
def small() -> Report:
    sc, runs, document = results.load(GOLDEN / "small.result.json")
    return build_report(sc, runs, results.provenance(document))


@pytest.fixture(scope="module")
def page(small: Report) -> str:
    return html.render(small)


def test_every_plot_is_an_inline_svg(page: str) -> None:
    for plot in PLOT_IDS:
        match = re.search(rf'<figure class="plot" id="{plot}"><svg [^>]*>', page)
        assert match, plot
    assert page.count("<svg ") == len(PLOT_IDS)
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page


def test_nothing_is_loaded_from_anywhere(page: str) -> None:
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page)
    assert "<link" not in page and "<script" not in page and "@import" not in page
    assert "url(http" not in page
    # Only the SVG and XLink namespaces, which are names, not addresses to fetch.
    assert set(re.findall(r"https?://[^\s\"']+", page)) <= {
        "http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink",
    }


def test_the_page_carries_the_decision_blast_radius_and_manifest(page: str) -> None:
    for heading in ("Decision", "Plots", "Method", "All figures", "Reproducibility manifest"):
        assert f"<h2>{heading}</h2>" in page
    assert "<h3>Blast radius per fault</h3>" in page
    assert '<td class="better-single">single</td>' in page


def test_the_same_results_give_the_same_page(small: Report, page: str) -> None:
    assert html.render(small) == page


def test_text_is_escaped(small: Report) -> None:
    hostile = dataclasses.replace(small, warnings=("<script>x</script>",))
    assert "&lt;script&gt;x&lt;/script&gt;" in html.render(hostile)


def test_a_result_without_runs_still_renders_with_a_note_per_plot(small: Report) -> None:
    page = html.render(dataclasses.replace(small, plots=Plots()))
    assert page.count("no data for this plot") == len(PLOT_IDS)
    assert timelines.plots([]) == Plots()


# --------------------------------------------------------------------------- series


def sample(t: float, cpu: float, container: str = "d-w0", memory: int = 0) -> Sample:
    return Sample(t=t, container=container, cpu=cpu, memory=memory)


def test_cpu_cores_is_the_derivative_over_at_least_the_window() -> None:
    series = [sample(t / 10, 0.05 * t) for t in range(11)]  # 0.5 cores for 1 s at 10 Hz
    xs, ys = timelines.cpu_cores(series, t0=0.0, window=0.5)["d-w0"]
    assert ys == pytest.approx([0.5] * 10)
    assert xs[0] == pytest.approx(0.05) and xs[-1] == pytest.approx(0.75)


def test_cpu_cores_never_goes_negative_when_a_counter_restarts() -> None:
    series = [sample(0.0, 1.0), sample(1.0, 2.0), sample(2.0, 0.1)]
    _, ys = timelines.cpu_cores(series, t0=0.0, window=0.5)["d-w0"]
    assert ys == [1.0, 0.0]


def run(**kw: object) -> RunResult:
    base = dict(topology="single", index=0, warmup=False, status="ok", error=None, task_count=4,
                t_deploy=100.0, t_ready=101.0, t_available=101.0, t_end=103.0, records=(),
                samples=(), workers=(), containers=())
    return RunResult(**{**base, **kw})  # type: ignore[arg-type]


def test_throughput_timeline_counts_completions_in_whole_buckets_since_deploy() -> None:
    # Available at 101 (1 s after deploy); completions 0.3, 0.4, 1.2 and 2.0 s later, so the
    # makespan is 2.0 s and a bucket 2.0 / 20 = 0.1 s wide: 20 whole buckets, one completion
    # (10/s) in the 4th, 5th and 13th; the last completion ends the last bucket, in none.
    records = tuple(TaskRecord(id=i, worker="c/1", ok=True, start=101.0, end=101.0 + t)
                    for i, t in enumerate((0.3, 0.4, 1.2, 2.0)))
    xs, ys = timelines.throughput_timeline(run(records=records))
    assert ys == pytest.approx([0.0] * 3 + [10.0] * 2 + [0.0] * 7 + [10.0] + [0.0] * 7)
    # bucket middles in seconds since deploy: 1.05, 1.15, ..., 2.95
    assert xs == pytest.approx([1.05 + 0.1 * i for i in range(20)])


def test_fault_marks_are_injected_events_in_seconds_since_deploy() -> None:
    events = (FaultEvent("p", "pause", "injected", 102.0, 104.5),
              FaultEvent("k", "kill-redis", "not-applicable", None))
    assert timelines.fault_marks(run(fault_events=events)) == [(2.0, 4.5)]


def test_memory_total_sums_the_containers_of_one_pass() -> None:
    samples = (sample(100.5, 0, "a", 10 * 2**20), sample(100.5, 0, "b", 5 * 2**20),
               sample(101.0, 0, "a", 12 * 2**20))
    assert timelines.memory_total(run(samples=samples)) == ([0.5, 1.0], [15.0, 12.0])


def test_core_counts_skip_warmups_and_unknown_cores() -> None:
    records = tuple(TaskRecord(id=i, worker="c/1", ok=True, start=0, end=1, core=core)
                    for i, core in enumerate((0, 1, 1, None)))
    counts = timelines.core_counts([run(records=records), run(records=records, warmup=True)])
    assert counts == {"single": Counter({1: 2, 0: 1})}
