"""The Docker stats API fallback, used when a container's cgroup files cannot be read."""

from __future__ import annotations

from topo.runtime.base import RawStats
from topo.runtime.docker import stats_from_api


def test_cgroup_v1_document() -> None:
    doc = {
        "cpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000},
                      "throttling_data": {"throttled_periods": 7, "throttled_time": 300_000_000}},
        "memory_stats": {"usage": 50 * 2**20, "stats": {"total_inactive_file": 10 * 2**20}},
        "pids_stats": {"current": 5},
    }
    assert stats_from_api(doc) == RawStats(cpu=2.5, memory=40 * 2**20, throttled_periods=7,
                                           throttled=0.3, pids=5)


def test_cgroup_v2_document_and_a_stopped_container() -> None:
    doc = {"cpu_stats": {"cpu_usage": {"total_usage": 1_000_000_000}},
           "memory_stats": {"usage": 8 * 2**20, "stats": {"inactive_file": 2**20}}}
    assert stats_from_api(doc) == RawStats(cpu=1.0, memory=7 * 2**20)
    # what the engine returns for a container that is not running
    assert stats_from_api({"cpu_stats": {"cpu_usage": {}}, "memory_stats": {}}) is None
