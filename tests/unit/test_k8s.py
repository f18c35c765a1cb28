"""Kubernetes manifests of a plan: valid against the Kubernetes schemas (offline, the schemas
ship with kubernetes-validate), the budget split as the plan splits it, the runtime's
hardening, no password, and network policies that let only the workers and feeder reach Redis."""

from __future__ import annotations

import copy
import json
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.unit.test_compose import PASSWORD, SCENARIO, make_plan, started_by_runtime
from topo import k8s
from topo import plan as planning
from topo.model import MultiSpec, RedisSpec, Resources, RunSpec, Scenario, SingleSpec, Workload

MIB = 1024 * 1024
# Recent Kubernetes releases; kubernetes-validate>=1.35 (the test extras) ships their schemas.
VERSIONS = ("1.31", "1.35")
# cpus 2.0, 1 GiB, 4 workers: the sample the limits below are computed from by hand.
FOUR = Scenario(
    name="four",
    workload=Workload(task="cpu", tasks=40),
    workers=4,
    resources=Resources(cpus=2.0, memory=1024 * MIB),
    single=SingleSpec(),
    multi=MultiSpec(redis=RedisSpec(cpus=0.5, memory=128 * MIB)),
    run=RunSpec(repeat=1),
)


def docs(scenario: Scenario, topology: str, **kw: Any) -> list[dict[str, Any]]:
    plan = planning.plan(scenario, topology, "r1", f"topo-r1-{topology[0]}0",  # type: ignore[arg-type]
                         "topo-worker:abc", PASSWORD, **kw)
    return [d for d in yaml.safe_load_all(k8s.render(plan, scenario)) if d]


def by_name(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in manifests}


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    return only  # type: ignore[no-any-return]


