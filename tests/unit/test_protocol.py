"""topo.agent.protocol: the agents' configuration and event lines, both ends of the wire."""

from __future__ import annotations

import ast
import copy
import dataclasses
import inspect
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from topo.agent import protocol as p
from topo.events import EventLog
from topo.model import FaultStatus, PoolKind, RunStatus, Signal, SignalKind

ROOT = Path(__file__).resolve().parents[2]

# One line of each kind exactly as the agents wrote it before the protocol had a module
# (copied from an events folder of a real run, values shortened), and the event it means.
# The wire format did not change: these lines must still decode, and encode back the same.
WIRE: list[tuple[str, p.Event]] = [
    ('{"ev":"task","id":7,"w":"s-single/12","ok":true,"t0":10.5,"t1":10.75,"cpu":0.24,'
     '"core":1,"err":null}',
     p.Task(7, "s-single/12", True, 10.5, 10.75, 0.24, 1, None)),
    ('{"ev":"task","id":3,"w":"s-single","ok":false,"t0":null,"t1":11.0,"cpu":0.0,'
     '"core":null,"err":"BrokenProcessPool: gone"}',
     p.Task(3, "s-single", False, None, 11.0, 0.0, None, "BrokenProcessPool: gone")),
    ('{"ev":"ready","w":"m-w0/1","c":"m-w0","t":9.5,"cpu_count":8,"affinity":2,'
     '"quota":0.5,"tid":41}',
     p.Ready("m-w0/1", "m-w0", 9.5, 8, 2, 0.5, 41)),
    ('{"ev":"expect","c":"m-feeder","n":0,"t":9.0}', p.Expect("m-feeder", 0, 9.0)),
    ('{"ev":"avail","c":"m-feeder","t":9.75,"n":120}', p.Avail("m-feeder", 9.75, 120)),
    ('{"ev":"fed","c":"m-feeder","t":9.8,"n":120}', p.Fed("m-feeder", 9.8, 120)),
    ('{"ev":"requeue","id":5,"w":"m-w1","by":"m-w0/1","t":12.0,"dead":false}',
     p.Requeue(5, "m-w1", "m-w0/1", 12.0, False)),
    ('{"ev":"error","c":"m-w0","t":13.0,"err":"redis unreachable, reconnecting: x",'
     '"w":"m-w0/1","recoverable":true}',
     p.Error("m-w0", 13.0, "redis unreachable, reconnecting: x", "m-w0/1", True)),
    ('{"ev":"error","c":"s-single","t":8.0,"err":"ModuleNotFoundError: No module named \'x\'"}',
     p.Error("s-single", 8.0, "ModuleNotFoundError: No module named 'x'")),
    ('{"ev":"reconnect","c":"m-w0","w":"m-w0/1","t":14.0}', p.Reconnect("m-w0", "m-w0/1", 14.0)),
    ('{"ev":"poison","id":36,"c":"s-single","t":15.0}', p.Poison(36, "s-single", 15.0)),
    ('{"ev":"procs","c":"s-single","t":16.0,"procs":[{"pid":1,"ppid":0,"name":"python3",'
     '"cpu":0.5,"rss":1000,"thr":[[1,0.25,3.0],[9,0.125,null]],"uss":600,"pss":700}]}',
     p.Procs("s-single", 16.0, (p.Proc(1, 0, "python3", 0.5, 1000, 600, 700,
                                       ((1, 0.25, 3.0), (9, 0.125, None))),))),
    ('{"ev":"exit","c":"s-single","w":"s-single/14","t":17.0,"code":-9}',
     p.Exit("s-single", 17.0, "s-single/14", -9)),
    ('{"ev":"stall","c":"s-single","t":18.0,"pending":[4,9]}', p.Stall("s-single", 18.0, (4, 9))),
]


def test_the_wire_examples_cover_every_kind() -> None:
    assert {type(e) for _, e in WIRE} == set(p.EVENT_TYPES)
    assert set(p.KINDS) == {t.KIND for t in p.EVENT_TYPES}  # one kind name per class


