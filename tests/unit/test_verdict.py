"""The verdict every report opens with: hand-made comparisons, sentences written by hand."""

from __future__ import annotations

import dataclasses

from topo.model import (
    BlastRadius, Comparison, Fault, FigureRow, Ledger, MultiSpec, Ratio, RedisSpec, Resources,
    RunFigures, Scenario, SingleSpec, Spread, Workload,
)
from topo.analysis.build import from_comparison
from topo.analysis.verdict import decide
from topo.report.model import Verdict

KILL = Fault(name="one worker dies", kind="kill-worker", at_fraction=0.5)
SCENARIO = Scenario(
    name="hand", workload=Workload(task="etl", tasks=300), workers=4,
    resources=Resources(cpus=2.0, memory=1024**3), single=SingleSpec(), multi=MultiSpec(),
)


def row(key: str, ratio: Ratio | None, single: float = 1.0, multi: float = 1.0,
        higher: bool | None = False) -> FigureRow:
    return FigureRow(key, key, "", Spread(single, single, single, 3),
                     Spread(multi, multi, multi, 3), ratio, higher)


def throughput(ratio: Ratio | None) -> FigureRow:
    return row("throughput", ratio, higher=True)


def blast(topology: str, failed: int = 0, lost: int = 0, recover: float | None = 0.1,
          dip: float | None = 0.4, status: str = "injected", duplicated: int = 0,
          kind: str = "kill-worker", fault: str = "one worker dies") -> BlastRadius:
    return BlastRadius(
        fault=fault, kind=kind, topology=topology, index=0, status=status,  # type: ignore[arg-type]
        workers=4, workers_affected=1, failed=failed, lost=lost, duplicated=duplicated,
        retried=0, throughput_dip=dip, time_to_detect=0.02, time_to_recover=recover,
        survived=failed + lost == 0)


def verdict(*rows: FigureRow, blast: tuple[BlastRadius, ...] = (),
            scenario: Scenario = SCENARIO) -> Verdict:
    if blast and not scenario.faults:
        scenario = dataclasses.replace(scenario, faults=(KILL,))
    return decide(Comparison(scenario, (), rows, (), blast))


def test_a_significant_speed_difference_names_the_faster_topology():
    v = verdict(throughput(Ratio(1.12, 1.05, 1.19)))
    assert v.text == "Multi is 1.12× faster (95% CI 1.05–1.19)."
    assert v.significant
    assert v.findings[0].figures == (("ratio", 1.12), ("ci_low", 1.05), ("ci_high", 1.19))


def test_single_faster_turns_the_factor_and_its_interval_round():
    # multi/single = 0.8 (0.75–0.85): single is 1/0.8 = 1.25× faster, CI 1/0.85–1/0.75.
    v = verdict(throughput(Ratio(0.8, 0.75, 0.85)))
    assert v.text == "Single is 1.25× faster (95% CI 1.18–1.33)."


def test_nothing_significant_says_so():
    v = verdict(throughput(Ratio(1.02, 0.95, 1.10)),
                row("peak_memory", Ratio(1.05, 0.9, 1.2), 100, 105),
                row("cpu_per_task", Ratio(0.98, 0.9, 1.1), 60, 59))
    assert v.text == ("No significant difference in speed, memory or CPU per task (every 95%"
                      " interval includes 1; throughput multi/single 1.02, 95% CI 0.95–1.10).")
    assert not v.significant


def test_without_repeats_no_difference_is_called():
    v = verdict(throughput(Ratio(1.5, None, None)), row("peak_memory", Ratio(2.6, None, None)))
    assert v.text == ("No difference can be called: one run per topology gives no confidence"
                      " interval (set run.repeat ≥ 3).")


def test_memory_is_named_only_when_significant_and_speed_always_spoken_of():
    v = verdict(throughput(Ratio(1.02, 0.95, 1.10)),
                row("peak_memory", Ratio(2.6, 2.4, 2.8), single=34.9, multi=90.7))
    assert v.text == ("Neither is significantly faster (throughput multi/single 1.02, 95% CI"
                      " 0.95–1.10); single uses 2.6× less memory (peak 35 vs 91 MiB;"
                      " 95% CI 2.4–2.8).")
    assert v.significant


def test_cpu_per_task_when_multi_spends_less():
    # multi/single = 0.8: multi spends 1.25× less, 50 vs 62.5 ms
    v = verdict(throughput(Ratio(1.12, 1.05, 1.19)),
                row("cpu_per_task", Ratio(0.8, 0.7, 0.9), single=62.5, multi=50.0))
    assert v.text == ("Multi is 1.12× faster (95% CI 1.05–1.19); multi spends 1.25× less CPU"
                      " per task (50 vs 62 ms; 95% CI 1.11–1.43).")


def test_blast_radius_with_losses_in_one_topology_only():
    v = verdict(throughput(Ratio(1.12, 1.05, 1.19)),
                row("peak_memory", Ratio(2.6, 2.4, 2.8), single=35, multi=91),
                blast=(blast("single", failed=279, dip=1.0, recover=None),
                       blast("multi", recover=0.1)))
    assert v.text == ("Multi is 1.12× faster (95% CI 1.05–1.19); single uses 2.6× less memory"
                      " (peak 35 vs 91 MiB; 95% CI 2.4–2.8); when one worker dies, single fails"
                      " 279 tasks, multi loses none (recovers in 0.1 s).")
    fault = v.findings[-1]
    assert fault.key == "fault:one worker dies"
    assert fault.figures == (("single_damage", 279.0), ("multi_damage", 0.0))
    assert fault.significant


