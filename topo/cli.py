"""The ``topo`` command. The only place that prints, writes result files and picks exit codes."""

from __future__ import annotations

import dataclasses
import shutil
import signal
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer
import typer.core

from topo import output
from topo import results as result_files
from topo.errors import ResultError, RunError, ScenarioError, TopoError

app = typer.Typer(
    no_args_is_help=True,
    # click's plain help: flags without a "<bool>" type after them, and shell completion
    # (--install-completion / --show-completion) listing the enums' choices
    rich_markup_mode=None,
    help="One container with N worker processes, or N containers and a queue? Measure both.",
)
_debug = False


def _usage_name(self: typer.core.TyperArgument) -> str:
    # Typer 0.29 writes a required argument as {name} in the usage line; the usual form is
    # NAME (and [NAME] when optional), which the help's argument list also uses.
    name = self.name.upper() if self.metavar is None and self.name else str(self.metavar)
    return (name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")


typer.core.TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign]


class Engine(str, Enum):  # topo.runtime.engines.ENGINES
    docker = "docker"
    swarm = "swarm"


# What each command can print (typer lists the choices in --help and completion and refuses
# others, exit 2). The same name means the same format in every command.
class CompareFormat(str, Enum):  # topo.report.FORMATS (a unit test keeps them in step)
    table = "table"
    md = "md"
    html = "html"
    json = "json"


ReportFormat = CompareFormat


class DiffFormat(str, Enum):
    table = "table"
    md = "md"
    json = "json"


class SweepFormat(str, Enum):
    table = "table"
    json = "json"


# One vocabulary of options, declared once (hyperfine's names where it has them).
def _format_option(default: Enum) -> Any:
    return typer.Option(default, "-f", "--format", help="What to print.")


QUIET = typer.Option(False, "-q", "--quiet", help="Print only the report (and errors).")
RUNS = typer.Option(None, "--runs", min=1, max=100, metavar="N",
                    help="Measured runs per topology, instead of the scenario's run.repeat.")
WARMUP = typer.Option(None, "--warmup", min=0, max=10, metavar="N",
                      help="Warm-up runs per topology, instead of the scenario's run.warmup.")
EXPORT_CSV = typer.Option(None, "--export-csv", metavar="FILE", dir_okay=False,
                          help="Also write the figures as CSV to FILE.")


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


def _progress(quiet: bool = False) -> Any:
    """How a run's progress is shown: a live bar per run on a terminal, a plain line per
    phase when stderr is piped (logs, CI, the tests read those lines); nothing if quiet."""
    if quiet:
        return lambda p: None
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
    on screen when it ends (teardown, which topo.engine reports whatever happens). No colours
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


def _start_measuring(sc: Any, engine_kind: Engine = Engine.docker) -> tuple[Any, str]:
    """Connect to the engine, check that it has what the scenario asks for (exit 2 before any
    deploy if not), sweep what vanished runs left, and start the watchdog that removes this
    run's containers even if topo is SIGKILLed."""
    from topo import cleanup, engine, preflight
    from topo.runtime import engines

    runtime = engines.connect(engine_kind.value)
    preflight.check(sc, runtime)
    for stale in cleanup.sweep(runtime):
        _err(f"removed what an earlier, vanished topo run left behind: run {stale}")
    cleanup.start_watchdog()
    return runtime, engine.new_run_id()


def _load_scenario(path: Path, runs: int | None = None, warmup: int | None = None) -> Any:
    """The scenario in ``path``, with ``--runs``/``--warmup`` in place of its own counts; a
    result or other file given instead is named for what it is (exit 2)."""
    import dataclasses

    from topo import scenario

    try:
        sc = scenario.load(path)
    except ScenarioError:
        wrong = output.not_a("scenario", str(path), output.file_kind(path))
        if wrong:
            raise ScenarioError(wrong) from None
        raise
    counts = {k: v for k, v in (("repeat", runs), ("warmup", warmup)) if v is not None}
    return dataclasses.replace(sc, run=dataclasses.replace(sc.run, **counts)) if counts else sc


def _export_csv(path: Optional[Path], text: str, quiet: bool) -> None:
    if path is not None:
        path.write_text(text, encoding="utf-8")
        if not quiet:
            _err(f"csv: {path}")