@pytest.mark.parametrize(("line", "event"), WIRE, ids=[json.loads(x)["ev"] for x, _ in WIRE])
def test_every_kind_reads_the_old_lines_and_writes_them_back(line: str, event: p.Event) -> None:
    assert p.decode(line) == event
    assert p.decode(line.encode()) == event
    encoded = event.encode()
    assert encoded.endswith(b"\n") and encoded.count(b"\n") == 1
    assert json.loads(encoded) == json.loads(line)  # the same keys and values
    assert p.decode(encoded) == event


def test_optional_fields_older_agents_left_out_take_their_defaults() -> None:
    assert p.decode('{"ev":"requeue","id":3,"w":"w0","by":"w1/7","t":5.0}') == \
        p.Requeue(3, "w0", "w1/7", 5.0, dead=False)
    assert p.decode('{"ev":"ready","w":"c/1","c":"c","t":1,"cpu_count":8,"affinity":4,'
                    '"quota":null}').tid is None
    proc = p.decode('{"ev":"procs","c":"c","t":1,"procs":[{"pid":1,"ppid":0,"name":"x",'
                    '"cpu":1,"rss":2,"thr":[[5,0.5]]}]}')
    assert isinstance(proc, p.Procs)
    assert proc.procs[0] == p.Proc(1, 0, "x", 1.0, 2, None, None, ((5, 0.5, None),))


@pytest.mark.parametrize("line", [
    b"{not json", b"\xff\xfe", b"[]", b"7", b'"task"', b"{}", b'{"nothing":"here"}',
    b'{"ev":"task","id":1,"w":"c/1"}',  # no ok, no t1
    b'{"ev":"task","id":"x","w":"c/1","ok":true,"t1":1.0}',  # id not a number
    b'{"ev":["task"]}',  # an unhashable kind
    b'{"ev":"procs","c":"c","t":1,"procs":[7]}',
    b'{"ev":"task","id":1e999,"w":"c/1","ok":true,"t1":1.0}',  # inf is no id
    b"[" * 100_000,  # deeper than the parser's recursion limit
])
def test_garbage_raises_the_protocol_error_only(line: bytes) -> None:
    with pytest.raises(p.ProtocolError) as caught:
        p.decode(line)
    assert not isinstance(caught.value, p.UnknownEventKind)


def test_a_kind_not_in_the_protocol_is_its_own_error() -> None:
    with pytest.raises(p.UnknownEventKind) as caught:
        p.decode(b'{"ev":"heartbeat","c":"w0","t":1.0}')
    assert caught.value.kind == "heartbeat"
    assert isinstance(caught.value, p.ProtocolError)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=12,
)


@st.composite
def _near_misses(draw: Any) -> bytes:
    """An event of a real kind with some fields dropped or replaced by any JSON value."""
    _, event = draw(st.sampled_from(WIRE))
    wire = event.to_wire()
    for key in draw(st.lists(st.sampled_from(sorted(wire)), max_size=3)):
        if key != "ev":
            if draw(st.booleans()):
                wire.pop(key, None)
            else:
                wire[key] = draw(_json)
    return json.dumps(wire).encode()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode)
       | _json.map(lambda x: json.dumps(x).encode()) | _near_misses())
def test_decode_raises_nothing_but_the_protocol_error(line: bytes) -> None:
    try:
        event = p.decode(line)
    except p.ProtocolError:
        return
    assert isinstance(event, p.EVENT_TYPES)


# --------------------------------------------------------------------------- the agents


def _emitted_kinds(path: Path) -> set[str]:
    """Kinds a source file emits: protocol classes it constructs, and ``ev="..."`` literals
    (the fake runtime writes its lines as plain dicts, as a foreign agent might)."""
    kinds = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
            node.func, "id", None)
        cls = getattr(p, name or "", None)
        if isinstance(cls, type) and cls in p.EVENT_TYPES:
            kinds.add(cls.KIND)
        for kw in node.keywords:
            if kw.arg == "ev" and isinstance(kw.value, ast.Constant):
                kinds.add(str(kw.value.value))
    return kinds


