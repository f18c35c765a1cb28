"""A team's own queue library (Celery, RQ, dramatiq): scenario fields, plans, image wheels."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from topo import images
from topo import plan as planning
from topo.agent.protocol import AgentConfig
from topo.errors import ScenarioError
from topo.model import ContainerSpec, MultiSpec, Resources, Scenario, SingleSpec, Workload
from topo.scenario import load

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
HEAD = "name: peers\nworkload: {task: noop}\nworkers: 2\ntopologies:\n"


def _load(tmp_path: Path, topologies: str) -> Scenario:
    path = tmp_path / "peers.yaml"
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(topologies), "  "))
    return load(path)


def _error(tmp_path: Path, topologies: str) -> str:
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, topologies)
    return str(info.value)


def test_celery_fields_are_read(tmp_path: Path) -> None:
    sc = _load(tmp_path, "multi: {queue: celery, acks_late: true, visibility_timeout: 5s}\n")
    assert sc.multi == MultiSpec(queue="celery", acks_late=True, visibility_timeout=5.0)
    assert sc.peers == ("celery",)


def test_defaults_are_celerys_own_early_ack_and_no_timeout_override(tmp_path: Path) -> None:
    sc = _load(tmp_path, "multi: {queue: celery}\n")
    assert sc.multi is not None and not sc.multi.acks_late and sc.multi.visibility_timeout is None


@pytest.mark.parametrize("topologies, expected", [
    ("multi: {queue: rq}\n", ("rq",)),
    ("multi: {queue: dramatiq}\n", ("dramatiq",)),
    ("multi: {queue: reliable}\n", ()),
    ("single: {pool: celery-prefork}\n", ("celery",)),
    ("single: {pool: celery-prefork}\nmulti: {queue: rq}\n", ("celery", "rq")),
    ("single: {pool: mp-pool}\nmulti: {queue: simple}\n", ()),
])
def test_peers_name_every_library_the_image_needs(tmp_path: Path, topologies: str,
                                                  expected: tuple[str, ...]) -> None:
    assert _load(tmp_path, topologies).peers == expected


@pytest.mark.parametrize("topologies, expected", [
    ("multi:\n  queue: rq\n  acks_late: true\n",
     "peers.yaml:7: topologies.multi.acks_late: applies to queue: celery only (queue is rq)"),
    ("multi:\n  visibility_timeout: 10s\n",
     "peers.yaml:6: topologies.multi.visibility_timeout: applies to queue: celery only (queue is reliable)"),
    ("multi:\n  queue: celery\n  acks_late: late\n",
     "peers.yaml:7: topologies.multi.acks_late: must be true or false, got 'late' (a string)"),
    ("multi:\n  queue: celery\n  visibility_timeout: 0s\n",
     "peers.yaml:7: topologies.multi.visibility_timeout: must be longer than 0s, got '0s' (a string)"),
    ("multi:\n  queue: celeri\n",
     "peers.yaml:6: topologies.multi.queue: must be one of reliable, simple, celery, rq, dramatiq; "
     "got 'celeri' (a string) (did you mean 'celery'?)"),
    ("single:\n  pool: celery-prefork\n  preload: true\n",
     "peers.yaml:7: topologies.single.preload: celery-prefork always imports the task module "
     "before forking; leave preload out"),
])
def test_bad_peer_fields_give_one_located_line(tmp_path: Path, topologies: str, expected: str) -> None:
    # the file is named as it was given: here, by its full path
    assert _error(tmp_path, topologies) == f"{tmp_path}/{expected}"


def _scenario(single: SingleSpec | None, multi: MultiSpec | None) -> Scenario:
    return Scenario(name="p", workload=Workload(task="noop", tasks=10), workers=3,
                    resources=Resources(cpus=1.5, memory=3 * 2**30), single=single, multi=multi)


def _config(c: ContainerSpec) -> AgentConfig:
    """What the container's agent reads: its configuration as the agent parses it."""
    return AgentConfig.from_json(c.env["TOPO_CONFIG"])