@app.command()
def compare(
    scenario_file: Path = typer.Argument(..., help="Scenario YAML file."),
    out: Optional[Path] = typer.Option(
        None, "-o", "--out",
        help="Folder for result.json, report.md/html, compose files, raw events."),
    fmt: CompareFormat = _format_option(CompareFormat.table),
    runs: Optional[int] = RUNS,
    warmup: Optional[int] = WARMUP,
    quiet: bool = QUIET,
    export_csv: Optional[Path] = EXPORT_CSV,
    engine_kind: Engine = typer.Option(
        Engine.docker, "--engine", help="docker: containers; swarm: Swarm services (a manager)."),
) -> None:
    """Deploy both topologies, run the same tasks, print the comparison."""
    sc = _load_scenario(scenario_file, runs, warmup)
    runtime, run_id = _start_measuring(sc, engine_kind)  # preflight: exit 2 before any deploy
    image = runtime.ensure_image(sc)  # a requirement or image it refuses leaves no folder behind
    out = out or _results_folder(sc.name, run_id)
    stamp = _Stamp(result_files.now(), _copy_scenario(scenario_file, sc, out))
    host = result_files.host_facts(runtime.info(), image)
    measured = _measure(sc, runtime, run_id, image, out, host, quiet, stamp)  # saved each run
    _write_reports(sc, runtime, run_id, image, out, host, measured, fmt, quiet, export_csv, stamp)
    _fail_on_failed_runs(measured)


@dataclasses.dataclass(frozen=True)
class _Stamp:
    """What every save of one comparison's result file says alike: when it started, and
    where the copy of its scenario is."""

    created: str
    scenario_copy: str


def _copy_scenario(scenario_file: Path, sc: Any, out: Path) -> str:
    """Copy the scenario file into ``out`` as scenario.yaml, with its requirements file at
    the same path relative to it, so that the result folder reproduces the comparison on
    another machine. The code folder (workload.path) and data folders are not copied: they
    may be large. The copy's path, as the reports' "Reproduce:" line shows it."""
    out.mkdir(parents=True, exist_ok=True)
    _copy_file(scenario_file, out / "scenario.yaml")
    if sc.workload.requirements:
        requirements = Path(sc.workload.requirements)
        try:
            relative = requirements.relative_to(scenario_file.resolve().parent)
        except ValueError:
            _err(f"note: {requirements} is outside the scenario's folder; not copied into {out}")
        else:
            _copy_file(requirements, out / relative)
    return str(out / "scenario.yaml")


def _copy_file(source: Path, target: Path) -> None:
    import shutil

    if target.exists() and target.samefile(source):  # --out is the scenario's own folder
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def _fail_on_failed_runs(measured: list[Any]) -> None:
    """Exit 1 (after every file is written) when a run did not end ok, naming each."""
    from topo.model import RunStatus

    failed = [r for r in measured if r.status != RunStatus.OK]
    for r in failed:
        _err(f"run {r.topology} #{r.index}: {r.status}"
             + (f": {r.error.splitlines()[0]}" if r.error else ""))
    if not any(r.t_available is not None for r in measured):  # nothing measured: say why
        raise RunError(f"no run got its batch going; first error: {measured[0].error}")
    if failed:
        raise RunError(f"{len(failed)} of {len(measured)} run(s) did not end ok "
                       "(above); every result file is written")


def _results_folder(name: str, run_id: str) -> Path:
    return Path("topo-results") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{run_id}"


def _measure(sc: Any, runtime: Any, run_id: str, image: str, out: Path,
             host: dict[str, Any], quiet: bool, stamp: _Stamp) -> list[Any]:
    """Run every topology, saving result.json after each run; Ctrl-C tears down and exits 130."""
    from topo import cleanup, engine

    out.mkdir(parents=True, exist_ok=True)
    path = out / "result.json"

    def save(done: list[Any], complete: bool) -> None:
        result_files.save(path, result_files.to_json(sc, done, host, complete,
                                                     created=stamp.created,
                                                     scenario_copy=stamp.scenario_copy))

    _handle_signals()
    try:
        return engine.compare(sc, runtime, out, save, progress=_progress(quiet), run_id=run_id,
                              owner=cleanup.owner_label(), image=image)
    except KeyboardInterrupt:
        _err(f"interrupted; containers removed; what was measured is in {path}")
        raise typer.Exit(130)


def _write_reports(sc: Any, runtime: Any, run_id: str, image: str, out: Path,
                   host: dict[str, Any], measured: list[Any], fmt: CompareFormat,
                   quiet: bool, export_csv: Optional[Path], stamp: _Stamp) -> None:
    """Write the report files, the Compose and Kubernetes files next to result.json, print
    the chosen format. The report is built from
    the document result.json holds, as `topo report` builds it, so that both say the same."""
    from topo import engine
    from topo import report as reports
    from topo.analysis import build_report
    from topo.report import csvexport

    document = result_files.to_json(sc, measured, host, True, created=stamp.created,
                                    scenario_copy=stamp.scenario_copy)
    facts = result_files.provenance(document, result_files.local_cpu_model(document))
    model = build_report(sc, measured, facts)
    plans = engine.plans(sc, run_id, image, runtime.redis_image(sc))
    for name, text in {**reports.files(model), **_compose_files(sc, plans)}.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text, encoding="utf-8")
    _compose_build(sc, runtime, out / "compose")
    text = reports.render(model, fmt.value, color=_color())
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    _export_csv(export_csv, csvexport.comparison(model), quiet)
    if not quiet:
        _err(f"results: {out / 'result.json'}; reports: {out / 'report.md'}, {out / 'report.html'}")


