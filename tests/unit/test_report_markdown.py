"""The Markdown report: decision table, blast radius, method, manifest and provenance."""

from __future__ import annotations

import platform
from dataclasses import replace
from pathlib import Path

from topo import results
from topo.analysis import describe
from topo.analysis.build import from_comparison
from topo.analysis.verdict import better
from topo.model import (
    BlastRadius, Comparison, Fault, FigureRow, MultiSpec, Ratio, Resources, Scenario,
    SingleSpec, Spread, Workload,
)
from topo.report import markdown, sections
from topo.report.model import Provenance, Report

MIB = 1024 * 1024
SCENARIO = Scenario(
    name="demo",
    workload=Workload(task="cpu", tasks=100, params={"cpu_ms": 5}, seed=3),
    workers=4,
    resources=Resources(cpus=2.0, memory=1024 * MIB),
    single=SingleSpec(),
    multi=MultiSpec(),
    faults=(Fault(name="one worker dies", kind="kill-worker", at_fraction=0.3),),
    source="scenarios/demo.yaml",
    sha256="ab" * 32,
)
THROUGHPUT = FigureRow("throughput", "throughput (tasks/s)", "tasks/s",
                       Spread(20.0, 19.0, 21.0, 3), Spread(15.0, 14.0, 16.0, 3),
                       Ratio(0.75, 0.7, 0.8), True)
MEMORY = FigureRow("peak_memory", "peak memory (MiB)", "MiB", Spread(30.0, 29.0, 31.0, 3),
                   Spread(31.0, 28.0, 33.0, 3), Ratio(1.03, 0.9, 1.2), False)
STARTUP = FigureRow("startup_ready", "start-up to ready (s)", "s", Spread(0.5, 0.5, 0.5, 1),
                    Spread(2.0, 2.0, 2.0, 1), Ratio(4.0, None, None), False)
LOST = FigureRow("lost", "tasks lost", "tasks", Spread(0, 0, 0, 3), Spread(0, 0, 0, 3), None,
                 False)


def blast(topology: str, index: int, **kw: object) -> BlastRadius:
    base = dict(fault="one worker dies", kind="kill-worker", topology=topology, index=index,
                status="injected", workers=4, workers_affected=1, failed=0, lost=0,
                duplicated=0, retried=1, throughput_dip=0.25, time_to_detect=0.5,
                time_to_recover=2.0, survived=True)
    return BlastRadius(**{**base, **kw})  # type: ignore[arg-type]


def comparison(**kw: object) -> Comparison:
    base = dict(scenario=SCENARIO, runs=(), rows=(THROUGHPUT, MEMORY, STARTUP, LOST))
    return Comparison(**{**base, **kw})  # type: ignore[arg-type]


def model(provenance: Provenance | None = None, **kw: object) -> Report:
    """The report model of a hand-made comparison."""
    return from_comparison(comparison(**kw), provenance=provenance)


def test_decision_rows_keep_the_decision_figures_in_order_with_the_winner() -> None:
    rows = sections.decision_rows(model())
    assert rows == [
        ["throughput (tasks/s)", "20 (19–21)", "15 (14–16)", "0.75 (0.70–0.80)", "single"],
        ["peak memory (MiB)", "30 (29–31)", "31 (28–33)", "1.03 (0.90–1.20)",
         "no clear difference"],
        ["start-up to ready (s)", "0.500", "2", "4.00", "needs ≥ 2 repeats"],
    ]


def test_better_names_multi_when_a_lower_is_better_figure_is_lower_in_multi() -> None:
    row = replace(MEMORY, ratio=Ratio(0.5, 0.4, 0.6))
    assert better(row) == "multi"
    assert better(replace(MEMORY, higher_is_better=None, ratio=Ratio(0.5, 0.4, 0.6))) == "differs"
    assert better(LOST) == "—"


def test_blast_rows_summarise_repeats_per_fault_and_topology() -> None:
    runs = (blast("single", 0, workers_affected=4, failed=70, throughput_dip=1.0,
                  time_to_recover=None, survived=False),
            blast("multi", 0), blast("multi", 1, time_to_recover=None, time_to_detect=0.7))
    rows = sections.blast_rows(model(blast=runs))
    assert rows == [
        ["one worker dies", "single", "1", "4 of 4", "70", "0", "0", "100%", "0.500 s", "never",
         "—", "no"],  # a pool process dies: no container to come back
        ["one worker dies", "multi", "2", "1 of 4", "0", "0", "0", "25%",
         "0.600 (0.500–0.700) s", "never in 1 of 2 (2 s in the others)", "—", "2 of 2"],
    ]


