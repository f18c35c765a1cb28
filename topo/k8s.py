"""A TopologyPlan as Kubernetes manifests, so the measured set-up can be adopted on a cluster.

Built from the same plan the Docker runtime deploys, never from copied numbers:

- single: a Job of one pod that runs the N worker processes. A Job, not a Deployment: the
  single agent runs the batch and exits, and a Deployment would start it again for good.
- multi: the workers as a Deployment with N replicas (queue consumers that serve until they
  are stopped), Redis as a Deployment and a Service named as the workers' configuration
  names it, and the feeder as a Job (it puts the batch on the queue once and exits).
- single with Celery's prefork pool: Celery needs its broker, so multi's shape with ONE
  worker Deployment of one replica (``celery worker --concurrency N`` with the single
  budget) in place of the N workers: a consumer too, it serves until it is stopped.

Every container gets the plan's CPU and memory as limits AND requests (Guaranteed QoS: the
scheduler reserves the budget that was measured), and the hardening topo's containers get
(uid/gid 10001, non-root, read-only root, all capabilities dropped, no privilege
escalation, seccomp RuntimeDefault, /tmp in memory), plus no service-account token. The
Redis password is read from a Secret the user creates; it is never in the manifest.
NetworkPolicies deny everything, then let the workers and the feeder reach Redis (and the
cluster DNS that resolves its Service name); single gets no network access, as measured.

The configuration stays in ``env`` rather than a ConfigMap: each replica's configuration
carries its own pod name (``$(POD_NAME)``), which Kubernetes expands in ``env`` values only.

Pure: it returns text and deploys nothing.
"""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any, Mapping

import yaml

import topo
from topo.agent.protocol import StrKind
from topo.defaults import MIB, TMPFS_SIZE
from topo.model import CONTAINER_UID, ContainerSpec, Scenario, TopologyPlan
from topo.plan import DEPLOYMENT, REDIS_DIR, RUN_DIR

Manifest = dict[str, Any]

ROLE = "topo.role"
SECRET = "topo-redis"  # the Secret the user creates, key "password"
SECRET_KEY = "password"
PASSWORD_ENV = "TOPO_REDIS_PASSWORD"
PASSWORD_REF = f"$({PASSWORD_ENV})"  # expanded by Kubernetes in command and env
POD_NAME_ENV = "POD_NAME"
DATA_CLAIM = "topo-data"  # the PersistentVolumeClaim the user provides when there is data
TMP_SIZE = f"{TMPFS_SIZE['/tmp'] // MIB}Mi"  # as the runtime's tmpfs
REDIS_PORT = 6379
EVENTS_DIR = f"{RUN_DIR}/events"
CLIENTS = ("worker", "single", "feeder")  # the roles that talk to Redis (single: Celery prefork)
# A label value (Kubernetes' own rule); a plan label that breaks it becomes an annotation.
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# Docker's restart policy -> (a Job's restartPolicy, its backoffLimit or None to keep the default)
JOB_RESTART = {"no": ("Never", 0), "on-failure": ("OnFailure", None),
               "always": ("OnFailure", None), "unless-stopped": ("OnFailure", None)}


class _Dumper(yaml.SafeDumper):
    """Safe YAML that writes topo's kinds (roles, pool kinds: str enums) as their strings."""


_Dumper.add_multi_representer(StrKind, lambda d, v: d.represent_str(str(v.value)))


def render(plan: TopologyPlan, scenario: Scenario) -> str:
    """The manifests of ``plan`` (a deployment of ``scenario``) as one multi-document YAML
    text, opened by a comment that says what was measured and how to apply it."""
    docs = "".join("---\n" + yaml.dump(m, Dumper=_Dumper, sort_keys=False, width=1000)
                   for m in manifests(plan))
    return _header(plan, scenario) + docs


def manifests(plan: TopologyPlan) -> list[Manifest]:
    """The Kubernetes objects of ``plan``, in the order ``kubectl apply`` should create them."""
    name = plan.labels.get(DEPLOYMENT, plan.run_id)
    deny = _policy(f"{name}-deny-all", {"matchLabels": {DEPLOYMENT: name}}, plan)
    by_role: dict[str, ContainerSpec] = {c.role: c for c in plan.containers}  # the workers are identical but for name
    if "redis" not in by_role:  # single: its own pool, no broker, no network
        return [deny, _job(by_role["single"], plan)]
    # multi's N workers, or single's one Celery worker that consumes from Redis as they do
    workers = [c for c in plan.containers if c.role in ("worker", "single")]
    redis = by_role["redis"]
    return [
        deny,
        *_redis_policies(name, plan),
        _service(redis, plan),
        _deployment(redis, plan, replicas=1),
        _deployment(workers[0], plan, replicas=len(workers)),
        _job(by_role["feeder"], plan),
    ]