def _compose_files(sc: Any, plans: Any) -> dict[str, str]:
    """Per plan, for the review: compose/<topology>.yaml (docker compose),
    compose/<topology>.stack.yaml (docker stack deploy, which refuses some of the limits; see
    topo.compose) and k8s/<topology>.yaml (Kubernetes; see topo.k8s)."""
    from topo import compose, k8s

    out = {}
    for plan in plans:
        out[f"compose/{plan.topology}.yaml"] = compose.render(plan, sc)
        out[f"compose/{plan.topology}.stack.yaml"] = compose.render(plan, sc, swarm=True)
        out[f"k8s/{plan.topology}.yaml"] = k8s.render(plan, sc)
    return out


def _compose_build(sc: Any, runtime: Any, folder: Path) -> None:
    """The Dockerfile and build context the Compose files' ``build:`` points at; the wheels
    are the ones the measured image installed (a runtime without images has none)."""
    from topo import compose

    wheelhouse = getattr(runtime, "wheelhouse", None)
    house = wheelhouse(sc) if wheelhouse is not None else None
    (folder / "Dockerfile").write_text(compose.dockerfile(sc, house), encoding="utf-8")
    (folder / ".dockerignore").write_text(compose.DOCKERIGNORE, encoding="utf-8")
    for rel, src in compose.build_files(sc, house).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, folder / rel)


@app.command()
def sweep(
    scenario_file: Path = typer.Argument(..., help="Scenario YAML file."),
    workers: str = typer.Option("1,2,4,8", "--workers", help="Worker counts N, comma-separated."),
    out: Optional[Path] = typer.Option(None, "-o", "--out",
                                       help="Folder for one result.json per N."),
    fmt: SweepFormat = _format_option(SweepFormat.table),
    runs: Optional[int] = RUNS,
    warmup: Optional[int] = WARMUP,
    quiet: bool = QUIET,
    export_csv: Optional[Path] = EXPORT_CSV,
) -> None:
    """Both topologies at each N under the same budget: a scaling table and the crossover."""
    import dataclasses
    import json

    from topo import cleanup, engine
    from topo import sweep as sweeping
    from topo.report import csvexport
    from topo.report import sweep as sweep_report

    sc = _load_scenario(scenario_file, runs, warmup)
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
    stamp = _Stamp(result_files.now(), _copy_scenario(scenario_file, sc, out))

    def measure(at_n: Any) -> list[Any]:
        folder = out / f"workers-{at_n.workers}"
        folder.mkdir(parents=True, exist_ok=True)

        def save(done: list[Any], complete: bool) -> None:
            result_files.save(folder / "result.json", result_files.to_json(
                at_n, done, host, complete, created=stamp.created,
                scenario_copy=stamp.scenario_copy, sweep_workers=at_n.workers))

        return engine.compare(at_n, runtime, folder, save, progress=_progress(quiet),
                           run_id=f"{run_id}n{at_n.workers}", owner=cleanup.owner_label())

    _handle_signals()
    try:
        measured = sweeping.sweep(sc, counts, measure)
    except KeyboardInterrupt:
        _err(f"interrupted; containers removed; what was measured is under {out}")
        raise typer.Exit(130)
    found = sweeping.points(measured)
    if fmt is SweepFormat.json:
        print(json.dumps([dataclasses.asdict(p) for p in found], indent=2))
    else:
        print(sweep_report.render(sweeping.report(sc.name, sc.resources.cpus, found)))
    _export_csv(export_csv, csvexport.points(found), quiet)
    if not quiet:
        _err(f"results: {out}")


@app.command()
def validate(scenario_file: Path = typer.Argument(..., help="Scenario YAML file.")) -> None:
    """Check a scenario file without touching Docker."""
    sc = _load_scenario(scenario_file)
    print(f"{scenario_file}: ok ({sc.name}: {sc.workload.tasks} x {sc.workload.task}, "
          f"{sc.workers} workers, {sc.resources.cpus:g} CPUs, topologies {', '.join(sc.topologies)})")


@app.command()
def schema(
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Write here instead of stdout."),
) -> None:
    """Print the JSON Schema of scenario files (editors use it to complete and check them)."""
    from topo import scenario

    _emit(scenario.schema_text(), out, False, "schema")


