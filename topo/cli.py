"""The ``topo`` command. The only place that prints, writes result files and picks exit codes."""

from __future__ import annotations

import signal
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer

from topo import results as result_files
from topo.errors import RunError, TopoError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="One container with N worker processes, or N containers and a queue? Measure both.",
)
_debug = False


# What each command can print (typer lists the choices in --help and refuses others, exit 2).
class CompareFormat(str, Enum):
    table = "table"
    md = "md"
    json = "json"


class Engine(str, Enum):  # topo.runtime.engines.ENGINES
    docker = "docker"
    swarm = "swarm"


class ReportFormat(str, Enum):  # topo.report.FORMATS (a unit test keeps them in step)
    table = "table"
    md = "md"
    html = "html"
    json = "json"


class DiffFormat(str, Enum):
    table = "table"
    json = "json"


def _print_version(wanted: bool) -> None:
    if wanted:
        print(f"topo {_version()}")
        raise typer.Exit()


def _version() -> str:
    """The installed distribution's version; topo's own when it runs from a bare checkout."""
    from importlib import metadata

    try:
        return metadata.version("topo")
    except metadata.PackageNotFoundError:
        import topo

        return topo.__version__


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print topo's version and exit."),
) -> None:
    global _debug
    _debug = debug


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _progress() -> Any:
    """How a run's progress is shown: a live bar per run on a terminal, a plain line per
    phase when stderr is piped (logs, CI, the tests read those lines)."""
    return _LiveBars() if sys.stderr.isatty() else _ProgressLine()


def _describe(p: Any) -> str:
    fault = f"  [{p.fault}]" if p.fault else ""
    return f"{p.topology:<6} run {p.index + 1}/{p.runs}{fault}  {p.phase:<8}"


class _ProgressLine:
    """A line on stderr each time a run enters a phase."""

    def __init__(self) -> None:
        self._phase = ""

    def __call__(self, p: Any) -> None:
        if p.phase != self._phase:
            _err(f"{_describe(p)} {p.completed}/{p.total} tasks  {p.elapsed:5.1f}s")
            self._phase = p.phase


class _LiveBars:
    """A rich progress bar per run on stderr, redrawn in place while the run lasts and left
    on screen when it ends (teardown, which topo.run reports whatever happens). No colours
    when NO_COLOR is set (no-color.org)."""

    def __init__(self, console: Any = None) -> None:
        import os

        from rich.console import Console

        self._console = console or Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")))
        self._bar: Any = None
        self._task: Any = None
        self._drawn = ("", 0.0)  # the phase and the time last drawn

    def __call__(self, p: Any) -> None:
        from rich import progress as rp

        if self._bar is None:
            self._bar = rp.Progress(
                rp.TextColumn("{task.description}"), rp.BarColumn(), rp.MofNCompleteColumn(),
                rp.TextColumn("tasks  {task.fields[elapsed]:5.1f}s"),
                console=self._console, auto_refresh=False, redirect_stdout=False)
            self._task = self._bar.add_task(_describe(p), total=p.total, elapsed=p.elapsed)
            self._bar.start()  # draws at once: the task must be described already
        self._bar.update(self._task, description=_describe(p), completed=p.completed,
                         total=p.total, elapsed=p.elapsed)
        if p.phase != self._drawn[0] or time.monotonic() - self._drawn[1] > 0.2:  # ≤ 5 Hz
            self._bar.refresh()
            self._drawn = (p.phase, time.monotonic())
        if p.phase == "teardown":
            self._bar.stop()
            self._bar = None


