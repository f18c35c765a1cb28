"""The Kubernetes manifests `topo compare --out` writes: valid, with the limits that were
measured, and pods that really run the batch.

No cluster here: the second test plays the kubelet on the real engine. Each pod of the
manifests becomes one container made only from what the manifest says (image, command,
env with Kubernetes' $(VAR) expansion, the Secret, securityContext, limits, emptyDirs as
fresh host folders, /tmp in memory); the Redis Service becomes a network alias of its name
on an internal network (single: no network, as its deny-all policy). The agents must then
run every task exactly once, and name their event files after their pods.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from .conftest import ROOT

TASKS = 20
SMALL = f"""\
version: 1
name: k8s-out
workload: {{task: io, tasks: {TASKS}, params: {{ms: 5}}}}
workers: 2
resources: {{cpus: 1, memory: 256m}}
run: {{repeat: 1, timeout: 120s}}
"""
MIB = 1024 * 1024
LABEL = "topo-test.k8s"  # this module's containers and network, removed by it


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("k8s")
    (folder / "small.yaml").write_text(SMALL)
    p = subprocess.run([sys.executable, "-m", "topo.cli", "compare", str(folder / "small.yaml"),
                        "--out", str(folder / "out")], capture_output=True, text=True,
                       timeout=300, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return folder / "out"


def load(out: Path, topology: str) -> dict[str, dict[str, Any]]:
    docs = yaml.safe_load_all((out / "k8s" / f"{topology}.yaml").read_text())
    return {f"{d['kind']}/{d['metadata']['name'].rsplit('-', 1)[-1]}": d for d in docs if d}


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    return only  # type: ignore[no-any-return]


@pytest.mark.docker
def test_compare_out_writes_valid_manifests_with_the_measured_limits(out: Path) -> None:
    single, multi = load(out, "single"), load(out, "multi")
    for manifest in [*single.values(), *multi.values()]:
        kubernetes_validate.validate(manifest, "1.35", strict=True)
    # by hand: cpus 1 and 256 MiB over 2 workers; Redis and the feeder at topo's defaults
    expected = {("single", "Job/single"): ("1000m", "256Mi"),
                ("multi", "Deployment/worker"): ("500m", "128Mi"),
                ("multi", "Deployment/redis"): ("500m", "256Mi"),
                ("multi", "Job/feeder"): ("250m", "64Mi")}
    both = {"single": single, "multi": multi}
    for (topology, name), (cpu, memory) in expected.items():
        limits = container(both[topology][name])["resources"]["limits"]
        assert limits == {"cpu": cpu, "memory": memory}, name
    assert multi["Deployment/worker"]["spec"]["replicas"] == 2
    # the same figures the runs were deployed with, as result.json records them
    runs = json.loads((out / "result.json").read_text())["runs"]
    measured = {(r["topology"], c["role"]): (c["cpus"], c["memory"])
                for r in runs for c in r["containers"]}
    assert measured[("single", "single")] == (1.0, 256 * MIB)
    assert measured[("multi", "worker")] == (0.5, 128 * MIB)
    assert measured[("multi", "redis")] == (0.5, 256 * MIB)


# --------------------------------------------------------------------------- the kubelet's part


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of command and env values: $(NAME) of a variable defined
    before, $$ a literal $; anything else stays as written."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def pod_env(c: dict[str, Any], pod: str, password: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for var in c["env"]:
        if "value" in var:
            env[var["name"]] = expand(var["value"], env)
        elif "fieldRef" in var["valueFrom"]:
            assert var["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            env[var["name"]] = pod
        else:
            assert var["valueFrom"]["secretKeyRef"] == {"name": "topo-redis", "key": "password"}
            env[var["name"]] = password
    return env


def quantity(text: str) -> int:
    return int(text[:-2]) * MIB if text.endswith("Mi") else int(text)


class Kubelet:
    def __init__(self, client: Any, root: Path, tag: str) -> None:  # a docker.DockerClient
        self.client, self.root, self.tag = client, root, tag
        self.password = secrets.token_hex(16)

    def run(self, manifest: dict[str, Any], pod: str, network: str | None = None,
            alias: str | None = None) -> Path:
        """Start one pod of ``manifest`` named ``pod``; return the folder of its /run/topo."""
        c, spec = container(manifest), manifest["spec"]["template"]["spec"]
        volumes, tmpfs = {}, {}
        for mount in c["volumeMounts"]:
            volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
            if volume["emptyDir"].get("medium") == "Memory":
                tmpfs[mount["mountPath"]] = f"size={quantity(volume['emptyDir']['sizeLimit'])}"
                continue
            host = self.root / pod / mount["name"]
            host.mkdir(parents=True)
            host.chmod(0o777)  # as the kubelet makes an emptyDir
            volumes[str(host)] = {"bind": mount["mountPath"], "mode": "rw"}
        env = pod_env(c, pod, self.password)
        ctx, limits = c["securityContext"], c["resources"]["limits"]
        assert ctx["allowPrivilegeEscalation"] is False
        started = self.client.containers.run(
            c["image"], command=[expand(a, env) for a in c["command"]], name=pod, hostname=pod,
            detach=True, environment=env, labels={LABEL: self.tag},
            user=f"{ctx['runAsUser']}:{ctx['runAsGroup']}", read_only=ctx["readOnlyRootFilesystem"],
            cap_drop=ctx["capabilities"]["drop"], security_opt=["no-new-privileges"],
            nano_cpus=int(limits["cpu"][:-1]) * 1_000_000, mem_limit=quantity(limits["memory"]),
            volumes=volumes, tmpfs=tmpfs, network=network,
            network_mode=None if network else "none",
        )
        if alias and network:  # the Service: its name resolves to this pod
            net = self.client.networks.get(network)
            net.disconnect(started)
            net.connect(started, aliases=[alias])
        return self.root / pod / "run"

    def remove(self) -> None:
        for c in self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.tag}"}):
            c.remove(force=True)
        for n in self.client.networks.list(filters={"label": f"{LABEL}={self.tag}"}):
            n.remove()


@pytest.fixture
def kubelet(docker_client: Any, tmp_path: Path) -> Iterator[Kubelet]:
    k = Kubelet(docker_client, tmp_path, f"{os.getpid()}-{secrets.token_hex(3)}")
    try:
        yield k
    finally:
        k.remove()


def completed(events: list[Path], timeout: float = 90) -> list[dict[str, Any]]:
    """The ok task lines of the event folders, once TASKS of them are there."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line) for folder in events for f in folder.glob("*.jsonl")
                 for line in f.read_text().splitlines() if '"ev":"task"' in line]
        ok = [e for e in lines if e["ok"]]
        if len(ok) >= TASKS or time.monotonic() > deadline:
            return ok
        time.sleep(0.2)