@app.command()
def init(
    task: str = typer.Argument(..., help="Your task as package.module:function."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Scenario file to write "
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


def _result_path(given: Path) -> Path:
    """The result file a user meant: a folder `topo compare` wrote stands for its
    result.json. ResultError naming the path as given when there is none."""
    path = given / "result.json" if given.is_dir() else given
    if not path.exists():
        what = f"{given} holds no result.json" if given.is_dir() else f"{given}: no such file"
        raise ResultError(f"{what}; give a result.json that topo compare saved")
    return path


def _report(given: Path) -> Any:
    """A saved result's report model; nothing here touches Docker."""
    from topo.analysis import build_report

    result_file = _result_path(given)
    try:
        sc, runs, document = result_files.load(result_file)
    except ResultError:
        wrong = output.not_a("result", str(given), output.file_kind(result_file))
        if wrong:
            raise ResultError(wrong) from None
        raise
    if not document.get("complete"):
        # topo was stopped: add what its raw files hold of the run it was in
        runs = runs + result_files.recover(result_file.parent, runs)
    facts = result_files.provenance(document, result_files.local_cpu_model(document))
    return build_report(sc, runs, facts)


def _emit(text: str, out: Optional[Path], quiet: bool, what: str) -> None:
    """``text`` on stdout, or into the file ``out`` (named on stderr unless quiet)."""
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        if not quiet:
            _err(f"{what}: {out}")


@app.command()
def report(
    result_file: Path = typer.Argument(..., help="A result.json saved by `topo compare` "
                                       "(or the folder it is in)."),
    fmt: CompareFormat = _format_option(CompareFormat.table),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Write here instead of stdout."),
    quiet: bool = QUIET,
    export_csv: Optional[Path] = EXPORT_CSV,
) -> None:
    """Render a saved result again, in any format, without Docker."""
    from topo import report as reports
    from topo.report import csvexport

    model = _report(result_file)
    text = reports.render(model, fmt.value, color=out is None and _color())
    _emit(text, out, quiet, "report")
    _export_csv(export_csv, csvexport.comparison(model), quiet)


@app.command()
def diff(
    a: Path = typer.Argument(..., help="The baseline result.json (or its folder)."),
    b: Path = typer.Argument(..., help="The result.json compared with it (or its folder)."),
    fail_if: Optional[list[str]] = typer.Option(
        None, "--fail-if", metavar="EXPR",
        help='Exit 3 when EXPR is true, e.g. "b.multi.throughput < 0.9 * a.multi.throughput"'
        ' or "multi.service_p95 > 50ms" (plain names are B\'s). Repeatable.'),
    fail_on_regression: bool = typer.Option(
        False, "--fail-on-regression",
        help="Exit 3 when a figure got worse beyond the tolerance and the repeats' ranges"
        " do not overlap."),
    tolerance: float = typer.Option(
        10.0, "--tolerance", min=0.0, max=1000.0, metavar="PCT",
        help="How far (in % of A) a figure may move before it counts."),
    fmt: DiffFormat = _format_option(DiffFormat.table),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Write here instead of stdout."),
    quiet: bool = QUIET,
    export_csv: Optional[Path] = EXPORT_CSV,
) -> None:
    """Compare two saved results figure by figure: regressions, improvements, noise; a CI gate."""
    from topo.analysis import diff as diffs
    from topo.report import csvexport
    from topo.report import diff as diff_report

    try:
        thresholds = [diffs.parse_threshold(text) for text in fail_if or ()]
        old, new = _report(a), _report(b)
        failed = [f for f in (diffs.failure(t, new, old) for t in thresholds) if f]
    except diffs.ThresholdError as e:
        raise typer.BadParameter(str(e), param_hint="'--fail-if'") from e
    model = diffs.report(str(a), old, str(b), new, (old.complete, new.complete), tolerance / 100)
    if fmt is DiffFormat.json:
        text = diff_report.render_json(model)
    else:
        text = diff_report.render_table(model, color=out is None and _color(),
                                        fmt="github" if fmt is DiffFormat.md else "simple")
    _emit(text, out, quiet, "diff")
    _export_csv(export_csv, csvexport.changes(model.changes), quiet)
    for failure in failed:
        _err(f"threshold failed: {failure}")
    regressed = diffs.regressions(model.changes) if fail_on_regression else []
    for change in regressed:
        _err(f"regression beyond {tolerance:g}%: {diffs.describe(change)}")
    if failed or regressed:
        raise typer.Exit(3)


def main() -> None:
    output.make_encodable(sys.stdout, sys.stderr)
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
        where = f"{e.filename}: " if e.filename else ""
        _err(f"topo: error: {where}{e.strerror or e}")
        sys.exit(1)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.TyperException as e:  # every command-line error, typer.BadParameter among them
        _command_line_error(e)
    except typer.Abort:
        sys.exit(130)


if __name__ == "__main__":
    main()