def _sigterm(_signo: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # the same orderly teardown as Ctrl-C


def _handle_signals() -> None:
    """Ctrl-C and SIGTERM end a run in order (teardown, results saved). SIGINT is set
    explicitly: a shell starts background jobs with it ignored, and Python then keeps it so."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm)


def _start_measuring(sc: Any, engine: Engine = Engine.docker) -> tuple[Any, str]:
    """Connect to the engine, check that it has what the scenario asks for (exit 2 before any
    deploy if not), sweep what vanished runs left, and start the watchdog that removes this
    run's containers even if topo is SIGKILLed."""
    from topo import cleanup, preflight, run
    from topo.runtime import engines

    runtime = engines.connect(engine.value)
    preflight.check(sc, runtime)
    for stale in cleanup.sweep(runtime):
        _err(f"removed what an earlier, vanished topo run left behind: run {stale}")
    cleanup.start_watchdog()
    return runtime, run.new_run_id()


@app.command()
def compare(
    scenario_file: Path = typer.Argument(..., help="Scenario YAML file."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Folder for result.json, report.md/html, compose files, raw events."),
    fmt: CompareFormat = typer.Option(CompareFormat.table, "--format", help="What to print."),
    engine: Engine = typer.Option(Engine.docker, "--engine",
                                  help="docker: containers; swarm: Swarm services (a manager)."),
) -> None:
    """Deploy both topologies, run the same tasks, print the comparison."""
    from topo import cleanup, run, scenario, stats
    from topo import report as reports

    sc = scenario.load(scenario_file)
    runtime, run_id = _start_measuring(sc, engine)
    image = runtime.ensure_image(sc)  # a requirement or image it refuses leaves no folder behind
    out = out or Path("topo-results") / f"{sc.name}-{time.strftime('%Y%m%d-%H%M%S')}-{run_id}"
    out.mkdir(parents=True, exist_ok=True)
    host = result_files.host_facts(runtime.info(), image)
    path = out / "result.json"

    def save(done: list[Any], complete: bool) -> None:
        result_files.save(path, result_files.to_json(sc, done, host, complete))

    _handle_signals()
    try:
        measured = run.compare(sc, runtime, out, save, progress=_progress(), run_id=run_id,
                               owner=cleanup.owner_label(), image=image)
    except KeyboardInterrupt:
        _err(f"interrupted; containers removed; what was measured is in {path}")
        raise typer.Exit(130)
    comparison = stats.compare(sc, measured)
    started = [r for r in measured if r.t_available is not None]
    facts = reports.provenance(result_files.to_json(sc, measured, host, True))
    plans = run.plans(sc, run_id, image, runtime.redis_image(sc))
    for name, text in reports.files(comparison, measured, facts, plans).items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text, encoding="utf-8")
    print(reports.render(comparison, fmt.value, results=measured, provenance=facts,
                         color=_color()), end="" if fmt is CompareFormat.json else "\n")
    _err(f"results: {path}; reports: {out / 'report.md'}, {out / 'report.html'}")
    if not started:  # nothing was measured at all: say why, and fail
        raise RunError(f"no run got its batch going; first error: {measured[0].error}")


@app.command()
def sweep(
    scenario_file: Path = typer.Argument(..., help="Scenario YAML file."),
    workers: str = typer.Option("1,2,4,8", "--workers", help="Worker counts N, comma-separated."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for one result.json per N."),
) -> None:
    """Both topologies at each N under the same budget: a scaling table and the crossover."""
    from topo import cleanup, run, scenario
    from topo import sweep as sweeping
    from topo.report import sweep as sweep_report

    sc = scenario.load(scenario_file)
    try:
        counts = [int(x) for x in workers.split(",")]
        if not counts or min(counts) < 1 or max(counts) > 64:
            raise ValueError
    except ValueError:
        raise typer.BadParameter(f"a comma-separated list of counts from 1 to 64, got {workers!r}",
                                 param_hint="'--workers'") from None
    runtime, run_id = _start_measuring(sc)
    out = out or Path("topo-results") / f"{sc.name}-sweep-{time.strftime('%Y%m%d-%H%M%S')}-{run_id}"
    host = result_files.host_facts(runtime.info())

    def measure(at_n: Any) -> list[Any]:
        folder = out / f"workers-{at_n.workers}"
        folder.mkdir(parents=True, exist_ok=True)

        def save(done: list[Any], complete: bool) -> None:
            result_files.save(folder / "result.json", result_files.to_json(at_n, done, host, complete))

        return run.compare(at_n, runtime, folder, save, progress=_progress(),
                           run_id=f"{run_id}n{at_n.workers}", owner=cleanup.owner_label())

    _handle_signals()
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
def init(
    task: str = typer.Argument(..., help="Your task as package.module:function."),
    out: Optional[Path] = typer.Option(None, "--out", help="Scenario file to write "
                                       "(default: <module>.yaml here); never overwritten."),
) -> None:
    """Write a commented scenario for your own function, checked by topo's own loader."""
    import os

    from topo import scaffold, scenario

    if not scaffold.valid_task(task):
        raise typer.BadParameter(f"expected package.module:function, got {task!r}",
                                 param_hint="TASK")
    out = out or Path(f"{scaffold.name_of(task)}.yaml")
    if out.exists():
        raise typer.BadParameter(f"{out} exists; topo init never overwrites a file",
                                 param_hint="'--out'")
    found = scaffold.find(task, Path.cwd().resolve())
    text = scaffold.render(found, out, cpus=min(2, os.cpu_count() or 1))
    scenario.parse(text, str(out), out.resolve().parent)  # never write what topo cannot read
    with open(out, "x", encoding="utf-8") as f:
        f.write(text)
    if found.root is None:
        _err(f"topo init: {task.partition(':')[0]} was not found under {Path.cwd()}: "
             "set workload.path in the file")
    print(f"wrote {out}; next: topo compare {out}")


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
    notes = runtime.worker_image_notes()
    print(f"worker images: {len(notes) or 'none yet (built on first compare)'}")
    for tag, note in notes:
        print(f"  {tag}: {note}")
    if base is None:
        raise typer.Exit(1)


@app.command()
def clean(images: bool = typer.Option(False, "--images", help="Also remove topo's images.")) -> None:
    """Remove every container, network and Swarm service topo made (and, with --images,
    its images)."""
    from topo.cleanup import remove_everywhere
    from topo.plan import MANAGED
    from topo.runtime.docker import DockerRuntime

    runtime = DockerRuntime.connect()
    removed = remove_everywhere(runtime, f"{MANAGED}=true")  # Swarm's services too
    if images:
        removed.update(images=runtime.remove_labelled(f"{MANAGED}=true", images=True)["images"])
    print(", ".join(f"{n} {kind}" for kind, n in removed.items()) + " removed")


def _color() -> bool:
    """ANSI codes only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    import os

    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _command_line_error(e: typer.TyperException) -> NoReturn:
    """One line on stderr for what typer (or a command, with typer.BadParameter) refuses on
    the command line: exit 2 for usage. ``topo`` alone is the exception: its "error" is the
    help itself, which typer has already printed (with rich) or left in the message."""
    message = e.format_message().strip()
    if "\n" in message:
        _err(message)
    elif message:
        _err(f"topo: {'usage error' if e.exit_code == 2 else 'error'}: {message}")
    sys.exit(e.exit_code)


def _comparison(result_file: Path) -> tuple[Any, list[Any], dict[str, Any]]:
    """A saved result's comparison, runs and provenance; nothing here touches Docker."""
    from topo import report as reports
    from topo import stats

    sc, runs, document = result_files.load(result_file)
    if not document.get("complete"):
        # topo was stopped: add what its raw files hold of the run it was in
        runs = runs + result_files.recover(result_file.parent, runs)
    facts = reports.provenance(document, reports.local_cpu_model(document))
    return stats.compare(sc, runs), runs, facts


@app.command()
def report(
    result_file: Path = typer.Argument(..., help="A result.json saved by `topo compare`."),
    fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", help="The format."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write here instead of stdout."),
) -> None:
    """Render a saved result again, in any format, without Docker."""
    from topo import report as reports

    comparison, runs, facts = _comparison(result_file)
    text = reports.render(comparison, fmt.value, results=runs, provenance=facts,
                          color=out is None and _color())
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        _err(f"report: {out}")


@app.command()
def diff(
    a: Path = typer.Argument(..., help="The baseline result.json."),
    b: Path = typer.Argument(..., help="The result.json compared with it."),
    fail_if: Optional[list[str]] = typer.Option(
        None, "--fail-if", help='Exit 3 when true for B, e.g. "multi.throughput < 0.9 *'
        ' single.throughput". Repeatable.'),
    fmt: DiffFormat = typer.Option(DiffFormat.table, "--format", help="The format."),
) -> None:
    """Compare two saved results figure by figure; flag regressions of more than 10%."""
    from topo.report import diff as diffs

    try:
        thresholds = [diffs.parse_threshold(text) for text in fail_if or ()]
        (old, _, facts_a), (new, _, facts_b) = _comparison(a), _comparison(b)
        changes = diffs.diff(old, new)
        failed = [f for f in (diffs.failure(t, new) for t in thresholds) if f]
    except diffs.ThresholdError as e:
        raise typer.BadParameter(str(e), param_hint="'--fail-if'") from e
    notes = diffs.caveats(old, new, (facts_a["complete"], facts_b["complete"]))
    if fmt is DiffFormat.json:
        sys.stdout.write(diffs.render_json(changes, str(a), str(b), notes))
    else:
        sys.stdout.write(diffs.render_table(changes, str(a), str(b), notes=notes, color=_color()))
    for failure in failed:
        _err(f"threshold failed: {failure}")
    if failed:
        raise typer.Exit(3)


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
    except OSError as e:  # a full disk, a folder we may not write to
        if _debug:
            raise
        where = f": {e.filename}" if e.filename else ""
        _err(f"topo: error: {e.strerror or e}{where}")
        sys.exit(1)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.TyperException as e:  # every command-line error, typer.BadParameter among them
        _command_line_error(e)
    except typer.Abort:
        sys.exit(130)


if __name__ == "__main__":
    main()
