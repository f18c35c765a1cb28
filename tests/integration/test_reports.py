"""Reports as a reviewer gets them: the HTML page in a real browser, and a Compose file
deployed on the real engine with the limits topo measured with."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from topo import compose, report, results
from topo import plan as planning
from topo.analysis import build_report
from topo.events import EventLog
from topo.runtime.docker import DockerRuntime

from .conftest import ROOT, scenario

GOLDEN = ROOT / "tests" / "golden"
PLOTS = ("plot-throughput", "plot-cores", "plot-core-spread", "plot-memory")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0",
)
CONSOLE_TROUBLE = re.compile(r"Uncaught|ERROR:CONSOLE|Failed to load resource|net::ERR_")


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: run scripts/bootstrap.sh --test")
    return found


def browse(page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}", *extra,
         page.as_uri()],
        capture_output=True, text=True, timeout=180,
    )


@pytest.mark.docker  # not the engine: Chromium, which only the integration set-up installs
@pytest.mark.chromium
def test_the_html_report_renders_in_a_browser_with_every_plot(tmp_path: Path) -> None:
    sc, runs, document = results.load(GOLDEN / "crash.result.json")
    page = tmp_path / "report.html"
    page.write_text(report.render(build_report(sc, runs, results.provenance(document)), "html"))

    shot = tmp_path / "report.png"
    p = browse(page, tmp_path, f"--screenshot={shot}", "--window-size=1280,4000")
    assert p.returncode == 0, p.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 50_000  # a blank page is a few KB
    assert not CONSOLE_TROUBLE.search(p.stderr), CONSOLE_TROUBLE.findall(p.stderr)

    dom = browse(page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    for plot in PLOTS:
        assert re.search(rf'<figure class="plot" id="{plot}"><svg', dom.stdout), plot
    assert dom.stdout.count("<svg") == len(PLOTS)
    assert not CONSOLE_TROUBLE.search(dom.stderr)


def _compose_cli() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if probe.returncode == 0:
        return ["docker", "compose"]
    pytest.fail("neither docker-compose nor docker compose is installed: run scripts/bootstrap.sh --test")


@pytest.mark.docker
@pytest.mark.compose
def test_the_single_compose_file_deploys_with_the_measured_limits(
    runtime: DockerRuntime, tmp_path: Path
) -> None:
    cli = _compose_cli()
    sc = scenario(task="cpu", tasks=20, workers=2, cpus=1.0, params={"cpu_ms": 5})
    run_id = uuid.uuid4().hex[:8]
    plan = planning.plan(sc, "single", run_id, f"topo-{run_id}-c0", runtime.ensure_image(sc),
                         "unused")
    (tmp_path / "single.yaml").write_text(compose.render(plan, sc))
    events = tmp_path / "run" / "events"
    events.mkdir(parents=True)
    for folder in (events.parent, events):
        folder.chmod(0o777)  # the agents run as user 10001
    project = [*cli, "-p", f"topo{run_id}", "-f", str(tmp_path / "single.yaml")]
    # an adopted file carries none of the labels topo runs are found by: Compose's own
    ours = {"label": f"com.docker.compose.project=topo{run_id}"}
    env = {**os.environ, "TOPO_RUN_DIR": str(tmp_path / "run")}
    try:
        up = subprocess.run([*project, "up", "-d"], capture_output=True, text=True, env=env,
                            timeout=180)
        assert up.returncode == 0, up.stderr
        (container,) = runtime.client.containers.list(all=True, filters=ours)
        host = container.attrs["HostConfig"]
        spec = plan.containers[0]
        assert host["NanoCpus"] == round(spec.cpus * 1e9)
        assert host["Memory"] == host["MemorySwap"] == spec.memory
        assert host["PidsLimit"] == spec.pids_limit
        assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
        assert host["NetworkMode"] == "none"
        assert container.attrs["Config"]["User"] == "10001:10001"

        (events.parent / "go").touch()
        log = EventLog(events, sc.workload.tasks)
        deadline = time.monotonic() + 90
        while len(log.completed) < sc.workload.tasks and time.monotonic() < deadline:
            log.poll()
            time.sleep(0.2)
        assert len(log.completed) == sc.workload.tasks, log.errors
    finally:
        subprocess.run([*project, "down", "--volumes", "--timeout", "5"], capture_output=True,
                       env=env, timeout=180)
        for left in runtime.client.containers.list(all=True, filters=ours):
            left.remove(force=True)
    assert runtime.client.containers.list(all=True, filters=ours) == []
    assert runtime.client.networks.list(filters=ours) == []
