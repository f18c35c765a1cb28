"""Reports of a Comparison, one module per format; each returns a string, none writes files.

- ``table``: the terminal table;
- ``markdown``: decision table, method and reproducibility manifest, for a design review;
- ``html``: the same plus plots, as ONE self-contained file (inline CSS and SVG);
- ``json``: the comparison for scripts (schema ``topo.comparison``, version 1);
- ``diff``: two saved comparisons figure by figure, and ``--fail-if`` thresholds.

``provenance`` turns a result file's document into the flat facts every report shows; the
CLI (the only place that writes files) calls ``render`` or ``files``.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from topo.model import Comparison, RunResult, TopologyPlan

FORMATS = ("table", "md", "html", "json")
INCOMPLETE = "INCOMPLETE"
INCOMPLETE_NOTE = (
    "the result file is partial (complete: false): the comparison was interrupted or is still"
    " running, so these figures cover only the runs it holds"
)
CPUINFO = "/proc/cpuinfo"


def render(
    comparison: Comparison,
    fmt: str,
    *,
    results: Sequence[RunResult] = (),
    provenance: Mapping[str, Any] | None = None,
    color: bool = False,
) -> str:
    """The report of ``comparison`` in ``fmt`` (one of FORMATS); ValueError for another.

    ``results`` are the raw runs (the HTML plots need them); ``provenance`` comes from
    ``provenance()``. ``color`` allows ANSI codes (table only), so the caller decides
    whether the output is a terminal.
    """
    facts = dict(provenance or {})
    if fmt == "table":
        from topo.report import table

        marker = ""
        if facts.get("complete") is False:
            marker = _paint(f"{INCOMPLETE}: {INCOMPLETE_NOTE}", color) + "\n\n"
        return marker + table.render(comparison)
    if fmt == "md":
        from topo.report import markdown

        return markdown.render(comparison, facts, results)
    if fmt == "html":
        from topo.report import html

        return html.render(comparison, results, facts)
    if fmt == "json":
        from topo.report import json

        return json.render(comparison, facts)
    raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _paint(text: str, color: bool) -> str:
    return f"\033[1;31m{text}\033[0m" if color else text


def files(
    comparison: Comparison,
    results: Sequence[RunResult],
    provenance: Mapping[str, Any],
    plans: Iterable[TopologyPlan],
) -> dict[str, str]:
    """Every file a comparison leaves for a design review: relative name -> content.

    report.md, report.html and, per plan, compose/<topology>.yaml (docker compose /
    docker-compose), compose/<topology>.stack.yaml (docker stack deploy, which refuses
    some of the limits; see topo.compose) and k8s/<topology>.yaml (Kubernetes; see
    topo.k8s). The caller writes them.
    """
    from topo import compose, k8s
    from topo.report import html, markdown

    out = {
        "report.md": markdown.render(comparison, provenance, results),
        "report.html": html.render(comparison, results, provenance),
    }
    for plan in plans:
        out[f"compose/{plan.topology}.yaml"] = compose.render(plan, comparison.scenario)
        out[f"compose/{plan.topology}.stack.yaml"] = compose.render(
            plan, comparison.scenario, swarm=True
        )
        out[f"k8s/{plan.topology}.yaml"] = k8s.render(plan, comparison.scenario)
    return out


def provenance(document: Mapping[str, Any], cpu_model: str | None = None) -> dict[str, Any]:
    """The facts of where and how a result was measured, from a result file's document
    (``topo.results.load``'s third value). Values are str, int, bool or None (not recorded).

    ``cpu_model`` fills in the CPU when the file does not record it (see
    ``local_cpu_model``); a recorded ``host.cpu_model`` wins.
    """
    host = document.get("host") or {}
    engine = host.get("engine") or {}
    scenario = document.get("scenario") or {}
    cgroup = engine.get("cgroup_version")
    return {
        "scenario": scenario.get("name"),
        "scenario_file": scenario.get("source") or None,
        "scenario_sha256": scenario.get("sha256") or None,
        "image": host.get("image"),
        "engine": engine.get("engine"),
        "engine_api": engine.get("api"),
        "kernel": engine.get("kernel"),
        "cgroup": f"v{cgroup} ({engine.get('cgroup_driver')})" if cgroup else None,
        "os": engine.get("os"),
        "host_cpus": engine.get("cpus") or host.get("cpus"),
        "host_memory": engine.get("memory"),
        "cpu_model": host.get("cpu_model") or cpu_model,
        "hostname": host.get("hostname"),
        "python": host.get("python"),
        "topo_version": document.get("topo_version"),
        "created": document.get("created"),
        "complete": bool(document.get("complete", True)),
    }


def local_cpu_model(document: Mapping[str, Any], cpuinfo: str = CPUINFO) -> str | None:
    """The CPU model from /proc/cpuinfo, only when this is the host that measured the result
    (same hostname): anywhere else it would describe the wrong machine."""
    host = document.get("host") or {}
    if host.get("hostname") != platform.node():
        return None
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        return None
    return None