def validate(manifest: dict[str, Any], version: str) -> None:
    # strict: the schemas that refuse fields Kubernetes does not know (kubectl would too)
    kubernetes_validate.validate(manifest, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("topology", ["single", "multi"])
def test_every_manifest_passes_the_kubernetes_schemas(topology: str, version: str) -> None:
    manifests = docs(SCENARIO, topology)
    kinds = sorted(d["kind"] for d in manifests)
    expected = (["Job", "NetworkPolicy"] if topology == "single" else
                ["Deployment", "Deployment", "Job", "NetworkPolicy", "NetworkPolicy",
                 "NetworkPolicy", "Service"])
    assert kinds == expected
    for manifest in manifests:
        validate(manifest, version)


@pytest.mark.parametrize("broken", ["unknown field", "wrong type", "missing selector"])
def test_a_broken_manifest_fails_the_validator(broken: str) -> None:
    workers = copy.deepcopy(by_name(docs(FOUR, "multi"))["Deployment/topo-r1-m0-worker"])
    validate(workers, VERSIONS[-1])  # as generated: valid
    if broken == "unknown field":
        container(workers)["memoryLimit"] = "256Mi"
    elif broken == "wrong type":
        workers["spec"]["replicas"] = "4"
    else:
        del workers["spec"]["selector"]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(workers, VERSIONS[-1])


def test_limits_are_the_budget_split_as_the_plan_splits_it() -> None:
    multi = by_name(docs(FOUR, "multi"))
    single = by_name(docs(FOUR, "single"))
    # by hand: 2.0 CPUs / 4 = 500m, 1024 Mi / 4 = 256 Mi; Redis and the feeder their own
    expected = {
        "Deployment/topo-r1-m0-worker": ("500m", "256Mi"),
        "Deployment/topo-r1-m0-redis": ("500m", "128Mi"),
        "Job/topo-r1-m0-feeder": ("250m", "64Mi"),
    }
    for name, (cpu, memory) in expected.items():
        resources = container(multi[name])["resources"]
        assert resources["limits"] == {"cpu": cpu, "memory": memory}, name
        assert resources["requests"] == resources["limits"], name  # Guaranteed QoS
    assert multi["Deployment/topo-r1-m0-worker"]["spec"]["replicas"] == 4
    assert multi["Deployment/topo-r1-m0-redis"]["spec"]["replicas"] == 1
    job = container(single["Job/topo-r1-s0-single"])
    assert job["resources"]["limits"] == {"cpu": "2000m", "memory": "1024Mi"}
    assert json.loads(_config(job))["processes"] == 4


def test_a_budget_that_does_not_divide_keeps_exact_bytes_and_rounds_to_a_millicore() -> None:
    # 1.0 CPU and 1,000,000,000 bytes over 3: 333.33m -> 333m; 1e9 // 3 = 333333333 bytes,
    # which is no whole number of Mi, so it stays in bytes (what Docker was given).
    odd = Scenario(name="odd", workload=Workload(task="noop", tasks=3), workers=3,
                   resources=Resources(cpus=1.0, memory=1_000_000_000),
                   single=SingleSpec(), multi=MultiSpec())
    text = k8s.render(planning.plan(odd, "multi", "r1", "topo-r1-m0", "img", ""), odd)
    workers = by_name([d for d in yaml.safe_load_all(text) if d])["Deployment/topo-r1-m0-worker"]
    assert container(workers)["resources"]["limits"] == {"cpu": "333m", "memory": "333333333"}
    assert "0.333333333 -> 333m" in text  # the header says it was rounded


def test_hardening_is_what_the_runtime_starts_every_container_with() -> None:
    for topology in ("single", "multi"):
        plan = make_plan(topology)
        for started in started_by_runtime(plan).values():
            # what topo.runtime.docker passes, translated by hand to the pod's fields
            assert started["user"] == "10001:10001"
            assert started["cap_drop"] == ["ALL"]
            assert started["security_opt"] == ["no-new-privileges"]
            assert started["read_only"] is True
            assert started["tmpfs"] == {"/tmp": "rw,nosuid,nodev,size=64m"}
        for manifest in docs(SCENARIO, topology):
            if "template" not in manifest.get("spec", {}):
                continue
            pod = manifest["spec"]["template"]["spec"]
            ctx = container(manifest)["securityContext"]
            assert (ctx["runAsUser"], ctx["runAsGroup"], ctx["runAsNonRoot"]) == (10001, 10001, True)
            assert ctx["capabilities"] == {"drop": ["ALL"]}
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
            assert pod["automountServiceAccountToken"] is False
            tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
            assert tmp["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}


def _config(c: dict[str, Any], pod: str = "pod-1") -> str:
    """TOPO_CONFIG as the container sees it, expanded by Kubernetes' rules: $(POD_NAME) is
    the pod's name, $$ a single $."""
    value = next(e["value"] for e in c["env"] if e["name"] == "TOPO_CONFIG")
    return str(value).replace("$(POD_NAME)", pod).replace("$$", "$")


def test_the_configuration_reaches_the_agents_as_the_runtime_gives_it() -> None:
    plan = make_plan("multi")
    started = started_by_runtime(plan)
    workers = container(by_name(docs(SCENARIO, "multi"))["Deployment/topo-r1-m0-worker"])
    given = json.loads(started["topo-r1-m0-w0"]["environment"]["TOPO_CONFIG"])
    seen = json.loads(_config(workers, pod="topo-r1-m0-worker-abc12"))
    assert seen == {**given, "container": "topo-r1-m0-worker-abc12"}
    assert seen["params"] == {"pattern": "$HOME ${X}"}  # the scenario's $ reach the task as is
    env = [e["name"] for e in workers["env"]]
    assert env.index("POD_NAME") < env.index("TOPO_CONFIG")  # defined before it is referenced


def test_the_password_comes_from_a_secret_and_never_appears() -> None:
    for topology in ("single", "multi"):
        plan = planning.plan(SCENARIO, topology, "r1", "topo-r1-x0", "img", PASSWORD)
        assert PASSWORD not in k8s.render(plan, SCENARIO)
    multi = by_name(docs(SCENARIO, "multi"))
    ref = {"secretKeyRef": {"name": "topo-redis", "key": "password"}}
    for name in ("Deployment/topo-r1-m0-redis", "Deployment/topo-r1-m0-worker",
                 "Job/topo-r1-m0-feeder"):
        env = {e["name"]: e for e in container(multi[name])["env"]}
        assert env["TOPO_REDIS_PASSWORD"] == {"name": "TOPO_REDIS_PASSWORD", "valueFrom": ref}
    command = container(multi["Deployment/topo-r1-m0-redis"])["command"]
    assert command[command.index("--requirepass") + 1] == "$(TOPO_REDIS_PASSWORD)"


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and In expressions) against pod labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    return all(e["operator"] == "In" and labels.get(e["key"]) in e["values"]
               for e in selector.get("matchExpressions", []))


def test_only_the_workers_and_the_feeder_may_reach_redis() -> None:
    manifests = docs(SCENARIO, "multi")
    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
            for d in manifests if d["kind"] in ("Deployment", "Job")}
    policies = [d["spec"] for d in manifests if d["kind"] == "NetworkPolicy"]
    # every pod is under a policy that denies both ways unless another allows
    for labels in pods.values():
        assert any(_selects(p["podSelector"], labels) and not p.get("ingress")
                   and not p.get("egress") and p["policyTypes"] == ["Ingress", "Egress"]
                   for p in policies)
    redis = pods["topo-r1-m0-redis"]
    allowed = {name for name, labels in pods.items()
               for p in policies if _selects(p["podSelector"], redis)
               for rule in p.get("ingress", []) for peer in rule["from"]
               if _selects(peer["podSelector"], labels)}
    assert allowed == {"topo-r1-m0-worker", "topo-r1-m0-feeder"}
    egress = {name for name, labels in pods.items() for p in policies
              if _selects(p["podSelector"], labels) and p.get("egress")}
    assert egress == {"topo-r1-m0-worker", "topo-r1-m0-feeder"}  # not Redis itself
    service = by_name(manifests)["Service/topo-r1-m0-redis"]
    assert _selects({"matchLabels": service["spec"]["selector"]}, redis)
    cfg = json.loads(_config(container(by_name(manifests)["Deployment/topo-r1-m0-worker"])))
    assert cfg["redis_host"] == service["metadata"]["name"]  # the name the workers look up


