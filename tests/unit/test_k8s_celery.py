"""single with Celery's prefork pool as Kubernetes manifests: Celery needs its broker, so the
single topology gets multi's shape (Redis Deployment and Service, the feeder Job, network
policies) with ONE worker Deployment of one replica running the whole pool on the single
budget; validated against the Kubernetes schemas offline."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.unit.test_k8s import (
    MIB, PASSWORD, VERSIONS, _config, _selects, by_name, container, validate,
)
from topo import k8s
from topo import plan as planning
from topo.agent.protocol import PoolKind
from topo.model import MultiSpec, RedisSpec, Resources, RunSpec, Scenario, SingleSpec, Workload

# 4 processes on 2 CPUs and 1 GiB: the single budget the limits are checked against by hand;
# Redis 0.5 CPU and 128 MiB from the multi section (the plan gives single the same Redis).
PREFORK = Scenario(
    name="prefork",
    workload=Workload(task="cpu", tasks=40),
    workers=4,
    resources=Resources(cpus=2.0, memory=1024 * MIB),
    single=SingleSpec(pool=PoolKind.CELERY_PREFORK),
    multi=MultiSpec(redis=RedisSpec(cpus=0.5, memory=128 * MIB)),
    run=RunSpec(repeat=1),
)


def _render() -> tuple[str, list[dict[str, Any]]]:
    plan = planning.plan(PREFORK, "single", "r1", "topo-r1-s0", "topo-worker:abc", PASSWORD)
    text = k8s.render(plan, PREFORK)
    return text, [d for d in yaml.safe_load_all(text) if d]


@pytest.mark.parametrize("version", VERSIONS)
def test_prefork_single_has_its_broker_and_passes_the_schemas(version: str) -> None:
    _, manifests = _render()
    assert sorted(f"{d['kind']}/{d['metadata']['name']}" for d in manifests) == [
        "Deployment/topo-r1-s0-redis", "Deployment/topo-r1-s0-single",
        "Job/topo-r1-s0-feeder", "NetworkPolicy/topo-r1-s0-clients-egress",
        "NetworkPolicy/topo-r1-s0-deny-all", "NetworkPolicy/topo-r1-s0-redis-ingress",
        "Service/topo-r1-s0-redis"]
    for manifest in manifests:
        validate(manifest, version)


def test_one_replica_runs_the_whole_pool_on_the_single_budget() -> None:
    _, manifests = _render()
    objects = by_name(manifests)
    single = objects["Deployment/topo-r1-s0-single"]
    assert single["spec"]["replicas"] == 1
    worker = container(single)
    assert worker["resources"]["limits"] == {"cpu": "2000m", "memory": "1024Mi"}
    assert worker["resources"]["requests"] == worker["resources"]["limits"]
    cfg = json.loads(_config(worker))
    # the Celery worker's --concurrency (topo.agent.peer_celery.concurrency reads processes)
    assert (cfg["pool"], cfg["processes"], cfg["queue"]) == ("celery-prefork", 4, "celery")
    service = objects["Service/topo-r1-s0-redis"]
    assert cfg["redis_host"] == service["metadata"]["name"]
    assert container(objects["Deployment/topo-r1-s0-redis"])["resources"]["limits"] == {
        "cpu": "500m", "memory": "128Mi"}
    env = {e["name"]: e for e in worker["env"]}
    assert env["TOPO_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == k8s.SECRET


def test_only_the_worker_and_the_feeder_may_reach_redis() -> None:
    text, manifests = _render()
    assert PASSWORD not in text
    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
            for d in manifests if d["kind"] in ("Deployment", "Job")}
    policies = [d["spec"] for d in manifests if d["kind"] == "NetworkPolicy"]
    redis = pods["topo-r1-s0-redis"]
    allowed = {name for name, labels in pods.items()
               for p in policies if _selects(p["podSelector"], redis)
               for rule in p.get("ingress", []) for peer in rule["from"]
               if _selects(peer["podSelector"], labels)}
    assert allowed == {"topo-r1-s0-single", "topo-r1-s0-feeder"}


def test_the_header_says_how_to_start_it() -> None:
    text, _ = _render()
    assert "celery --concurrency 4" in text
    assert f"kubectl create secret generic {k8s.SECRET}" in text
    assert "kubectl exec job/topo-r1-s0-feeder -- touch /run/topo/go" in text
