"""Scenario loading: every malformed file gives ONE line naming file, line and field."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from topo.errors import ScenarioError
from topo.model import Fault, MultiSpec, RedisSpec, Resources, RunSpec, Scenario, SingleSpec, Workload
from topo.scenario import load, parse, parse_duration, parse_size

MiB = 1024 * 1024
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

# Every case below starts from this valid file; lines: name 1, workload 2, task 3, workers 4.
HEAD = "name: etl\nworkload:\n  task: etl\nworkers: 4\n"


def _wl(extra: str) -> str:
    """HEAD with ``extra`` added to the workload mapping, from line 4 on."""
    return HEAD.replace("  task: etl\n", f"  task: etl\n  {extra}\n")


def _error(tmp_path: Path, text: str | bytes, filename: str = "etl.yaml") -> str:
    path = tmp_path / filename
    path.write_bytes(text if isinstance(text, bytes) else textwrap.dedent(text).encode("utf-8"))
    here = os.getcwd()
    os.chdir(tmp_path)  # the path as given is then the bare name the messages below expect
    try:
        with pytest.raises(ScenarioError) as info:
            load(filename)
    finally:
        os.chdir(here)
    message = str(info.value)
    assert "\n" not in message and len(message.splitlines()) == 1, message
    return message


def test_errors_name_the_file_as_given_folder_included(tmp_path: Path) -> None:
    # an editor jumps to file:line only when the folder is there (it used to be cut off)
    path = tmp_path / "team" / "etl.yaml"
    path.parent.mkdir()
    path.write_text("name: etl\nworkers: 0\nworkload: {task: cpu}\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load(path)
    assert str(info.value) == f"{path}:2: workers: must be a positive integer, got 0"
    with pytest.raises(ScenarioError) as missing:
        load(tmp_path / "nope" / "x.yaml")
    assert str(missing.value).startswith(f"{tmp_path / 'nope' / 'x.yaml'}: cannot read")


# (id, file text, line, field, a fragment of the message)
MALFORMED = [
    # --- wrong types; a bool is not an int, "4" is not an int
    ("name-int", "name: 42\nworkload: {task: etl}\nworkers: 4\n", 1, "name", "must be a string, got 42"),
    ("name-spaces", "name: my etl\nworkload: {task: etl}\nworkers: 4\n", 1, "name", "letters, digits"),
    ("name-too-long", f"name: {'a' * 41}\nworkload: {{task: etl}}\nworkers: 4\n", 1, "name", "1-40"),
    ("name-leading-dash", "name: -etl\nworkload: {task: etl}\nworkers: 4\n", 1, "name", "starting with"),
    ("description-int", HEAD + "description: 3\n", 5, "description", "must be a string"),
    ("workers-bool", "name: etl\nworkload: {task: etl}\nworkers: true\n", 3, "workers", "got true (a boolean)"),
    ("workers-str", "name: etl\nworkload: {task: etl}\nworkers: '4'\n", 3, "workers", "got '4' (a string)"),
    ("workers-float", "name: etl\nworkload: {task: etl}\nworkers: 2.5\n", 3, "workers", "positive integer"),
    ("workers-zero", "name: etl\nworkload: {task: etl}\nworkers: 0\n", 3, "workers", "positive integer, got 0"),
    ("workers-huge", "name: etl\nworkload: {task: etl}\nworkers: 65\n", 3, "workers", "at most 64, got 65"),
    ("workers-list", "name: etl\nworkload: {task: etl}\nworkers: [4]\n", 3, "workers", "got a list"),
    ("tasks-huge", _wl("tasks: 2000000"), 4, "workload.tasks", "at most 1000000"),
    ("tasks-bool", _wl("tasks: false"), 4, "workload.tasks", "boolean"),
    ("seed-negative", _wl("seed: -1"), 4, "workload.seed", "non-negative"),
    ("version-2", "version: 2\n" + HEAD, 1, "version", "unsupported version 2"),
    ("version-str", "version: '1'\n" + HEAD, 1, "version", "got '1' (a string)"),
    # --- missing required fields: the line of the parent mapping
    ("missing-name", "workload: {task: etl}\nworkers: 4\n", 1, "name", "required field missing"),
    ("missing-workers", "# a comment\nname: etl\nworkload: {task: etl}\n", 2, "workers", "required field missing"),
    ("missing-task", "name: etl\nworkers: 4\nworkload:\n  tasks: 3\n", 3, "workload.task", "required field"),
    ("missing-workload", "name: etl\nworkers: 4\n", 1, "workload.task", "required field missing"),
    # --- unknown keys at each level, with a suggestion
    ("unknown-top", "name: etl\nworkload: {task: etl}\nworker: 4\n", 3, "worker", "did you mean 'workers'?"),
    ("unknown-workload", _wl("taks: 3"), 4, "workload.taks", "'tasks'"),
    ("unknown-resources", HEAD + "resources:\n  cpu: 2\n", 6, "resources.cpu", "did you mean 'cpus'?"),
    ("unknown-topologies", HEAD + "topologies:\n  mutli: {}\n", 6, "topologies.mutli", "'multi'"),
    ("unknown-single", HEAD + "topologies:\n  single: {pol: mp-pool}\n", 6, "topologies.single.pol", "'pool'"),
    ("unknown-multi", HEAD + "topologies:\n  multi:\n    prefech: 2\n", 7, "topologies.multi.prefech", "'prefetch'"),
    ("unknown-redis", HEAD + "topologies:\n  multi:\n    redis: {mem: 1g}\n", 7, "topologies.multi.redis.mem",
     "'memory'"),
    ("unknown-run", HEAD + "run:\n  repeats: 3\n", 6, "run.repeats", "did you mean 'repeat'?"),
    ("unknown-far", HEAD + "zzz: 1\n", 5, "zzz", "expected one of: version, name"),
    ("unknown-case", HEAD + "Run: {}\n", 5, "Run", "did you mean 'run'?"),
    # --- workload
    ("task-typo", "name: etl\nworkload: {task: cpuu}\nworkers: 4\n", 2, "workload.task", "did you mean 'cpu'?"),
    ("task-bad-module", "name: etl\nworkload: {task: 'my-mod:run'}\nworkers: 4\n", 2, "workload.task",
     "package.module"),
    ("task-keyword", "name: etl\nworkload: {task: 'a.class:run'}\nworkers: 4\n", 2, "workload.task", "package.module"),
    ("params-list", _wl("params: [1, 2]"), 4, "workload.params", "mapping"),
    ("params-date", _wl("params: {day: 2024-01-01}"), 4, "workload.params.day", "date"),
    ("params-nan", _wl("params:\n    x: [1, .nan]"), 5, "workload.params.x[1]", "finite"),
    ("params-bool-key", _wl("params: {on: 1}"), 4, "workload.params", "got true (a boolean) (quote it)"),
    ("params-int-key", _wl("params: {1: a}"), 4, "workload.params", "keys must be strings"),
    ("path-missing", _wl("path: ./nowhere"), 4, "workload.path", "no such folder"),
    ("requirements-missing", _wl("requirements: ./nowhere.txt"), 4, "workload.requirements", "no such file"),
    ("requirements-number", _wl("requirements: 3"), 4, "workload.requirements", "path of a file, got 3"),
    ("image-upper", _wl("image: Team/ETL"), 4, "workload.image", "Docker image reference"),
    ("image-space", _wl("image: 'etl 1'"), 4, "workload.image", "got 'etl 1'"),
    ("image-number", _wl("image: 3"), 4, "workload.image", "must be a string, got 3"),
    # --- resources: numbers, sizes, cpuset and the per-worker floor
    ("cpus-zero", HEAD + "resources: {cpus: 0}\n", 5, "resources.cpus", "greater than 0, got 0"),
    ("cpus-negative", HEAD + "resources: {cpus: -1}\n", 5, "resources.cpus", "greater than 0, got -1"),
    ("cpus-huge", HEAD + "resources: {cpus: 5000}\n", 5, "resources.cpus", "at most 1024"),
    ("cpus-bool", HEAD + "resources: {cpus: true}\n", 5, "resources.cpus", "must be a number, got true"),
    ("cpus-str", HEAD + "resources: {cpus: '2'}\n", 5, "resources.cpus", "(a string)"),
    ("cpus-inf", HEAD + "resources: {cpus: .inf}\n", 5, "resources.cpus", "must be a number"),
    ("memory-word", HEAD + "resources: {memory: lots}\n", 5, "resources.memory", "must be a size"),
    ("memory-negative", HEAD + "resources: {memory: -5}\n", 5, "resources.memory", "must not be negative"),
    ("memory-unit", HEAD + "resources: {memory: 1.5x}\n", 5, "resources.memory", "must be a size"),
    ("memory-float", HEAD + "resources: {memory: 1.5}\n", 5, "resources.memory", "must be a size"),
    ("memory-tiny", HEAD + "resources: {memory: 1m}\n", 5, "resources.memory", "at least 6 MiB"),
    ("memory-per-worker", HEAD.replace("workers: 4", "workers: 8") + "resources:\n  memory: 40m\n", 6,
     "resources.memory", "5 MiB each"),
    ("cpuset-open", HEAD + "resources: {cpuset: '0-'}\n", 5, "resources.cpuset", '"0-1"'),
    ("cpuset-reversed", HEAD + "resources: {cpuset: '3-1'}\n", 5, "resources.cpuset", "got '3-1'"),
    ("cpus-per-worker", HEAD.replace("workers: 4", "workers: 64") + "resources:\n  cpus: 0.5\n", 6,
     "resources.cpus", "at least 0.01"),
    # --- topologies
    ("topologies-empty", HEAD + "topologies: {}\n", 5, "topologies", "at least one of single, multi"),
    ("topologies-null", HEAD + "topologies:\n", 5, "topologies", "at least one"),
    ("topologies-list", HEAD + "topologies: [single]\n", 5, "topologies", "must be a mapping, got a list"),
    ("pool-bad", HEAD + "topologies:\n  single: {pool: threads}\n", 6, "topologies.single.pool", "one of process-pool"),
    ("processes-zero", HEAD + "topologies:\n  single: {processes: 0}\n", 6, "topologies.single.processes", '"auto"'),
    ("processes-word", HEAD + "topologies:\n  single: {processes: many}\n", 6, "topologies.single.processes", "many"),
    ("queue-bad", HEAD + "topologies:\n  multi: {queue: fifo}\n", 6, "topologies.multi.queue", "reliable, simple"),
    ("prefetch-zero", HEAD + "topologies:\n  multi: {prefetch: 0}\n", 6, "topologies.multi.prefetch", "positive"),
    ("prefetch-huge", HEAD + "topologies:\n  multi: {prefetch: 10001}\n", 6, "topologies.multi.prefetch", "10000"),
    ("restart-bad", HEAD + "topologies:\n  multi: {restart: sometimes}\n", 6, "topologies.multi.restart", "on-failure"),
    ("restart-yes", HEAD + "topologies:\n  multi: {restart: yes}\n", 6, "topologies.multi.restart", "true (a boolean)"),
    ("single-restart-bad", HEAD + "topologies:\n  single:\n    restart: sometimes\n", 7,
     "topologies.single.restart", "must be one of no, on-failure, always, unless-stopped; got 'sometimes'"),
    ("single-restart-typo", HEAD + "topologies:\n  single: {restart: alway}\n", 6, "topologies.single.restart",
     "(did you mean 'always'?)"),
    ("single-restart-number", HEAD + "topologies:\n  single: {restart: 3}\n", 6, "topologies.single.restart",
     "got 3"),
    ("redis-memory", HEAD + "topologies:\n  multi:\n    redis: {memory: 4m}\n", 7, "topologies.multi.redis.memory",
     "at least 8 MiB"),
    ("redis-cpus", HEAD + "topologies:\n  multi:\n    redis:\n      cpus: 0\n", 8, "topologies.multi.redis.cpus",
     "greater than 0"),
    ("appendonly-bad", HEAD + "topologies:\n  multi:\n    redis: {appendonly: hourly}\n", 7,
     "topologies.multi.redis.appendonly", "must be one of no, everysec, always; got 'hourly' (a string)"),
    ("appendonly-yes", HEAD + "topologies:\n  multi:\n    redis:\n      appendonly: yes\n", 8,
     "topologies.multi.redis.appendonly", "got true (a boolean)"),
    ("appendonly-typo", HEAD + "topologies:\n  multi:\n    redis: {appendonly: everysecond}\n", 7,
     "topologies.multi.redis.appendonly", "(did you mean 'everysec'?)"),
    # --- faults
    ("faults-mapping", HEAD + "faults: {name: x}\n", 5, "faults", "must be a list"),
    ("fault-scalar", HEAD + "faults:\n  - boom\n", 6, "faults[0]", "must be a mapping"),
    ("fault-kind", HEAD + "faults:\n  - {name: a, kind: kill-all, at: 30%}\n", 6, "faults[0].kind", "kill-worker"),
    ("fault-no-name", HEAD + "faults:\n  - kind: oom\n    at: 30%\n", 6, "faults[0].name", "required"),
    ("fault-no-at", HEAD + "faults:\n  - name: a\n    kind: oom\n", 6, "faults[0].at", "required"),
    ("fault-empty-name", HEAD + "faults:\n  - {name: ' ', kind: oom, at: 30%}\n", 6, "faults[0].name", "empty"),
    ("pause-no-duration", HEAD + "faults:\n  - name: a\n    kind: pause\n    at: 30%\n", 6, "faults[0].duration",
     "required for a pause"),
    ("partition-no-duration", HEAD + "faults:\n  - {name: a, kind: partition, at: 5s}\n", 6, "faults[0].duration",
     "required for a partition"),
    ("oom-at-a-time", HEAD + "faults:\n  - {name: a, kind: oom, at: 5s}\n", 6, "faults[0].at",
     "an oom fault takes a percentage of tasks"),
    ("fault-duplicate", HEAD + "faults:\n  - {name: a, kind: oom, at: 10%}\n  - {name: a, kind: oom, at: 20%}\n", 7,
     "faults[1].name", "duplicate fault name 'a' (first at line 6)"),
    ("at-zero", HEAD + "faults:\n  - {name: a, kind: oom, at: 0%}\n", 6, "faults[0].at", "between 0% and 100%"),
    ("at-hundred", HEAD + "faults:\n  - {name: a, kind: oom, at: 100%}\n", 6, "faults[0].at", "between 0%"),
    ("at-word", HEAD + "faults:\n  - {name: a, kind: oom, at: soon}\n", 6, "faults[0].at", '"30%"'),
    ("at-negative", HEAD + "faults:\n  - {name: a, kind: oom, at: -5}\n", 6, "faults[0].at", "got -5"),
    ("at-after-timeout", HEAD + "faults:\n  - {name: a, kind: kill-worker, at: 10m}\n", 6, "faults[0].at", "run.timeout"),
    ("duration-bad", HEAD + "faults:\n  - {name: a, kind: pause, at: 5s, duration: 10x}\n", 6, "faults[0].duration",
     "must be a duration"),
    ("duration-zero", HEAD + "faults:\n  - {name: a, kind: pause, at: 5s, duration: 0s}\n", 6, "faults[0].duration",
     "longer than 0s"),
    ("kill-redis-single-only", HEAD + "topologies: {single: {}}\nfaults:\n  - {name: a, kind: kill-redis, at: 5s}\n", 7,
     "faults[0].kind", "multi topology only"),
    # --- run
    ("repeat-zero", HEAD + "run: {repeat: 0}\n", 5, "run.repeat", "positive integer, got 0"),
    ("repeat-huge", HEAD + "run: {repeat: 101}\n", 5, "run.repeat", "at most 100"),
    ("warmup-negative", HEAD + "run: {warmup: -1}\n", 5, "run.warmup", "non-negative integer, got -1"),
    ("timeout-zero", HEAD + "run: {timeout: 0}\n", 5, "run.timeout", "longer than 0s"),
    ("timeout-negative", HEAD + "run:\n  timeout: -5s\n", 6, "run.timeout", "must be a duration"),
    ("timeout-word", HEAD + "run: {timeout: forever}\n", 5, "run.timeout", "must be a duration"),
    ("timeout-huge", HEAD + "run: {timeout: 100000h}\n", 5, "run.timeout", "at most"),
    ("run-scalar", HEAD + "run: 3\n", 5, "run", "must be a mapping, got 3"),
    # --- YAML-level attacks and mistakes
    ("duplicate-key", HEAD + "workers: 8\n", 5, "workers", "duplicate key (first at line 4)"),
    ("duplicate-nested", "name: etl\nworkload:\n  task: etl\n  task: cpu\nworkers: 4\n", 4, "workload.task",
     "duplicate key (first at line 3)"),
    ("python-tag", HEAD + "description: !!python/object/apply:os.system ['true']\n", 5, "description",
     "unsupported YAML tag '!!python/object/apply:os.system'"),
    ("python-tag-top", "!!python/object/apply:os.system ['true']\n", 1, "", "unsupported YAML tag"),
    ("set-tag", HEAD + "run: !!set {a, b}\n", 5, "run", "unsupported YAML tag '!!set'"),
    ("merge-key", HEAD + "run:\n  <<: {repeat: 2}\n", 6, "run", "merge keys"),
    ("alias", "name: &n etl\nworkload: {task: etl}\nworkers: 4\ndescription: *n\n", 4, "", "YAML aliases"),
    ("top-list", "- name: etl\n- workers: 4\n", 1, "", "the top level must be a mapping of fields, got a list"),
    ("top-scalar", "\n\netl\n", 3, "", "the top level must be a mapping"),
    ("empty", "# nothing here\n", 1, "", "the file is empty"),
    ("two-documents", HEAD + "---\nname: other\n", 5, "", "more than one YAML document"),
    ("syntax", "name: etl\nworkload:\n  task: etl\n    tasks: 3\nworkers: 4\n", 4, "", "invalid YAML: mapping values"),
    ("unclosed", "name: etl\nworkload: {task: etl\nworkers: 4\n", 3, "", "invalid YAML"),
    ("tab-indent", "name: etl\nworkload:\n\ttask: etl\n", 3, "", "invalid YAML"),
    ("too-deep", _wl("params: {x: " + "[" * 40 + "]" * 40 + "}"), 4, "", "nested more than 32"),
    ("control-char", HEAD + "description: \"a\x07b\"\n", 5, "", "invalid YAML: unacceptable character #x0007"),
]


@pytest.mark.parametrize(("text", "line", "field", "fragment"), [c[1:] for c in MALFORMED],
                         ids=[c[0] for c in MALFORMED])
def test_malformed_file_gives_one_located_line(tmp_path: Path, text: str, line: int, field: str, fragment: str) -> None:
    message = _error(tmp_path, text)
    prefix = f"etl.yaml:{line}: {field}: " if field else f"etl.yaml:{line}: "
    assert message.startswith(prefix), message
    assert fragment in message, message


def test_example_message_is_exact(tmp_path: Path) -> None:
    text = "name: etl\n\n\n\nworkload:\n  task: etl\n  tasks: -3\nworkers: 4\n"
    assert _error(tmp_path, text) == "etl.yaml:7: workload.tasks: must be a positive integer, got -3"
    text = "name: etl\nworkers: 4\n" + "\n" * 8 + "workload:\n  task: etl\n  taks: 3\n"
    assert _error(tmp_path, text) == "etl.yaml:13: workload.taks: unknown key (did you mean 'tasks'?)"


@pytest.mark.parametrize(
    ("data", "line", "fragment"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 1, "not UTF-8 text (byte 0x89 at offset 0)"),
        ("name: etl\ndescription: café\n".encode("latin-1"), 2, "not UTF-8"),
        (b"\x00\x01\x02\x03garbage", 1, "invalid YAML: unacceptable character #x0000"),
        (b"name: etl\n" + b"\xfe\xff" * 10, 2, "not UTF-8"),
        (b"a: " + b"x" * (1024 * 1024), 1, "larger than 1 MiB"),
    ],
    ids=["png", "latin-1", "binary", "garbage-after-text", "too-large"],
)
def test_unreadable_bytes(tmp_path: Path, data: bytes, line: int, fragment: str) -> None:
    message = _error(tmp_path, data)
    assert message.startswith(f"etl.yaml:{line}: "), message
    assert fragment in message, message


def test_billion_laughs_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    message = _error(tmp_path, "\n".join(lines) + "\n")
    assert message.startswith("etl.yaml:2: YAML aliases (*a0) are not allowed"), message


def test_python_tag_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"name: !!python/object/apply:os.system ['touch {marker}']\nworkload: {{task: etl}}\nworkers: 4\n"
    assert "unsupported YAML tag" in _error(tmp_path, text)
    assert not marker.exists()


def test_error_names_the_path_as_given_and_parse_its_source(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    assert _error(tmp_path, "name: etl\n", "sub/mine.yaml").startswith("sub/mine.yaml:1: workload.task:")
    with pytest.raises(ScenarioError, match=r"^<string>:1: workload.task: required field missing$"):
        parse("name: etl\nworkers: 1\n")
    with pytest.raises(ScenarioError, match=r"^/some/where/x\.yaml:1: "):
        parse("[]", source="/some/where/x.yaml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=rf"^{re.escape(str(tmp_path))}/nope\.yaml: cannot read the scenario file: "):
        load(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- valid files


def test_defaults() -> None:
    s = parse(HEAD)
    assert (s.version, s.name, s.description, s.workers) == (1, "etl", "", 4)
    assert (s.workload.task, s.workload.tasks, s.workload.params, s.workload.seed, s.workload.path) == (
        "etl", 100, {}, 0, None)
    assert (s.resources.cpus, s.resources.memory, s.resources.cpuset) == (1.0, 1024 * MiB, None)
    assert s.single == SingleSpec(pool="process-pool", processes=None)
    assert s.single.restart == "no"  # as before the field existed: the single container stays down
    assert s.multi == MultiSpec(queue="reliable", prefetch=1, restart="on-failure", redis=RedisSpec(0.5, 256 * MiB))
    assert s.topologies == ("single", "multi")
    assert s.faults == ()
    assert s.run == RunSpec(repeat=3, warmup=0, timeout=300.0)
    assert s.source == "<string>"
    assert s.sha256 == hashlib.sha256(HEAD.encode()).hexdigest()


def test_null_sections_mean_defaults() -> None:
    s = parse(HEAD + "resources:\nrun: null\nfaults:\ntopologies:\n  single:\n  multi: {}\n")
    assert (s.resources.memory, s.run, s.faults) == (1024 * MiB, RunSpec(), ())
    assert (s.single, s.multi) == (SingleSpec(), MultiSpec())


def test_conversions() -> None:
    s = parse(HEAD.replace("workers: 4", "workers: 2") + textwrap.dedent("""\
        resources: {cpus: 1.5, memory: 1.5g, cpuset: 3}
        topologies:
          single: {pool: supervisor, processes: auto, restart: always}
          multi: {queue: simple, prefetch: 8, restart: no, redis: {cpus: 1, memory: 64MiB}}
        faults:
          - {name: one dies, kind: kill-worker, at: 30%}
          - {name: freeze, kind: pause, at: 5s, duration: 500ms}
          - {name: late, kind: kill-redis, at: 90, duration: null}
        run: {repeat: 1, warmup: 2, timeout: 2m}
        """).replace(", duration: null", ""))
    assert (s.resources.cpus, s.resources.memory, s.resources.cpuset) == (1.5, 1610612736, "3")
    assert s.single == SingleSpec(pool="supervisor", processes="auto", restart="always")
    assert s.multi == MultiSpec(queue="simple", prefetch=8, restart="no", redis=RedisSpec(1.0, 64 * MiB))
    assert s.faults == (
        Fault(name="one dies", kind="kill-worker", at_fraction=0.3),
        Fault(name="freeze", kind="pause", at_seconds=5.0, duration=0.5),
        Fault(name="late", kind="kill-redis", at_seconds=90.0),
    )
    assert s.run == RunSpec(repeat=1, warmup=2, timeout=120.0)


@pytest.mark.parametrize("written", ["no", "'no'", "everysec", "always"])
def test_redis_appendonly(written: str) -> None:
    s = parse(HEAD + f"topologies:\n  multi:\n    redis: {{appendonly: {written}}}\n")
    assert s.multi is not None and s.multi.redis.appendonly == written.strip("'")
    assert parse(HEAD).multi.redis.appendonly == "no"  # type: ignore[union-attr]


def test_only_listed_topologies_run() -> None:
    assert parse(HEAD + "topologies: {single: null}\n").topologies == ("single",)
    only_multi = parse(HEAD + "topologies:\n  multi:\n    prefetch: 4\n")
    assert (only_multi.single, only_multi.multi.prefetch, only_multi.topologies) == (None, 4, ("multi",))


def test_params_keep_json_values() -> None:
    s = parse(_wl("params: {rows: 20, ratio: 0.5, tag: a, flag: true, none: null, list: [1, [2]], nested: {k: v}}"))
    assert s.workload.params == {"rows": 20, "ratio": 0.5, "tag": "a", "flag": True, "none": None,
                                 "list": [1, [2]], "nested": {"k": "v"}}


def test_custom_task_and_path_resolution(tmp_path: Path) -> None:
    (tmp_path / "workloads").mkdir()
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "s.yaml"
    path.write_text("name: custom\nworkload: {task: 'mypkg.jobs:run', path: ../workloads}\nworkers: 2\n")
    s = load(path)
    assert s.workload.task == "mypkg.jobs:run"
    assert s.workload.path == str((tmp_path / "workloads").resolve())
    assert Path(s.workload.path).is_absolute()
    assert parse(f"name: a\nworkload: {{task: 'm:f', path: '{tmp_path}'}}\nworkers: 1\n").workload.path == str(tmp_path)
    relative = parse("name: a\nworkload: {task: 'm:f', path: workloads}\nworkers: 1\n", base_dir=tmp_path)
    assert relative.workload.path == str(tmp_path / "workloads")
    (tmp_path / "conf" / "file.txt").write_text("x")
    path.write_text("name: a\nworkload:\n  task: 'm:f'\n  path: file.txt\nworkers: 1\n")
    with pytest.raises(ScenarioError, match=r"/s\.yaml:4: workload\.path: no such folder: 'file.txt'"):
        load(path)


def test_design_doc_example_loads(tmp_path: Path) -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "scenario-format.md"
    text = doc.read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "workloads").mkdir()
    (tmp_path / "partitions").mkdir()
    (tmp_path / "partitions").chmod(0o755)  # whatever the umask: the containers may read it
    (tmp_path / "requirements.txt").write_text("tabulate\n")
    path = tmp_path / "example.yaml"
    path.write_text(text)
    s = load(path)
    assert (s.name, s.workers, s.resources.cpus, s.resources.memory) == ("etl", 4, 2.0, 1024 * MiB)
    assert s.workload.path == str((tmp_path / "workloads").resolve())
    assert s.workload.data == str((tmp_path / "partitions").resolve())
    assert s.single == SingleSpec(pool="process-pool", processes=None, preload=False)
    assert s.workload.requirements == str((tmp_path / "requirements.txt").resolve())
    assert s.workload.image == "team/etl:1.4"
    assert s.multi == MultiSpec() and s.run == RunSpec()
    # the example's kill-worker carries a duration only to show the field: it has no effect
    assert s.faults[0].kind == "kill-worker" and s.faults[0].duration is None
    assert s.faults == (Fault(name="one worker dies", kind="kill-worker", at_fraction=0.3),)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("etl", dict(task="etl", tasks=150, params=["rows"], seed=7, workers=4, cpus=2.0, memory=1024 * MiB,
                     repeat=3, timeout=120.0)),
        ("cpu", dict(task="cpu", tasks=300, params=["work"], seed=0, workers=3, cpus=1.5, memory=768 * MiB,
                     repeat=1, timeout=180.0)),
        ("io", dict(task="io", tasks=400, params=["ms"], seed=0, workers=8, cpus=1.0, memory=1024 * MiB,
                    repeat=1, timeout=120.0)),
    ],
)
def test_shipped_scenarios_load(name: str, expected: dict[str, object]) -> None:
    path = SCENARIOS / f"{name}.yaml"
    s = load(path)
    got = dict(task=s.workload.task, tasks=s.workload.tasks, params=sorted(s.workload.params), seed=s.workload.seed,
               workers=s.workers, cpus=s.resources.cpus, memory=s.resources.memory, repeat=s.run.repeat,
               timeout=s.run.timeout)
    assert (s.name, got) == (name, expected)
    # The param names are the contract with the tasks; their sizes are tuned elsewhere.
    assert all(isinstance(v, int) and v > 0 for v in s.workload.params.values())
    # The default demo shows a blast radius too: one worker killed at 60% of the batch.
    faults = (Fault("one worker dies", "kill-worker", at_fraction=0.6),) if name == "etl" else ()
    assert s.single == SingleSpec() and s.multi == MultiSpec() and s.faults == faults and s.run.warmup == 0
    assert s.source == str(path) and s.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("512m", 512 * MiB), ("1g", 1024 * MiB), ("1.5g", 1536 * MiB), ("256k", 256 * 1024), ("1024", 1024),
     (1024, 1024), ("1GB", 1024 * MiB), ("2Gi", 2048 * MiB), ("64MiB", 64 * MiB), ("10b", 10), (" 3 M ", 3 * MiB),
     ("1t", 1024**4), (".5k", 512), ("0", 0)],
)
def test_parse_size(value: object, expected: int) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", [True, 1.5, -1, "-1m", "1x", "", "m", "1ib", None, [1], "1" * 70])
def test_parse_size_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5s", 5.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), ("1.5S", 1.5), ("10", 10.0), (3, 3.0), (0.25, 0.25)],
)
def test_parse_duration(value: object, expected: float) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize("value", [True, "-5s", float("inf"), float("nan"), "5 minutes", "", None, "1e999", -1])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


# --------------------------------------------------------------------------- fuzzing
#
# Each property can fail: a located error must name a line that exists in the text (and, for
# a mutation, the line holding the offending key); a valid mutation must give exactly the
# Scenario decoded by hand from the edit; a document without the required fields must be
# refused.

# YAML's own line breaks: a line number past the last of these names no line of the file.
_BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_LOCATED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<rest>.+)$")


def _lines_in(text: str) -> int:
    return len(_BREAKS.split(text))


def _located(error: ScenarioError, source: str, lines: int) -> tuple[int, str]:
    """(line, rest of the message) of a one-line error that names ``source`` and a line
    between 1 and ``lines``."""
    message = str(error)
    assert "\n" not in message, message
    match = _LOCATED.match(message)
    assert match is not None and match["file"] == source, message
    assert 1 <= int(match["line"]) <= lines, (message, lines)
    return int(match["line"]), match["rest"]


def _parsed_or_located(text: str) -> Scenario | None:
    try:
        return parse(text)
    except ScenarioError as e:
        _located(e, "<string>", _lines_in(text))
        return None


_KEYS = ["version", "name", "workload", "task", "tasks", "params", "seed", "path", "workers", "resources", "cpus",
         "memory", "cpuset", "topologies", "single", "multi", "pool", "processes", "queue", "prefetch", "restart",
         "redis", "appendonly", "faults", "kind", "at", "duration", "run", "repeat", "warmup", "timeout", "description"]
_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
            | st.sampled_from(["30%", "5s", "1g", "auto", "no", "etl", "m:f", "0-1", "pause", "-1", "1e9", "everysec"]))
_TREES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=8), inner,
                                                                max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    scenario = _parsed_or_located(text)
    if scenario is not None:  # then the text really held the required fields
        assert scenario.name in text and scenario.workload.task in text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_random_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    try:
        scenario = load(path)
    except ScenarioError as e:
        text = data.decode("utf-8", "replace")
        _located(e, str(path), max(data.count(b"\n") + 1, _lines_in(text)))
    else:
        assert scenario.sha256 == hashlib.sha256(data).hexdigest()


@settings(max_examples=300, deadline=None)
@given(_TREES)
def test_random_structures(tree: object) -> None:
    scenario = _parsed_or_located(yaml.safe_dump(tree))
    required = isinstance(tree, dict) and {"name", "workload", "workers"} <= set(tree)
    assert scenario is None or required, tree  # a scenario needs name, workload and workers


# A valid file, every default spelled out in Scenario terms by hand (docs/scenario-format.md).
_VALID = {"name": "etl", "workload": {"task": "etl", "tasks": 10}, "workers": 2,
          "topologies": {"single": {}, "multi": {}},
          "faults": [{"name": "f", "kind": "pause", "at": "30%", "duration": "1s"}]}
_DECODED = Scenario(
    name="etl", workload=Workload(task="etl", tasks=10, params={}, seed=0, path=None), workers=2,
    resources=Resources(cpus=1.0, memory=1024 * MiB, cpuset=None),
    single=SingleSpec(pool="process-pool", processes=None),
    multi=MultiSpec(queue="reliable", prefetch=1, restart="on-failure", redis=RedisSpec(0.5, 256 * MiB)),
    faults=(Fault(name="f", kind="pause", at_fraction=0.3, duration=1.0),),
    run=RunSpec(repeat=3, warmup=0, timeout=300.0), description="", version=1,
)


def _multi(**changes: object):  # type: ignore[no-untyped-def]
    return lambda s: dataclasses.replace(s, multi=dataclasses.replace(s.multi, **changes))


# (dotted path, YAML value, what the Scenario becomes), decoded by hand
_VALID_EDITS: list[tuple[str, object, Callable[[Scenario], Scenario]]] = [
    ("workers", 3, lambda s: dataclasses.replace(s, workers=3)),
    ("description", "a note", lambda s: dataclasses.replace(s, description="a note")),
    ("version", 1, lambda s: s),
    ("workload.tasks", 250, lambda s: dataclasses.replace(s, workload=dataclasses.replace(s.workload, tasks=250))),
    ("workload.seed", 9, lambda s: dataclasses.replace(s, workload=dataclasses.replace(s.workload, seed=9))),
    ("workload.params", {"rows": 5, "tag": "x"},
     lambda s: dataclasses.replace(s, workload=dataclasses.replace(s.workload, params={"rows": 5, "tag": "x"}))),
    ("resources.cpus", 1.5, lambda s: dataclasses.replace(s, resources=dataclasses.replace(s.resources, cpus=1.5))),
    ("resources.memory", "512m",
     lambda s: dataclasses.replace(s, resources=dataclasses.replace(s.resources, memory=512 * MiB))),
    ("resources.cpuset", "0-1",
     lambda s: dataclasses.replace(s, resources=dataclasses.replace(s.resources, cpuset="0-1"))),
    ("topologies.single.pool", "mp-pool",
     lambda s: dataclasses.replace(s, single=dataclasses.replace(s.single, pool="mp-pool"))),
    ("topologies.single.processes", "auto",
     lambda s: dataclasses.replace(s, single=dataclasses.replace(s.single, processes="auto"))),
    ("topologies.single.restart", "unless-stopped",
     lambda s: dataclasses.replace(s, single=dataclasses.replace(s.single, restart="unless-stopped"))),
    ("topologies.multi.queue", "simple", _multi(queue="simple")),
    ("topologies.multi.prefetch", 4, _multi(prefetch=4)),
    ("topologies.multi.restart", "no", _multi(restart="no")),
    ("topologies.multi.redis.memory", "64m", _multi(redis=RedisSpec(0.5, 64 * MiB))),
    ("run.repeat", 5, lambda s: dataclasses.replace(s, run=dataclasses.replace(s.run, repeat=5))),
    ("run.warmup", 1, lambda s: dataclasses.replace(s, run=dataclasses.replace(s.run, warmup=1))),
    ("run.timeout", "2m", lambda s: dataclasses.replace(s, run=dataclasses.replace(s.run, timeout=120.0))),
    ("faults", [{"name": "k", "kind": "kill-worker", "at": "5s"}],
     lambda s: dataclasses.replace(s, faults=(Fault(name="k", kind="kill-worker", at_seconds=5.0),))),
]
_DELETE = "<deleted>"  # an edit that removes the key: the error names the parent's line
# (dotted path, YAML value, the field the error must name)
_INVALID_EDITS: list[tuple[str, object, str]] = [
    ("name", _DELETE, "name"),
    ("workers", _DELETE, "workers"),
    ("workload.task", _DELETE, "workload.task"),
    ("name", "my etl", "name"),
    ("workers", 0, "workers"),
    ("workers", True, "workers"),
    ("version", 2, "version"),
    ("workload.tasks", -3, "workload.tasks"),
    ("workload.taks", 3, "workload.taks"),
    ("resources.cpus", "lots", "resources.cpus"),
    ("resources.memory", "1x", "resources.memory"),
    ("topologies.single.pool", "threads", "topologies.single.pool"),
    ("topologies.multi.queue", "fifo", "topologies.multi.queue"),
    ("topologies.multi.prefetch", 0, "topologies.multi.prefetch"),
    ("run.repeat", 101, "run.repeat"),
    ("run.timeout", "forever", "run.timeout"),
    ("faults", "x", "faults"),
]
_EDITS = st.lists(
    st.sampled_from([(p, v, True, f) for p, v, f in _VALID_EDITS]
                    + [(p, v, False, f) for p, v, f in _INVALID_EDITS]),
    min_size=1, max_size=4, unique_by=lambda edit: edit[0],
)


def _set(doc: dict, path: str, value: object) -> None:  # type: ignore[type-arg]
    *parents, last = path.split(".")
    for key in parents:
        doc = doc.setdefault(key, {})
    if value == _DELETE:
        doc.pop(last, None)
    else:
        doc[last] = value


@settings(max_examples=300, deadline=None)
@given(_EDITS)
def test_mutated_valid_scenario(edits: list[tuple[str, object, bool, object]]) -> None:
    """Valid edits give the hand-decoded Scenario; any invalid edit gives an error naming
    one of the invalid fields, on the line that holds its key."""
    doc = copy.deepcopy(_VALID)
    for path, value, _, _ in edits:
        _set(doc, path, value)
    text = yaml.safe_dump(doc, sort_keys=False)
    invalid = {field for _, _, valid, field in edits if not valid}
    if not invalid:
        expected = _DECODED
        for _, _, _, change in edits:
            expected = change(expected)  # type: ignore[operator]
        sha = hashlib.sha256(text.encode()).hexdigest()
        assert parse(text) == dataclasses.replace(expected, source="<string>", sha256=sha)
        return
    with pytest.raises(ScenarioError) as info:
        parse(text)
    line, rest = _located(info.value, "<string>", _lines_in(text))
    field, message = rest.split(": ", 1)
    assert field in invalid, (rest, invalid)
    *parent, key = field.split(".")
    if message == "required field missing":  # named on the line of the mapping that lacks it
        key = parent[-1] if parent else None
    if key is None:
        assert line == 1, (line, text)
    else:
        assert text.splitlines()[line - 1].strip().startswith(f"{key}:"), (line, text)


def test_requirements_and_image_resolution(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "req.txt").write_text("tabulate\n")
    path = tmp_path / "conf" / "s.yaml"
    path.write_text("name: own\nworkload:\n  task: 'team.jobs:run'\n  requirements: ../req.txt\n"
                    "  image: registry.local:5000/team/etl:1.4\nworkers: 2\n")
    s = load(path)
    assert s.workload.requirements == str((tmp_path / "req.txt").resolve())
    assert s.workload.image == "registry.local:5000/team/etl:1.4"
    assert (parse(HEAD).workload.requirements, parse(HEAD).workload.image) == (None, None)
    # a folder is not a requirements file
    path.write_text("name: own\nworkload:\n  task: 'm:f'\n  requirements: ..\nworkers: 2\n")
    with pytest.raises(ScenarioError, match=r"/s\.yaml:4: workload\.requirements: no such file: '\.\.'"):
        load(path)