# --------------------------------------------------------------------------- workloads


def _job(spec: ContainerSpec, plan: TopologyPlan) -> Manifest:
    policy, backoff = JOB_RESTART.get(spec.restart, ("Never", 0))
    body: Manifest = {} if backoff is None else {"backoffLimit": backoff}
    body["template"] = _pod(spec, plan, policy)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": _metadata(_object_name(spec, plan), spec.labels), "spec": body}


def _deployment(spec: ContainerSpec, plan: TopologyPlan, replicas: int) -> Manifest:
    # A Deployment's pods always restart: Docker's "on-failure" and "always" both map here.
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(_object_name(spec, plan), spec.labels),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": _selector(plan, spec.role)},
            "template": _pod(spec, plan, "Always"),
        },
    }


def _service(redis: ContainerSpec, plan: TopologyPlan) -> Manifest:
    # Named as the workers' configuration names Redis (redis_host), so it resolves as is.
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(redis.name, redis.labels),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(plan, "redis"),
            "ports": [{"name": "redis", "port": REDIS_PORT, "targetPort": REDIS_PORT,
                       "protocol": "TCP"}],
        },
    }


def _object_name(spec: ContainerSpec, plan: TopologyPlan) -> str:
    # The N workers are one Deployment: named after the role, not after worker 0.
    if spec.role == "worker":
        return f"{plan.labels.get(DEPLOYMENT, plan.run_id)}-worker"
    return spec.name


