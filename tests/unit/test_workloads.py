"""Built-in tasks, per-task seeds, binding arguments, and resolving ``module:function``."""

from __future__ import annotations

import json
import textwrap
import time

import pytest

from topo import workloads
from topo.workloads import BUILTINS, bind, resolve, task_seed


def test_the_builtins_are_the_documented_five():
    assert sorted(BUILTINS) == ["cpu", "etl", "io", "memory", "noop"]


def test_noop():
    assert workloads.noop() is None
    assert workloads.noop(seed=5) is None


def test_cpu_with_fixed_work_is_a_known_number():
    assert workloads.cpu(seed=70000) == 70000 & 0xFFFF == 4464  # no work: the seed's low bits
    assert workloads.cpu(seed=1, work=1) == 1103515245  # one step of the generator


def test_cpu_ms_spends_at_least_that_much_process_cpu_time():
    before = time.process_time()
    workloads.cpu(cpu_ms=30)
    assert time.process_time() - before >= 0.030


def test_io_sleeps_about_ms():
    before = time.perf_counter()
    assert workloads.io(seed=1, ms=20, cpu_work=10) == 0  # the same work twice, xor-ed
    assert time.perf_counter() - before >= 0.020


def test_etl_is_deterministic_per_seed():
    a = workloads.etl(seed=3, rows=200, groups=4)
    assert a == workloads.etl(seed=3, rows=200, groups=4)
    assert a != workloads.etl(seed=4, rows=200, groups=4)
    assert set(a) == {"A", "B", "C", "D"}
    assert list(a) == sorted(a)
    # rows qualify only when price*qty > 50, then get 1.2x: a mean is above 60 and at most
    # 1.2 * 1000 * 9
    assert all(60.0 < v <= 10800.0 for v in a.values())


def test_memory_touches_the_asked_size():
    assert workloads.memory(mb=1, hold_ms=1) == 1024 * 1024
    assert workloads.memory(mb=0.5, hold_ms=0) == 512 * 1024


def test_task_seed_literals():
    assert task_seed(0, 0) == 0
    assert task_seed(1, 2) == 1_000_003 + 2 * 7919 == 1015841
    assert task_seed(3, 0) == 3000009
    # masked to 31 bits
    assert task_seed(10**9, 10**9) == (10**9 * 1_000_003 + 10**9 * 7919) & 0x7FFFFFFF


def test_task_seed_is_deterministic_and_differs_per_id():
    seeds = [task_seed(7, i) for i in range(1000)]
    assert seeds == [task_seed(7, i) for i in range(1000)]
    assert len(set(seeds)) == 1000
    assert task_seed(7, 0) != task_seed(8, 0)


def test_bind_gives_a_builtin_the_per_task_seed():
    run = bind("cpu", {}, seed=1)
    assert run(2) == task_seed(1, 2) & 0xFFFF == 32801
    assert run(2) == run(2)
    assert run(3) != run(2)
    assert bind("cpu", {"work": 1}, seed=0)(0) == 0  # seed 0, one step from 0
    assert bind("etl", {"rows": 50}, seed=9)(4) == workloads.etl(seed=task_seed(9, 4), rows=50)
    assert bind("noop", {}, seed=0)(1) is None


USER_MODULE = '''
def with_seed(seed, x=0):
    return ("seed", seed, x)

def with_task_id(task_id, x=0):
    return ("task_id", task_id, x)

def with_both(x, seed, task_id):
    return (x, seed, task_id)

def plain(x=0):
    return ("plain", x)

def anything(**kwargs):
    return kwargs

def broken(seed):
    raise ValueError(f"bad input {seed}")

NOT_CALLABLE = 3
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch) -> str:
    (tmp_path / "topo_test_user_tasks.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "topo_test_user_tasks"


def test_bind_passes_seed_and_task_id_only_when_named(user_module):
    assert bind(f"{user_module}:with_seed", {"x": 5}, seed=1)(2) == ("seed", 1015841, 5)
    assert bind(f"{user_module}:with_task_id", {"x": 5}, seed=1)(2) == ("task_id", 2, 5)
    assert bind(f"{user_module}:with_both", {"x": 5}, seed=1)(2) == (5, 1015841, 2)
    assert bind(f"{user_module}:plain", {"x": 5}, seed=1)(2) == ("plain", 5)
    assert bind(f"{user_module}:anything", {"x": 5}, seed=1)(2) == {"x": 5}


def test_bind_does_not_share_params_between_calls(user_module):
    params = {"x": 1}
    run = bind(f"{user_module}:with_both", params, seed=0)
    run(1)
    run(2)
    assert params == {"x": 1}


def test_a_task_error_propagates_to_the_caller(user_module):
    with pytest.raises(ValueError, match="bad input 1015841"):
        bind(f"{user_module}:broken", {}, seed=1)(2)


def test_resolve_builtins_and_module_functions(user_module):
    assert resolve("cpu") is workloads.cpu
    assert resolve("json:dumps") is json.dumps
    assert resolve(f"{user_module}:plain")() == ("plain", 0)


def test_resolve_unknown_names_raise(user_module):
    with pytest.raises(ModuleNotFoundError):
        resolve("no_such_module_for_topo:fn")
    with pytest.raises(ModuleNotFoundError):
        resolve("cpuu")  # a misspelt built-in is taken for a module
    with pytest.raises(AttributeError):
        resolve("json:no_such_function")
    with pytest.raises(TypeError, match="is not callable"):
        resolve(f"{user_module}:NOT_CALLABLE")