def test_blast_radius_without_losses_says_neither_loses():
    v = verdict(throughput(Ratio(1.0, 0.9, 1.1)),
                blast=(blast("single", recover=0.5), blast("multi", recover=None)))
    assert v.findings[-1].sentence == (
        "when one worker dies, neither loses a task (single recovers in 0.5 s;"
        " multi never recovers its rate)")


def test_blast_radius_runs_that_overlap_are_not_called_a_difference():
    runs = (blast("single", failed=3), blast("single", lost=0), blast("single", failed=5),
            blast("multi", lost=2), blast("multi"), blast("multi"), blast("multi", duplicated=1))
    finding = verdict(throughput(Ratio(1.0, 0.9, 1.1)), blast=runs).findings[-1]
    # single: failed 3, 0, 5 -> median 3; lost all 0. multi: lost 2, 0, 0, 0 -> median 0.
    assert finding.sentence == ("when one worker dies, single fails 3 tasks in 2 of 3 runs,"
                                " multi loses none (recovers in 0.1 s), but the runs overlap:"
                                " no clear difference")
    assert not finding.significant


def test_a_fault_only_multi_can_suffer_names_the_redis_setting():
    everysec = dataclasses.replace(
        SCENARIO, multi=MultiSpec(redis=RedisSpec(appendonly="everysec")),
        faults=(Fault(name="kill-redis", kind="kill-redis", at_fraction=0.3),))
    runs = (blast("single", status="not-applicable", kind="kill-redis", fault="kill-redis"),
            blast("multi", lost=12, kind="kill-redis", fault="kill-redis"))
    v = verdict(throughput(Ratio(1.0, 0.9, 1.1)), blast=runs, scenario=everysec)
    assert v.findings[-1].sentence == "when Redis dies (appendonly everysec), multi loses 12 tasks"


def test_no_fault_no_blast_sentence_and_a_fault_injected_nowhere_is_silent():
    assert [f.key for f in verdict(throughput(Ratio(1.12, 1.05, 1.19))).findings] == ["throughput"]
    missed = (blast("single", status="not-reached"), blast("multi", status="failed"))
    v = verdict(throughput(Ratio(1.12, 1.05, 1.19)), blast=missed)
    assert [f.key for f in v.findings] == ["throughput"]


def test_runs_disturbed_by_the_host_qualify_the_verdict():
    def run(topology: str, outside: float | None) -> RunFigures:
        return RunFigures(topology=topology, index=0, status="ok",  # type: ignore[arg-type]
                          ledger=Ledger(10, 10, 0, 0, 0, 0), makespan=1.0, throughput=10.0,
                          steady_rate=None, startup_ready=None, startup_first=None,
                          cpu_workers=1.0, cpu_coordination=0.0, task_cpu=1.0, mean_cores=1.0,
                          utilisation=0.5, cpu_per_task=0.1, peak_memory=0, containers=(),
                          outside_cores=outside)

    # 0.3 cores outside the run is the threshold of stats' "host was busy" warning
    runs = (run("single", 0.05), run("multi", 0.9), run("single", None), run("multi", 0.31))
    v = decide(Comparison(SCENARIO, runs, (throughput(Ratio(0.54, 0.35, 0.65)),)))
    assert v.text == ("Single is 1.85× faster (95% CI 1.54–2.86); but 2 of 4 runs were disturbed"
                      " by other work on the host (see the warnings): rerun on a quiet machine"
                      " before quoting the speed.")
    quiet = decide(Comparison(SCENARIO, runs[:1], (throughput(Ratio(0.54, 0.35, 0.65)),)))
    assert quiet.text == "Single is 1.85× faster (95% CI 1.54–2.86)."


def test_one_topology_only_gives_no_verdict():
    assert verdict(throughput(None)).text == "No verdict: no figure was measured in both topologies."


# --------------------------------------------------------------------------- reports


def test_every_report_opens_with_the_same_verdict():
    from topo.report import html, markdown, table

    comparison = Comparison(dataclasses.replace(SCENARIO, faults=(KILL,)), (),
                            (throughput(Ratio(1.12, 1.05, 1.19)),), (),
                            (blast("single", failed=279, dip=1.0, recover=None), blast("multi")))
    words = ("Multi is 1.12× faster (95% CI 1.05–1.19); when one worker dies, single fails 279"
             " tasks, multi loses none (recovers in 0.1 s).")
    model = from_comparison(comparison)
    md = markdown.render(model)
    assert md.startswith(f"# topo report: hand\n\n**Verdict:** {words}\n")
    page = html.render(model)
    body = page.split("<main>\n", 1)[1]
    assert body.startswith("<h1>topo report: hand</h1>\n<p class=\"verdict\" id=\"verdict\">"
                           f"<strong>Verdict:</strong> {words}</p>")
    text = table.render(model)
    assert " ".join(text.split("\n\n", 1)[0].split()) == f"verdict: {words}"


def test_the_blast_tables_say_which_redis_durability_was_measured():
    from topo.report import markdown, table

    fault = Fault(name="kill-redis", kind="kill-redis", at_fraction=0.3)
    sc = dataclasses.replace(SCENARIO, multi=MultiSpec(redis=RedisSpec(appendonly="always")),
                             faults=(fault,))
    comparison = Comparison(sc, (), (throughput(Ratio(1.0, 0.9, 1.1)),), (),
                            (blast("multi", lost=3, kind="kill-redis", fault="kill-redis"),))
    assert "\nkill-redis (appendonly always)  " in table.render(from_comparison(comparison))
    assert "| kill-redis (appendonly always) | multi |" in markdown.render(from_comparison(comparison))