def test_multi_peer_runs_the_library_worker_and_producer() -> None:
    sc = _scenario(None, MultiSpec(queue="dramatiq", prefetch=4))
    p = planning.plan(sc, "multi", "r1", "topo-r1-m0", "img", "pw")
    roles = [c.role for c in p.containers]
    assert roles == ["redis", "worker", "worker", "worker", "feeder"]
    workers = [c for c in p.containers if c.role == "worker"]
    assert {c.command for c in workers} == {("python3", "-m", "topo.agent.peer", "worker")}
    feeder = p.containers[-1]
    assert feeder.command == ("python3", "-m", "topo.agent.peer", "feed")
    assert _config(workers[0]).queue == "dramatiq" and _config(feeder).queue == "dramatiq"
    # acknowledgement settings are Celery's: no other library's agent is handed them
    assert json.loads(workers[0].env["TOPO_CONFIG"]).keys().isdisjoint(
        {"acks_late", "visibility_timeout"})
    assert workers[0].cpus == pytest.approx(0.5) and workers[0].memory == 2**30


def test_topos_own_queue_keeps_its_own_agents() -> None:
    p = planning.plan(_scenario(None, MultiSpec()), "multi", "r1", "topo-r1-m0", "img", "pw")
    assert {c.command[2] for c in p.containers if c.role in ("worker", "feeder")} == {
        "topo.agent.worker", "topo.agent.queue"}


def test_celery_prefork_is_one_worker_container_with_its_own_redis() -> None:
    sc = _scenario(SingleSpec(pool="celery-prefork"),
                   MultiSpec(queue="celery", acks_late=True, visibility_timeout=7.0))
    p = planning.plan(sc, "single", "r1", "topo-r1-s0", "img", "pw")
    assert [c.role for c in p.containers] == ["redis", "single", "feeder"]
    assert p.network == "topo-r1-s0"  # the worker reaches its broker
    single = p.containers[1]
    assert (single.cpus, single.memory, single.processes) == (1.5, 3 * 2**30, 3)
    cfg = _config(single)
    assert (cfg.pool, cfg.processes, cfg.queue) == ("celery-prefork", 3, "celery")
    # the same acknowledgement settings as the multi side, so the two differ in layout only
    assert (cfg.acks_late, cfg.visibility_timeout) == (True, 7.0)
    assert cfg.redis_host == "topo-r1-s0-redis" and single.env["TOPO_REDIS_PASSWORD"] == "pw"


def test_celery_prefork_next_to_another_queue_keeps_celerys_defaults() -> None:
    sc = _scenario(SingleSpec(pool="celery-prefork"), MultiSpec(queue="reliable"))
    cfg = _config(planning.plan(sc, "single", "r1", "topo-r1-s0", "img", "pw").containers[1])
    assert (cfg.acks_late, cfg.visibility_timeout) == (False, None)


def test_multi_celery_workers_and_feeder_get_the_acknowledgement_settings() -> None:
    sc = _scenario(None, MultiSpec(queue="celery", acks_late=True, visibility_timeout=2.5))
    p = planning.plan(sc, "multi", "r1", "topo-r1-m0", "img", "pw")
    cfgs = [_config(c) for c in p.containers if c.role in ("worker", "feeder")]
    assert len(cfgs) == 4  # 3 workers and the feeder
    assert {(c.queue, c.acks_late, c.visibility_timeout) for c in cfgs} == {("celery", True, 2.5)}


def test_wheels_wanted_adds_the_pinned_library() -> None:
    facts = images.ImageFacts(python="3.11.2", machine="x86_64", packages={"redis": "4"})
    assert images.wheels_wanted(facts, ()) == ()  # topo's own agents need none
    assert images.wheels_wanted(facts, ("celery", "rq")) == ("celery[redis]==5.7.0", "rq==3.0.0")


def test_redis_commands_are_counted_without_the_harness_own() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import peers  # benchmarks/peers.py
    finally:
        sys.path.remove(str(BENCHMARKS))
    info = ("# Commandstats\r\ncmdstat_brpop:calls=7,usec=1,usec_per_call=0.1\r\n"
            "cmdstat_info:calls=1,usec=3\r\ncmdstat_lpush:calls=5,usec=2\r\n"
            "cmdstat_auth:calls=2,usec=1\r\ncmdstat_config|resetstat:calls=1,usec=1\r\n")
    assert peers.count_commands(info) == 12