def test_every_kind_an_agent_emits_is_known_and_read(tmp_path: Path) -> None:
    sources = sorted((ROOT / "topo" / "agent").glob("*.py")) + [ROOT / "tests" / "fakes.py"]
    emitted = {k for path in sources for k in _emitted_kinds(path)}
    # a scan that finds nothing proves nothing: these are emitted by name in the agents
    assert {"task", "ready", "expect", "avail", "requeue", "error", "procs"} <= emitted
    assert emitted <= set(p.KINDS), emitted - set(p.KINDS)
    # ... and the reader takes a line of each kind without an error
    events = tmp_path / "events"
    events.mkdir()
    (events / "all.jsonl").write_bytes(b"".join(e.encode() for _, e in WIRE))
    log = EventLog(events, task_count=10)
    assert log.poll() == len(WIRE)
    assert log.errors == [
        "s-single: ModuleNotFoundError: No module named 'x'"]  # the one fatal error line


def test_every_event_class_is_listed() -> None:
    classes = {v for v in vars(p).values()
               if isinstance(v, type) and isinstance(getattr(v, "KIND", None), str)}
    assert classes == set(p.EVENT_TYPES)


# --------------------------------------------------------------------------- configuration


def test_the_configuration_round_trips_and_leaves_out_what_is_none() -> None:
    cfg = p.AgentConfig(container="s-single", task="cpu", params={"cpu_ms": 5}, seed=7,
                        tasks=40, poison=(12,), pool=p.PoolKind.MP_POOL, processes="auto",
                        preload=False, stall_timeout=2.5)
    text = cfg.to_json()
    assert json.loads(text) == {
        "container": "s-single", "task": "cpu", "params": {"cpu_ms": 5}, "seed": 7,
        "tasks": 40, "poison": [12], "max_attempts": 3, "telemetry": True,
        "pool": "mp-pool", "processes": "auto", "preload": False, "stall_timeout": 2.5}
    back = p.AgentConfig.from_json(text)
    assert back == cfg and back.pool is p.PoolKind.MP_POOL


@pytest.mark.parametrize(("text", "says"), [
    ('{"container":"c","task":"noop","params":{},"seed":0,"tasks":1,"colour":"red"}',
     "unknown configuration keys: colour"),
    ('{"container":"c","task":"noop","params":{},"seed":0,"tasks":1,"pool":"thread-pool"}',
     "'thread-pool' is not a valid PoolKind"),
    ('{"container":"c","task":"noop"}', "missing 3 required positional arguments"),
    ("[1]", "unreadable agent configuration"),
    ("{", "unreadable agent configuration"),
])
def test_a_bad_configuration_is_a_protocol_error(text: str, says: str) -> None:
    with pytest.raises(p.ProtocolError, match=says.replace("(", r"\(")):
        p.AgentConfig.from_json(text)


# --------------------------------------------------------------------------- kinds as strings


def test_a_kind_is_its_string_wherever_it_shows() -> None:
    kind = PoolKind.MP_POOL
    assert (str(kind), f"{kind}", f"{kind:>8}", repr(kind)) == (
        "mp-pool", "mp-pool", " mp-pool", "'mp-pool'")
    assert json.dumps({"pool": kind, "s": RunStatus.WORKERS_EXITED}) == \
        '{"pool": "mp-pool", "s": "workers-exited"}'
    # a result file read back holds plain strings: they must find and equal the members
    assert {"not-reached": 1}[FaultStatus.NOT_REACHED] == 1
    assert {FaultStatus.NOT_REACHED: 1}["not-reached"] == 1
    assert "ok" == RunStatus.OK and RunStatus("ok") is RunStatus.OK
    assert Signal(1.0, "exit", "c") == Signal(1.0, SignalKind.EXIT, "c")


# --------------------------------------------------------------------------- the records

RECORDS = (p.AgentConfig, p.Proc, *p.EVENT_TYPES)

