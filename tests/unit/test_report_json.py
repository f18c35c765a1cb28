"""The ``topo.comparison`` JSON document for scripts."""

from __future__ import annotations

import json

from topo.model import Ratio
from topo.report import json as json_report

from topo.report.model import Provenance

from .test_report_markdown import LOST, THROUGHPUT, blast, model


def test_the_document_is_versioned_and_keyed_by_figure() -> None:
    doc = json.loads(json_report.render(model(blast=(blast("multi", 0),))))
    assert (doc["schema"], doc["version"], doc["complete"]) == ("topo.comparison", 1, True)
    assert list(doc["figures"]) == ["throughput", "peak_memory", "startup_ready", "lost"]
    assert doc["figures"]["throughput"] == {
        "label": "throughput (tasks/s)", "unit": "tasks/s", "higher_is_better": True,
        # a Spread built by hand, without mean, stddev or values: null and []
        "single": {"median": 20.0, "min": 19.0, "max": 21.0, "n": 3,
                   "mean": None, "stddev": None, "values": []},
        "multi": {"median": 15.0, "min": 14.0, "max": 16.0, "n": 3,
                  "mean": None, "stddev": None, "values": []},
        "ratio": {"value": 0.75, "ci_low": 0.7, "ci_high": 0.8, "significant": True},
        "verdict": "throughput: single is 1.33× faster (95% CI 1.25–1.43)",
    }
    assert doc["figures"]["lost"]["ratio"] is None


def test_blast_radius_is_one_entry_per_fault_run_with_its_share() -> None:
    doc = json.loads(json_report.render(model(blast=(blast("multi", 0),))))
    (entry,) = doc["blast_radius"]
    assert entry["fault"] == "one worker dies" and entry["topology"] == "multi"
    assert entry["workers_affected"] == 1 and entry["share_affected"] == 0.25
    assert entry["time_to_recover"] == 2.0 and entry["survived"] is True


def test_scenario_and_provenance_are_carried() -> None:
    doc = json.loads(json_report.render(model(Provenance(complete=False, engine="20.10"),
                                              rows=(THROUGHPUT, LOST))))
    assert doc["complete"] is False and doc["provenance"]["engine"] == "20.10"
    assert doc["scenario"]["faults"] == ["one worker dies"]
    assert doc["scenario"]["budget"] == {"cpus": 2.0, "memory": 1024 * 1024 * 1024}


def test_a_ratio_without_interval_is_not_significant() -> None:
    row = THROUGHPUT.__class__(**{**THROUGHPUT.__dict__, "ratio": Ratio(0.75, None, None)})
    doc = json.loads(json_report.render(model(rows=(row,))))
    assert doc["figures"]["throughput"]["ratio"] == {
        "value": 0.75, "ci_low": None, "ci_high": None, "significant": False}
    assert doc["figures"]["throughput"]["verdict"] is None