def _pod(spec: ContainerSpec, plan: TopologyPlan, restart: str) -> Manifest:
    volumes: list[Manifest] = [
        {"name": "run", "emptyDir": {}},
        {"name": "events", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": TMP_SIZE}},
    ]
    if spec.role == "redis":  # where a durable Redis keeps its append-only file
        volumes.append({"name": "redis", "emptyDir": {}})
    volumes += [{"name": f"data{_suffix(i)}",
                 "persistentVolumeClaim": {"claimName": f"{DATA_CLAIM}{_suffix(i)}",
                                           "readOnly": m.read_only}}
                for i, m in enumerate(spec.mounts)]
    return {
        "metadata": {"labels": {**_labels(spec.labels), **_selector(plan, spec.role)}},
        "spec": {
            "restartPolicy": restart,
            "automountServiceAccountToken": False,  # the agents never call the API
            "enableServiceLinks": False,  # the environment as measured, no service variables
            "securityContext": {"runAsNonRoot": True, "runAsUser": CONTAINER_UID,
                                "runAsGroup": CONTAINER_UID,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [_container(spec, plan)],
            "volumes": volumes,
        },
    }


def _container(spec: ContainerSpec, plan: TopologyPlan) -> Manifest:
    mounts: list[Manifest] = [
        {"name": "run", "mountPath": RUN_DIR},
        {"name": "events", "mountPath": EVENTS_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if spec.role == "redis":
        mounts.append({"name": "redis", "mountPath": REDIS_DIR})
    mounts += [{"name": f"data{_suffix(i)}", "mountPath": m.target, "readOnly": m.read_only}
               for i, m in enumerate(spec.mounts)]
    limits = {"cpu": millicores(spec.cpus), "memory": quantity(spec.memory)}
    return {
        "name": spec.role,
        "image": spec.image or plan.image,
        "imagePullPolicy": "IfNotPresent",
        "command": _command(spec.command),
        "env": _env(spec),
        "resources": {"limits": limits, "requests": dict(limits)},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": CONTAINER_UID,
            "runAsGroup": CONTAINER_UID,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    }


def _suffix(i: int) -> str:
    return "" if i == 0 else f"-{i}"


# --------------------------------------------------------------------------- env, command


def _escape(value: str) -> str:
    # Kubernetes expands $(NAME) in command and env values; $$ keeps a literal $.
    return value.replace("$", "$$")


def _command(command: tuple[str, ...]) -> list[str]:
    # The password follows --requirepass in Redis' command line: taken from the Secret.
    return [PASSWORD_REF if i > 0 and command[i - 1] == "--requirepass" else _escape(arg)
            for i, arg in enumerate(command)]


def _env(spec: ContainerSpec) -> list[Manifest]:
    env: list[Manifest] = [
        {"name": POD_NAME_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    if spec.role == "redis" or PASSWORD_ENV in spec.env:
        env.append({"name": PASSWORD_ENV, "valueFrom": {
            "secretKeyRef": {"name": SECRET, "key": SECRET_KEY}}})
    for key, value in sorted(spec.env.items()):
        if key == PASSWORD_ENV:
            continue
        env.append({"name": key, "value": _config(value) if key == "TOPO_CONFIG" else _escape(value)})
    return env


def _config(text: str) -> str:
    """The agent's configuration with its container named after the pod: N replicas share
    one template, and their event files must not share one name."""
    marker = "\x00pod\x00"  # cannot occur in the configuration's JSON (it would be \u0000)
    cfg = json.loads(text)
    cfg["container"] = marker
    cfg.pop("linger", None)  # a Job's pod ends with its batch: no sampler of topo's waits for it
    out = _escape(json.dumps(cfg, sort_keys=True))
    return out.replace(json.dumps(marker), json.dumps(f"$({POD_NAME_ENV})"))


# --------------------------------------------------------------------------- network


def _policy(name: str, pods: Manifest, plan: TopologyPlan, **rules: Any) -> Manifest:
    """A NetworkPolicy for the pods ``pods`` selects; without ``rules`` it allows nothing."""
    kinds = ["Ingress", "Egress"] if not rules else [k.capitalize() for k in rules]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(name, plan.labels),
        "spec": {"podSelector": pods, "policyTypes": kinds, **rules},
    }


def _redis_policies(name: str, plan: TopologyPlan) -> list[Manifest]:
    # Policies add up: on top of deny-all, Redis takes connections from the workers and the
    # feeder only, and they may open connections to Redis and to the cluster DNS (which
    # resolves Redis' Service name) only. Replies need no rule: policies are stateful.
    clients = {"matchLabels": {DEPLOYMENT: name},
               "matchExpressions": [{"key": ROLE, "operator": "In", "values": list(CLIENTS)}]}
    redis = {"matchLabels": _selector(plan, "redis")}
    port = [{"protocol": "TCP", "port": REDIS_PORT}]
    dns = {"to": [{"namespaceSelector": {},
                   "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
           "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    return [
        _policy(f"{name}-redis-ingress", redis, plan,
                ingress=[{"from": [{"podSelector": clients}], "ports": port}]),
        _policy(f"{name}-clients-egress", clients, plan,
                egress=[{"to": [{"podSelector": redis}], "ports": port}, dns]),
    ]


# --------------------------------------------------------------------------- metadata


def _selector(plan: TopologyPlan, role: str) -> dict[str, str]:
    return {DEPLOYMENT: plan.labels.get(DEPLOYMENT, plan.run_id), ROLE: role}


def _labels(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in sorted(labels.items()) if _label_value(v)}


def _label_value(value: str) -> bool:
    return len(value) <= 63 and LABEL_VALUE.match(value) is not None


def _metadata(name: str, labels: Mapping[str, str]) -> Manifest:
    """Name, the plan's labels, and as annotations those a label value cannot hold."""
    meta: Manifest = {"name": name, "labels": _labels(labels)}
    other = {k: v for k, v in sorted(labels.items()) if not _label_value(v)}
    if other:
        meta["annotations"] = other
    return meta


def millicores(cpus: float) -> str:
    """CPUs as Kubernetes' millicores, its finest CPU unit (2/3 CPU -> 667m)."""
    return f"{round(cpus * 1000)}m"


def quantity(size: int) -> str:
    """Bytes as a Kubernetes quantity: whole mebibytes as Mi, otherwise exact bytes."""
    return f"{size // MIB}Mi" if size % MIB == 0 else str(size)


# --------------------------------------------------------------------------- header


def _header(plan: TopologyPlan, scenario: Scenario) -> str:
    name = plan.labels.get(DEPLOYMENT, plan.run_id)
    lines = [
        f'Generated by topo {topo.__version__} from scenario "{scenario.name}" '
        f'({scenario.source or "built in code"}, sha256 {scenario.sha256 or "none"}).',
        "",
        *_what(plan, scenario),
        "",
        "Requests equal limits (Guaranteed QoS): the scheduler reserves the budget that was"
        " measured. Every container runs as uid/gid 10001, non-root, read-only root, all"
        " capabilities dropped, no privilege escalation, seccomp RuntimeDefault, /tmp in"
        " memory, no service-account token (Pod Security Standard \"restricted\").",
        *_not_carried(plan, scenario),
        "",
        "Apply it (the nodes pull the image from a registry; topo built it on one host):",
        *_apply(plan, name),
    ]
    return "".join(f"# {line}\n".replace(" \n", "\n") for block in lines
                   for line in (_wrap(block) if block else [""]))


def _what(plan: TopologyPlan, scenario: Scenario) -> list[str]:
    budget = f"{millicores(plan.budget_cpus)} CPU and {quantity(plan.budget_memory)} memory"
    if plan.topology == "single" and _brokered(plan):
        return _what_celery(plan, budget)
    if plan.topology == "single":
        spec = plan.worker_containers[0]
        pool = scenario.single.pool if scenario.single else ""
        return [f"The single topology as topo measured it: a Job of ONE pod running"
                f" {spec.processes or 'auto'} worker processes ({pool}) with {budget} in"
                f" total, on no network (a NetworkPolicy denies all traffic); it runs the"
                f" {plan.task_count} tasks and exits."]
    workers = [c for c in plan.containers if c.role == "worker"]
    redis = next(c for c in plan.containers if c.role == "redis")
    queue = scenario.multi.queue if scenario.multi else ""
    return [f"The multi topology as topo measured it: {budget} split over a Deployment of"
            f" {len(workers)} worker replicas of one process each ({millicores(workers[0].cpus)}"
            f" CPU, {quantity(workers[0].memory)} each), a Redis Deployment and Service"
            f" ({millicores(redis.cpus)} CPU, {quantity(redis.memory)}) and a feeder Job that"
            f" puts the {plan.task_count} tasks on the {queue} queue and exits. NetworkPolicies"
            f" deny all traffic except workers and feeder -> Redis (TCP {REDIS_PORT}) and their"
            " DNS look-ups (the policies need a network plugin that enforces them)."]


def _brokered(plan: TopologyPlan) -> bool:
    """The plan has Redis: multi, or single with Celery's prefork pool."""
    return any(c.role == "redis" for c in plan.containers)


def _what_celery(plan: TopologyPlan, budget: str) -> list[str]:
    spec = next(c for c in plan.containers if c.role == "single")
    redis = next(c for c in plan.containers if c.role == "redis")
    return [f"The single topology as topo measured it with Celery's prefork pool, which needs"
            f" its broker: a Deployment of ONE replica running celery --concurrency"
            f" {spec.processes or 'auto'} with {budget}, a Redis Deployment and Service"
            f" ({millicores(redis.cpus)} CPU, {quantity(redis.memory)}) and a feeder Job that"
            f" puts the {plan.task_count} tasks on the queue and exits. NetworkPolicies deny"
            f" all traffic except worker and feeder -> Redis (TCP {REDIS_PORT}) and their DNS"
            " look-ups (the policies need a network plugin that enforces them)."]


def _not_carried(plan: TopologyPlan, scenario: Scenario) -> list[str]:
    """What topo's Docker containers had that these manifests cannot say."""
    spec = plan.worker_containers[0]
    notes = [f"Not carried over (no field for it in a pod): the pids limit ({spec.pids_limit},"
             " a node setting in Kubernetes) and no-swap (nodes usually run without swap)."]
    if scenario.resources.cpuset:
        notes.append(f"Nor cpuset {scenario.resources.cpuset!r}: pinning needs the kubelet's"
                     " static CPU manager and whole CPUs.")
    rounded = sorted({c.cpus for c in plan.containers
                      if abs(c.cpus * 1000 - round(c.cpus * 1000)) > 1e-6})
    if rounded:
        notes.append("CPU rounded to whole millicores (Kubernetes' finest unit): "
                     + ", ".join(f"{cpus:.9g} -> {millicores(cpus)}" for cpus in rounded) + ".")
    if scenario.multi and scenario.multi.redis.appendonly != "no" and _brokered(plan):
        notes.append(f"Redis keeps its append-only file in an emptyDir at {REDIS_DIR}: it"
                     " survives a restart of the container, not a move of the pod to another"
                     " node (mount a PersistentVolumeClaim there to keep it).")
    if _brokered(plan) and any(c.restart == "no" for c in plan.containers
                               if c.role in ("worker", "single", "redis")):
        notes.append("The scenario's restart policy is \"no\", but a Deployment always restarts"
                     " its pods: a killed worker comes back here.")
    return notes


def _apply(plan: TopologyPlan, name: str) -> list[str]:
    images = sorted({c.image or plan.image for c in plan.containers})
    steps = [f"  docker tag {image} REGISTRY/{image} && docker push REGISTRY/{image}"
             for image in images]
    steps.append("  and set every image: below to REGISTRY/... (or kustomize's images:)")
    if _brokered(plan):
        steps += [f"  kubectl create secret generic {SECRET} --from-literal={SECRET_KEY}="
                  "\"$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n')\""]
    if any(c.mounts for c in plan.containers):
        steps.append(f"  a PersistentVolumeClaim {DATA_CLAIM} (ReadOnlyMany) holding the data")
    release = f"job/{name}-feeder" if _brokered(plan) else f"job/{name}-single"
    steps += [
        f"  kubectl apply -f {plan.topology}.yaml",
        f"  kubectl exec {release} -- touch {RUN_DIR}/go    # releases the batch",
        f"  kubectl delete -f {plan.topology}.yaml" + (
            "    # the workers serve the queue until then" if _brokered(plan) else ""),
        f"Each pod writes its event lines (the ledger) to {EVENTS_DIR}, an emptyDir that goes"
        " with the pod: copy them out while it runs (kubectl cp), or mount a volume there.",
    ]
    return steps


def _wrap(text: str, width: int = 86) -> list[str]:
    if text.startswith("  "):  # a command: one line, as it must be typed
        return [text]
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)
