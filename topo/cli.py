"""The ``topo`` command. The only place that prints, writes result files and picks exit codes."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from topo import results as result_files
from topo.errors import TopoError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="One container with N worker processes, or N containers and a queue? Measure both.",
)
_debug = False


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Show tracebacks.")) -> None:
    global _debug
    _debug = debug


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _ProgressLine:
    """One line on stderr, rewritten in place on a terminal, a line per phase otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._last = ("", 0.0)

    def __call__(self, p: Any) -> None:
        fault = f"  [{p.fault}]" if p.fault else ""
        text = (f"{p.topology:<6} run {p.index + 1}/{p.runs}{fault}  {p.phase:<8} "
                f"{p.completed}/{p.total} tasks  {p.elapsed:5.1f}s")
        if self.tty:
            if time.monotonic() - self._last[1] > 0.2 or p.phase != self._last[0]:  # ≤ 5 Hz
                sys.stderr.write("\r" + text + "\033[K")
                sys.stderr.flush()
                self._last = (p.phase, time.monotonic())
            if p.phase == "teardown":
                sys.stderr.write("\n")
        elif p.phase != self._last[0]:
            _err(text)
            self._last = (p.phase, 0.0)


def _sigterm(_signo: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # the same orderly teardown as Ctrl-C


@app.command()
def compare(
    scenario_file: Path = typer.Argument(..., help="Scenario YAML file."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for result.json and raw events."),
) -> None:
    """Deploy both topologies, run the same tasks, print the comparison."""
    from topo import cleanup, run, scenario, stats
    from topo.report import table
    from topo.runtime.docker import DockerRuntime

    sc = scenario.load(scenario_file)
    runtime = DockerRuntime.connect()
    for stale in cleanup.sweep(runtime):
        _err(f"removed what an earlier, vanished topo run left behind: run {stale}")
    run_id = run.new_run_id()
    cleanup.start_watchdog()  # removes this run's containers even if we are SIGKILLed
    out = out or Path("topo-results") / f"{sc.name}-{time.strftime('%Y%m%d-%H%M%S')}-{run_id}"
    out.mkdir(parents=True, exist_ok=True)
    host = result_files.host_facts(runtime.info())
    path = out / "result.json"

    def save(done: list[Any], complete: bool) -> None:
        result_files.save(path, result_files.to_json(sc, done, host, complete))

    signal.signal(signal.SIGTERM, _sigterm)
    try:
        measured = run.compare(sc, runtime, out, save, progress=_ProgressLine(), run_id=run_id,
                               owner=cleanup.owner_label())
    except KeyboardInterrupt:
        _err(f"interrupted; containers removed; what was measured is in {path}")
        raise typer.Exit(130)
    print(table.render(stats.compare(sc, measured)))
    _err(f"results: {path}")


@app.command()
def sweep(
    scenario_file: Path = typer.Argument(..., help="Scenario YAML file."),
    workers: str = typer.Option("1,2,4,8", "--workers", help="Worker counts N, comma-separated."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for one result.json per N."),
) -> None:
    """Both topologies at each N under the same budget: a scaling table and the crossover."""
    from topo import cleanup, run, scenario
    from topo import sweep as sweeping
    from topo.errors import ScenarioError
    from topo.report import sweep as sweep_report
    from topo.runtime.docker import DockerRuntime

    sc = scenario.load(scenario_file)
    try:
        counts = [int(x) for x in workers.split(",")]
        if not counts or min(counts) < 1 or max(counts) > 64:
            raise ValueError
    except ValueError:
        raise ScenarioError(f"--workers: a comma-separated list of counts from 1 to 64, got {workers!r}")
    runtime = DockerRuntime.connect()
    cleanup.sweep(runtime)
    run_id = run.new_run_id()
    cleanup.start_watchdog()
    out = out or Path("topo-results") / f"{sc.name}-sweep-{time.strftime('%Y%m%d-%H%M%S')}-{run_id}"
    host = result_files.host_facts(runtime.info())

    def measure(at_n: Any) -> list[Any]:
        folder = out / f"workers-{at_n.workers}"
        folder.mkdir(parents=True, exist_ok=True)

        def save(done: list[Any], complete: bool) -> None:
            result_files.save(folder / "result.json", result_files.to_json(at_n, done, host, complete))

        return run.compare(at_n, runtime, folder, save, progress=_ProgressLine(),
                           run_id=f"{run_id}n{at_n.workers}", owner=cleanup.owner_label())

    signal.signal(signal.SIGTERM, _sigterm)
    try:
        measured = sweeping.sweep(sc, counts, measure)
    except KeyboardInterrupt:
        _err(f"interrupted; containers removed; what was measured is under {out}")
        raise typer.Exit(130)
    print(sweep_report.render(sc.name, sc.resources.cpus, sweeping.points(measured)))
    _err(f"results: {out}")


@app.command()
def validate(scenario_file: Path = typer.Argument(..., help="Scenario YAML file.")) -> None:
    """Check a scenario file without touching Docker."""
    from topo import scenario

    sc = scenario.load(scenario_file)
    print(f"{scenario_file}: ok ({sc.name}: {sc.workload.tasks} x {sc.workload.task}, "
          f"{sc.workers} workers, {sc.resources.cpus:g} CPUs, topologies {', '.join(sc.topologies)})")


@app.command()
def doctor() -> None:
    """Report the Docker engine, cgroups, images and host, and what to fix."""
    import os

    from topo.runtime.docker import BASE_IMAGE, DockerRuntime

    print(f"host: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    runtime = DockerRuntime.connect()
    info = runtime.info()
    print(f"engine: Docker {info['engine']} (API {info['api']}), cgroup v{info['cgroup_version']} "
          f"({info['cgroup_driver']}), storage {info['storage_driver']}, kernel {info['kernel']}")
    print(f"engine host: {info['cpus']} CPUs, {int(info['memory'] or 0) / 2**30:.1f} GiB")
    base = runtime.image_id(BASE_IMAGE)
    print(f"base image {BASE_IMAGE}: {base[:19] if base else 'MISSING - run scripts/bootstrap.sh'}")
    if base is None:
        raise typer.Exit(1)


@app.command()
def clean(images: bool = typer.Option(False, "--images", help="Also remove topo's images.")) -> None:
    """Remove every container and network topo made (and, with --images, its images)."""
    from topo.plan import MANAGED
    from topo.runtime.docker import DockerRuntime

    removed = DockerRuntime.connect().remove_labelled(f"{MANAGED}=true", images=images)
    print(", ".join(f"{n} {kind}" for kind, n in removed.items()) + " removed")


def main() -> None:
    try:
        # without standalone mode, click returns an Exit's code instead of exiting
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except TopoError as e:
        if _debug:
            raise
        _err(f"topo: error: {e}")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        _err("topo: interrupted")
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # click's usage errors and abort
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
