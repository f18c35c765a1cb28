"""The `topo` command as a user runs it: errors, interruption, cleanup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from topo.runtime.docker import DockerRuntime

from .conftest import ROOT, leftovers

TOPO = [sys.executable, "-m", "topo.cli"]

SLOW = """\
version: 1
name: slow
workload: {task: io, tasks: 400, params: {ms: 100}}
workers: 2
resources: {cpus: 1, memory: 256m}
run: {repeat: 1, timeout: 120s}
"""


def topo(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TOPO, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, **(env or {})})


def test_broken_scenario_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\nworkload:\n  task: cpu\n  tasks: -3\nworkers: 2\n")
    for cmd in ("validate", "compare"):
        p = topo(cmd, str(bad))
        assert p.returncode == 2, p.stderr
        assert p.stderr.strip() == f"topo: error: {bad}:5: workload.tasks: must be a positive integer, got -3"
        assert "Traceback" not in p.stderr


def test_missing_engine_is_one_line_and_exit_1(tmp_path: Path) -> None:
    p = topo("compare", str(ROOT / "scenarios" / "etl.yaml"), "--out", str(tmp_path),
             env={"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"})
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("topo: error: no Docker engine answers"), p.stderr


@pytest.mark.docker
@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_compare_keeps_results_and_leaves_nothing(
    runtime: DockerRuntime, tmp_path: Path, signo: int
) -> None:
    (tmp_path / "slow.yaml").write_text(SLOW)
    out = tmp_path / "out"
    proc = subprocess.Popen([*TOPO, "compare", str(tmp_path / "slow.yaml"), "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any('"ev":"task"' in p.read_text() for p in out.glob("raw/*/events/*.jsonl")):
            assert time.monotonic() < deadline and proc.poll() is None, "no task ever ran"
            time.sleep(0.2)
        proc.send_signal(signo)  # mid-run: tasks are being executed
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    run_id = next(out.glob("raw/*")).name.split("-")[1]
    assert leftovers(runtime, run_id) == []
    doc = json.loads((out / "result.json").read_text())
    assert doc["complete"] is False
    assert doc["runs"][0]["status"] == "interrupted"
    assert 0 < sum(r["ok"] for r in doc["runs"][0]["records"]) < 400


@pytest.mark.docker
def test_compare_prints_the_comparison(tmp_path: Path) -> None:
    sc = tmp_path / "small.yaml"
    sc.write_text(SLOW.replace("tasks: 400, params: {ms: 100}", "tasks: 20, params: {ms: 5}"))
    p = topo("compare", str(sc), "--out", str(tmp_path / "out"))
    assert p.returncode == 0, p.stderr
    assert "throughput (tasks/s)" in p.stdout and "multi/single" in p.stdout
    doc = json.loads((tmp_path / "out" / "result.json").read_text())
    assert doc["schema"] == "topo.result" and doc["complete"] is True
    assert [r["topology"] for r in doc["runs"]] == ["single", "multi"]


def _start_slow(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    (tmp_path / "slow.yaml").write_text(SLOW)
    out = tmp_path / "out"
    proc = subprocess.Popen([*TOPO, "compare", str(tmp_path / "slow.yaml"), "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any('"ev":"task"' in p.read_text() for p in out.glob("raw/*/events/*.jsonl")):
        assert time.monotonic() < deadline and proc.poll() is None, "no task ever ran"
        time.sleep(0.2)
    return proc, out


@pytest.mark.docker
def test_sigkilled_topo_leaves_nothing_within_15s(runtime: DockerRuntime, tmp_path: Path) -> None:
    proc, out = _start_slow(tmp_path)
    run_id = next(out.glob("raw/*")).name.split("-")[1]
    assert leftovers(runtime, run_id) != []
    proc.kill()  # SIGKILL: no finally, no teardown in topo itself
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while leftovers(runtime, run_id) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert leftovers(runtime, run_id) == []
    # the raw events measured so far are still on disk, and a report renders them
    assert any('"ev":"task"' in p.read_text() for p in out.glob("raw/*/events/*.jsonl"))
    rep = topo("report", str(out / "result.json"), "--format", "json")
    assert rep.returncode == 0, rep.stderr
    assert "INCOMPLETE" in topo("report", str(out / "result.json")).stdout
    doc = json.loads(rep.stdout)
    assert doc["complete"] is False
    assert 0 < doc["figures"]["completed"]["single"]["median"] < 400
    assert any("interrupted" in w for w in doc["warnings"]), doc["warnings"]


@pytest.mark.docker
def test_every_container_is_hardened(runtime: DockerRuntime, tmp_path: Path) -> None:
    from topo import plan
    from topo.model import MultiSpec, SingleSpec

    from .conftest import scenario

    sc = scenario(task="noop", tasks=5, workers=2, single=SingleSpec(), multi=MultiSpec())
    image = runtime.ensure_image(sc)
    for topology in ("single", "multi"):
        p = plan.plan(sc, topology, "hard1", f"topo-hard1-{topology[0]}", image, "pw123")
        run_dir = tmp_path / topology
        (run_dir / "events").mkdir(parents=True)
        dep = runtime.deploy(p, str(run_dir))
        try:
            for c in dep.containers:
                a = runtime.client.api.inspect_container(c.id)
                hc = a["HostConfig"]
                assert a["Config"]["User"] == "10001:10001", c.name
                assert hc["CapDrop"] == ["ALL"] and not hc.get("CapAdd")
                assert "no-new-privileges" in hc["SecurityOpt"]
                assert hc["ReadonlyRootfs"] is True and "/tmp" in hc["Tmpfs"]
                assert hc["PidsLimit"] and hc["PidsLimit"] > 0
                assert hc["NanoCpus"] > 0 and hc["Memory"] > 0
                assert hc["Memory"] == hc["MemorySwap"]  # no swap beyond the limit
                assert not hc.get("PortBindings") and not hc.get("Privileged")
                assert all("docker.sock" not in m["Source"] for m in a["Mounts"])
                nets = a["NetworkSettings"]["Networks"]
                if topology == "single":
                    assert list(nets) == ["none"]
                else:
                    assert list(nets) == [p.network]
            if topology == "multi":
                net = runtime.client.api.inspect_network(p.network)
                assert net["Internal"] is True
        finally:
            runtime.teardown(dep, p.labels[plan.DEPLOYMENT])
        assert leftovers(runtime, "hard1") == []


@pytest.mark.docker  # the engine is asked whether the image exists
def test_a_missing_base_image_is_one_line(tmp_path: Path) -> None:
    p = topo("compare", str(ROOT / "scenarios" / "etl.yaml"), "--out", str(tmp_path),
             env={"TOPO_BASE_IMAGE": "topo-no-such-image:none"})
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1].startswith(
        "topo: error: base image topo-no-such-image:none is missing; run scripts/bootstrap.sh")
    assert "Traceback" not in p.stderr


@pytest.mark.docker
def test_a_full_disk_is_one_line_keeps_what_was_saved_and_leaves_nothing(
    runtime: DockerRuntime, tmp_path: Path
) -> None:
    (tmp_path / "tiny.yaml").write_text(SLOW.replace("tasks: 400, params: {ms: 100}",
                                                     "tasks: 40, params: {ms: 5}"))
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(full)], check=True)
    try:
        p = topo("compare", str(tmp_path / "tiny.yaml"), "--out", str(full / "out"))
        assert p.returncode == 1
        last = p.stderr.strip().splitlines()[-1]
        assert last.startswith("topo: error: ") and "No space left on device" in last, p.stderr
        assert "Traceback" not in p.stderr
        doc = json.loads((full / "out" / "result.json").read_text())  # the last good save
        assert doc["runs"] and doc["complete"] is False
        assert not (full / "out" / "result.json.tmp").exists()
        for run_dir in (full / "out" / "raw").glob("*"):
            assert leftovers(runtime, run_dir.name.split("-")[1]) == []
    finally:
        subprocess.run(["umount", str(full)], check=True)


@pytest.mark.docker
def test_a_workload_that_cannot_start_is_named_and_fails(runtime: DockerRuntime, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(SLOW.replace("task: io, tasks: 400, params: {ms: 100}",
                                                    'task: "nosuchmodule:run", tasks: 10'))
    p = topo("compare", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "out"))
    assert p.returncode == 1
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("topo: error: no run got its batch going")
    assert "ModuleNotFoundError: No module named 'nosuchmodule'" in last
    assert "Traceback" not in p.stderr
    for run_dir in (tmp_path / "out" / "raw").glob("*"):
        assert leftovers(runtime, run_dir.name.split("-")[1]) == []


TOO_BIG = """\
version: 1
name: toobig
workload: {task: noop, tasks: 10}
workers: 2
resources:
  cpus: 64
  memory: 256m
run: {repeat: 1, timeout: 30s}
"""


@pytest.mark.docker
def test_a_budget_the_engine_lacks_is_refused_before_any_deploy(
    runtime: DockerRuntime, tmp_path: Path
) -> None:
    path = tmp_path / "toobig.yaml"
    path.write_text(TOO_BIG)
    cpus = runtime.info()["cpus"]
    assert cpus < 64  # the premise: this engine has fewer CPUs than the budget
    since = time.time()
    for args in (("compare", str(path)), ("sweep", str(path), "--workers", "1,2")):
        p = subprocess.run([*TOPO, *args], capture_output=True, text=True, timeout=60,
                           cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert p.returncode == 2, p.stderr
        assert p.stderr == (f"topo: error: {path}:6: resources.cpus: a budget of 64 CPUs"
                            f" on an engine with {cpus}: at most {cpus}\n")
        assert p.stdout == ""
    # The engine saw no container of this scenario created, and nothing was written.
    events = runtime.client.events(since=int(since), until=int(time.time()) + 1, decode=True,
                                   filters={"type": "container", "label": "topo.scenario=toobig"})
    assert list(events) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toobig.yaml"]