# Each record's constructor defaults as the frozen dataclasses declared them.
DEFAULTS: dict[type, dict[str, Any]] = {
    p.AgentConfig: {"poison": (), "max_attempts": 3, "data_dir": None, "telemetry": True,
                    "pool": None, "processes": None, "preload": None, "stall_timeout": None,
                    "linger": None,
                    "redis_host": None, "queue": None, "prefetch": None, "acks_late": None,
                    "visibility_timeout": None},
    p.Proc: {"uss": None, "pss": None, "threads": ()},
    p.Task: {"cpu": 0.0, "core": None, "error": None},
    p.Ready: {"tid": None}, p.Expect: {}, p.Avail: {}, p.Fed: {}, p.Requeue: {"dead": False},
    p.Error: {"worker": None, "recoverable": False}, p.Reconnect: {}, p.Poison: {},
    p.Procs: {}, p.Exit: {"worker": None, "code": None}, p.Stall: {"pending": ()},
}


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_a_records_constructor_takes_its_fields_in_order_with_their_types(cls: type) -> None:
    # The fields are written twice, in the class body and in __init__: they must agree.
    params = list(inspect.signature(cls).parameters.values())
    assert [x.name for x in params] == list(cls.FIELDS)
    assert {x.name: x.annotation for x in params} == \
        {n: t for n, t in cls.__annotations__.items() if n in cls.FIELDS}
    assert {x.name: x.default for x in params if x.default is not x.empty} == DEFAULTS[cls]
    assert all(x.kind is x.POSITIONAL_OR_KEYWORD for x in params)


@pytest.mark.parametrize(("line", "event"), WIRE, ids=[json.loads(x)["ev"] for x, _ in WIRE])
def test_a_record_holds_its_fields_only_and_is_frozen(line: str, event: p.Event) -> None:
    assert list(vars(event)) == list(type(event).FIELDS)
    name = type(event).FIELDS[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, name, 1)
    with pytest.raises(AttributeError):
        delattr(event, name)
    with pytest.raises(AttributeError):
        event.colour = "red"  # type: ignore
    assert p.decode(line) == event  # unchanged


def test_records_compare_hash_and_show_by_their_fields() -> None:
    task = p.Task(7, "c/1", True, 1.5, 2.0, 0.25, 1)
    same = p.Task(id=7, worker="c/1", ok=True, start=1.5, end=2.0, cpu=0.25, core=1, error=None)
    assert task == same and hash(task) == hash(same) and len({task, same}) == 1
    assert task != p.Task(7, "c/1", True, 1.5, 2.0, 0.25, 0)
    assert p.Avail("c", 1.0, 3) != p.Fed("c", 1.0, 3)  # the same fields, another kind
    assert (task == (7, "c/1", True, 1.5, 2.0, 0.25, 1, None)) is False
    assert repr(task) == ("Task(id=7, worker='c/1', ok=True, start=1.5, end=2.0, cpu=0.25, "
                          "core=1, error=None)")
    assert repr(p.Stall("c", 1.0)) == "Stall(container='c', t=1.0, pending=())"


def test_replace_copies_a_record_with_some_fields_changed() -> None:
    cfg = p.AgentConfig(container="", task="noop", params={"a": 1}, seed=1, tasks=4)
    named = cfg.replace(container="w0", prefetch=8)
    assert (named.container, named.prefetch, named.task, named.params) == ("w0", 8, "noop", {"a": 1})
    assert (cfg.container, cfg.prefetch) == ("", None)
    assert type(named) is p.AgentConfig
    with pytest.raises(TypeError):
        cfg.replace(colour="red")


@pytest.mark.parametrize(("line", "event"), WIRE, ids=[json.loads(x)["ev"] for x, _ in WIRE])
def test_a_record_survives_copy_and_pickle(line: str, event: p.Event) -> None:
    for twin in (copy.copy(event), copy.deepcopy(event), pickle.loads(pickle.dumps(event))):
        assert twin == event and type(twin) is type(event) and twin.encode() == event.encode()


@pytest.mark.parametrize("module", ["topo.agent.protocol", "topo.agent.common"])
def test_what_every_agent_imports_needs_neither_typing_nor_dataclasses(module: str) -> None:
    # Every agent imports these first, at a small CPU quota: typing, dataclasses and inspect
    # were their largest avoidable imports (benchmarks/scale.py --import-cost).
    code = (f"import sys, {module}; "
            "print(sorted({'typing', 'dataclasses', 'inspect'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]"