def test_single_has_one_pod_and_no_network_access() -> None:
    manifests = docs(SCENARIO, "single")
    (policy,) = [d["spec"] for d in manifests if d["kind"] == "NetworkPolicy"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in policy and "egress" not in policy
    (job,) = [d for d in manifests if d["kind"] == "Job"]
    assert _selects(policy["podSelector"], job["spec"]["template"]["metadata"]["labels"])
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"  # as measured: "no"
    assert job["spec"]["backoffLimit"] == 0


def test_data_comes_from_a_read_only_claim_at_the_same_path(tmp_path: Any) -> None:
    from dataclasses import replace

    sc = replace(FOUR, workload=replace(FOUR.workload, data=str(tmp_path)))
    for d in docs(sc, "multi"):
        if d["kind"] not in ("Deployment", "Job"):
            continue
        mounts = {m["name"]: m for m in container(d)["volumeMounts"]}
        volumes = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
        if d["metadata"]["name"].endswith("-worker"):  # workers only, as Docker mounts it
            assert mounts["data"] == {"name": "data", "mountPath": "/data", "readOnly": True}
            assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "topo-data",
                                                                "readOnly": True}
        else:
            assert "data" not in mounts
    assert str(tmp_path) not in k8s.render(
        planning.plan(sc, "multi", "r1", "topo-r1-m0", "img", ""), sc)


def test_a_label_value_kubernetes_refuses_becomes_an_annotation() -> None:
    (policy, job) = docs(SCENARIO, "single", owner="host:4242:1700000000.5")
    for manifest in (policy, job):
        assert "topo.owner" not in manifest["metadata"]["labels"]
        assert manifest["metadata"]["annotations"] == {"topo.owner": "host:4242:1700000000.5"}
        validate(manifest, VERSIONS[-1])


def test_a_durable_redis_keeps_its_file_in_a_volume_of_the_pod_and_says_so() -> None:
    from dataclasses import replace

    durable = replace(FOUR, multi=MultiSpec(redis=RedisSpec(appendonly="everysec")))
    plan = planning.plan(durable, "multi", "r1", "topo-r1-m0", "img", "")
    redis = container(by_name(docs(durable, "multi"))["Deployment/topo-r1-m0-redis"])
    command = redis["command"]
    assert command[command.index("--dir") + 1] == "/run/topo/redis"  # redis_command's REDIS_DIR
    assert {"name": "redis", "mountPath": "/run/topo/redis"} in redis["volumeMounts"]
    assert "not a move of the pod" in k8s.render(plan, durable).replace("\n# ", " ")
    assert "append-only" not in k8s.render(make_plan("multi"), SCENARIO)  # appendonly: no


def test_the_single_job_ends_with_its_batch() -> None:
    """topo's own single agent stays after its batch for the harness's last cgroup reading;
    a Job's pod has no harness to wait for: its configuration has no linger."""
    plan = make_plan("single")
    given = json.loads(started_by_runtime(plan)["topo-r1-s0-single"]["environment"]["TOPO_CONFIG"])
    assert given["linger"] > 0
    (job,) = [m for m in docs(SCENARIO, "single") if m["kind"] == "Job"]
    seen = json.loads(_config(container(job), pod="topo-r1-s0-single-abc12"))
    assert "linger" not in seen
    assert seen == {k: v for k, v in given.items() if k != "linger"} | {"container": seen["container"]}