@pytest.mark.docker
def test_the_single_job_runs_the_batch_as_its_manifest_says(out: Path, kubelet: Kubelet) -> None:
    job = load(out, "single")["Job/single"]
    pod = f"{job['metadata']['name']}-x{kubelet.tag[-6:]}"
    run = kubelet.run(job, pod)
    (run / "go").touch()  # kubectl exec job/... -- touch /run/topo/go
    done = completed([kubelet.root / pod / "events"])
    assert sorted(e["id"] for e in done) == list(range(TASKS))
    assert all(e["w"].startswith(pod) for e in done)  # $(POD_NAME) reached the agent


@pytest.mark.docker
def test_the_multi_pods_reach_redis_through_its_service_name(out: Path, kubelet: Kubelet) -> None:
    multi = load(out, "multi")
    service = multi["Service/redis"]["metadata"]["name"]
    network = f"k8s-test-{kubelet.tag}"
    kubelet.client.networks.create(network, internal=True, labels={LABEL: kubelet.tag})
    kubelet.run(multi["Deployment/redis"], f"{service}-r{kubelet.tag[-6:]}", network, service)
    worker = multi["Deployment/worker"]
    pods = [f"{worker['metadata']['name']}-{i}{kubelet.tag[-6:]}"
            for i in range(worker["spec"]["replicas"])]
    for pod in pods:
        kubelet.run(worker, pod, network)
    feeder = f"{multi['Job/feeder']['metadata']['name']}-f{kubelet.tag[-6:]}"
    (kubelet.run(multi["Job/feeder"], feeder, network) / "go").touch()
    done = completed([kubelet.root / pod / "events" for pod in pods])
    assert sorted(e["id"] for e in done) == list(range(TASKS))  # each once, none lost
    assert {e["w"].split("/")[0] for e in done} <= set(pods)