def _recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, container: str, tasks: int,
              queue: str) -> tuple[AgentConfig, Any]:
    """A library worker's Recorder writing into ``tmp_path/events``, as in a container."""
    from topo.agent import common, peer, protocol

    (tmp_path / "events").mkdir()
    monkeypatch.setattr(common, "RUN_DIR", str(tmp_path))
    cfg = AgentConfig(container=container, task="noop", params={}, seed=1, tasks=tasks,
                      queue=protocol.QueueKind(queue), redis_host="h")
    return cfg, peer.Recorder(cfg)


def test_the_peer_recorder_writes_protocol_lines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a library's task wrapper writes is read back by the harness's own decoder: the
    lines a peer worker emits are protocol events, not free-form dicts."""
    from topo.agent import peer, protocol

    cfg, rec = _recorder(tmp_path, monkeypatch, "c0", 3, "rq")
    rec.expect(1)
    rec.ready()
    for task_id in (2, 0):
        rec.record(task_id)
    (path,) = (tmp_path / "events").iterdir()
    events = [protocol.decode(line) for line in path.read_bytes().splitlines()]
    assert [type(e).__name__ for e in events] == ["Expect", "Ready", "Task", "Task"]
    tasks = [e for e in events if isinstance(e, protocol.Task)]
    assert [(t.id, t.ok, t.worker) for t in tasks] == [(2, True, f"c0/{os.getpid()}"),
                                                       (0, True, f"c0/{os.getpid()}")]
    monkeypatch.setenv("TOPO_REDIS_PASSWORD", "pw")
    assert peer.broker_url(cfg) == "redis://:pw@h:6379/0"


def test_scenario_peers_names_the_libraries_whether_kinds_or_plain_names() -> None:
    # a MultiSpec built in code may carry the plain name, as the integration tests' do
    assert _scenario(None, MultiSpec(queue="rq")).peers == ("rq",)
    assert _scenario(SingleSpec(pool="celery-prefork"), MultiSpec(queue="dramatiq")).peers == (
        "celery", "dramatiq")


def test_a_library_redelivery_is_a_retry_in_the_ledger_and_marks_no_worker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Celery delivers task 4 again (its kombu ``redelivered`` mark): the wrapper says so
    with a requeue line, which the harness's reader counts as one re-delivery and which the
    blast radius takes as a sign of the fault without blaming the worker it ran on."""
    from topo.analysis.blast import blast_radius
    from topo.events import EventLog

    from tests.unit.test_blast import KILL, MULTI_SPECS, TF, Batch, injected, run

    _, rec = _recorder(tmp_path, monkeypatch, "m-w0", 6, "celery")
    rec.record(3)
    rec.redelivered(4, "celery")  # task 4's first delivery died with another worker
    rec.record(4)
    log = EventLog(tmp_path / "events", task_count=6)
    log.poll()
    # hand count: one line said "delivered again", for task 4, from the library
    assert log.requeues == 1
    assert [(s.kind, s.container, s.detail) for s in log.signals] == [("requeue", "celery", "4")]
    # In a run where nothing else happened after the fault, that line is the whole blast:
    # one retry, detected when it came back, and no worker hit (m-w0 ran it, it held nothing).
    batch = Batch()
    for worker in ("m-w0/1", "m-w1/1"):
        batch.ticks(worker, range(1, 101))
    # the line's own time is now; the hand-built batch runs 0-10 s: move it to 1 s after tf
    signals = tuple(dataclasses.replace(s, t=TF + 1.0) for s in log.signals)
    r = run(batch, KILL, injected(KILL, None), topology="multi", containers=MULTI_SPECS,
            signals=signals, retried=log.requeues)
    radius = blast_radius(r, 2)
    assert (radius.retried, radius.workers_affected) == (1, 0)
    assert radius.time_to_detect == pytest.approx(1.0)
    # the same line naming the worker it ran on would have blamed that worker
    blamed = tuple(dataclasses.replace(s, container="m-w0") for s in signals)
    assert blast_radius(dataclasses.replace(r, signals=blamed), 2).workers_affected == 1