def test_a_fault_that_was_not_injected_says_so() -> None:
    rows = sections.blast_rows(model(blast=(blast("single", 0, status="not-applicable"),)))
    assert rows[0][3] == "not injected (not-applicable)"
    assert set(rows[0][4:]) == {"—"}


def test_render_has_every_section_and_the_warnings() -> None:
    text = markdown.render(model(Provenance(image="topo-worker:abc"),
                                 blast=(blast("multi", 0),), warnings=("spread is high",)))
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == ["# topo report: demo", "## Decision", "### Blast radius per fault",
                        "### Warnings", "## Method", "## All figures",
                        "## Reproducibility manifest"]
    assert "- spread is high" in text
    assert "- throughput: single is 1.33× faster (95% CI 1.25–1.43)" in text
    assert "same image (topo-worker:abc)" in text
    assert text.endswith("Reproduce: `topo compare scenarios/demo.yaml`\n")
    assert "INCOMPLETE" not in text


def test_no_verdict_says_why() -> None:
    once = model(rows=(STARTUP,))
    assert "one run per topology" in once.no_verdict
    assert sections.verdicts(once) == [once.no_verdict]
    unclear = model(rows=(MEMORY,))
    assert unclear.no_verdict.startswith("No difference is significant at 95%")


def test_a_table_cell_with_a_pipe_does_not_break_the_table() -> None:
    assert markdown.table(("a",), [["x|y"]])[-1] == "| x\\|y |"


def test_manifest_names_what_was_not_recorded() -> None:
    facts = results.provenance({"host": {"engine": {"engine": "20.10", "api": "1.41"}}})
    pairs = dict(describe.manifest(SCENARIO, facts))
    assert pairs["Docker engine"] == "Docker 20.10 (API 1.41)"
    assert pairs["image"] == "not recorded"
    assert pairs["scenario sha256"] == "ab" * 32  # from the scenario when the file lacks it


DOCUMENT = {
    "schema": "topo.result", "version": 1, "topo_version": "0.1.0",
    "created": "2027-01-01T00:00:00Z", "complete": False,
    "scenario": {"name": "demo", "source": "s.yaml", "sha256": "cd" * 32},
    "host": {"hostname": "h", "python": "3.11.7", "cpus": 2,
             "engine": {"engine": "20.10.24", "api": "1.41", "cgroup_version": "2",
                        "cgroup_driver": "systemd", "kernel": "6.1", "os": "Debian",
                        "cpus": 2, "memory": 2 * 1024**3}},
}


def test_provenance_flattens_the_result_document() -> None:
    facts = results.provenance(DOCUMENT, cpu_model="Some CPU")
    assert facts == Provenance(
        scenario="demo", scenario_file="s.yaml", scenario_sha256="cd" * 32,
        image=None, engine="20.10.24", engine_api="1.41", kernel="6.1",
        cgroup="v2 (systemd)", os="Debian", host_cpus=2, host_memory=2 * 1024**3,
        cpu_model="Some CPU", hostname="h", python="3.11.7", topo_version="0.1.0",
        created="2027-01-01T00:00:00Z", complete=False,
    )


def test_local_cpu_model_only_on_the_host_that_measured(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Fast CPU @ 3GHz\nflags\t: fpu\n")
    here = {"host": {"hostname": platform.node()}}
    assert results.local_cpu_model(here, str(cpuinfo)) == "Fast CPU @ 3GHz"
    assert results.local_cpu_model({"host": {"hostname": "elsewhere"}}, str(cpuinfo)) is None
    assert results.local_cpu_model(here, str(tmp_path / "missing")) is None


def test_process_tree_lists_parents_first_with_peak_rss_and_pss() -> None:
    import dataclasses

    from topo.model import ProcSample, RunResult
    from topo.analysis.timelines import process_tree
    from topo.report.model import ProcessRow

    mib = 2**20
    procs = (
        ProcSample(1.0, "topo-ab-s0-single", 7, 1, "python3", 0.0, 17 * mib, pss=7 * mib),
        ProcSample(1.0, "topo-ab-s0-single", 1, 0, "python3", 0.0, 18 * mib, pss=16 * mib),
        ProcSample(2.0, "topo-ab-s0-single", 7, 1, "python3", 0.0, 19 * mib, pss=8 * mib),
    )
    base = RunResult("single", 0, False, "ok", None, 1, 0.0, 0.0, 0.0, 1.0, (), (), (), (),
                     processes=procs)
    faulty = dataclasses.replace(base, fault=object())  # type: ignore[arg-type]
    assert process_tree([faulty, base]) == (
        ProcessRow("single", "single", 1, 0, "python3", 18.0, 16.0),
        ProcessRow("single", "single", 7, 1, "python3", 19.0, 8.0),
    )
    assert process_tree([faulty]) == ()
