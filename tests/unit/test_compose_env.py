"""The agents' configuration as plain TOPO_* variables (what an adopted Compose file holds):
read back it is the same AgentConfig the JSON in TOPO_CONFIG gives."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from topo.agent.protocol import AgentConfig, PoolKind, ProtocolError, QueueKind

# A worker's configuration and its variables, written out by hand.
WORKER = AgentConfig(container="", task="etl", params={"pattern": "$HOME", "rows": 3, "tag": "3",
                                                       "on": "true", "cols": ["a", 1]},
                     seed=9, tasks=50, poison=(12,), data_dir="/data", queue=QueueKind.RELIABLE,
                     redis_host="redis", prefetch=4)
WORKER_ENV = {
    "TOPO_TASK": "etl", "TOPO_SEED": "9", "TOPO_TASKS": "50", "TOPO_POISON": "12",
    "TOPO_MAX_ATTEMPTS": "3", "TOPO_DATA_DIR": "/data", "TOPO_TELEMETRY": "true",
    "TOPO_REDIS_HOST": "redis", "TOPO_QUEUE": "reliable", "TOPO_PREFETCH": "4",
    # a string that would read back as a number or a boolean is written as JSON
    "TOPO_PARAM_pattern": "$HOME", "TOPO_PARAM_rows": "3", "TOPO_PARAM_tag": '"3"',
    "TOPO_PARAM_on": '"true"', "TOPO_PARAM_cols": '["a", 1]',
}


def test_a_replicas_variables_leave_the_name_out_and_read_back_with_the_host_name() -> None:
    assert WORKER.to_env(container=False) == WORKER_ENV
    back = AgentConfig.from_env({**WORKER_ENV, "PATH": "/usr/bin", "TOPO_RUN_DIR": "/run/topo"},
                                hostname="3f2a9c1d0b7e")
    assert back == AgentConfig.from_json(WORKER.to_json().replace('"container": ""',
                                                                  '"container": "3f2a9c1d0b7e"'))


def test_a_named_agent_keeps_its_name() -> None:
    single = AgentConfig(container="single", task="cpu", params={}, seed=0, tasks=10,
                         pool=PoolKind.MP_POOL, processes="auto", preload=True, stall_timeout=2.5)
    env = single.to_env()
    assert env == {"TOPO_CONTAINER": "single", "TOPO_TASK": "cpu", "TOPO_SEED": "0",
                   "TOPO_TASKS": "10", "TOPO_MAX_ATTEMPTS": "3", "TOPO_TELEMETRY": "true",
                   "TOPO_POOL": "mp-pool", "TOPO_PROCESSES": "auto", "TOPO_PRELOAD": "true",
                   "TOPO_STALL_TIMEOUT": "2.5"}
    assert AgentConfig.from_env(env, hostname="elsewhere") == single


_params = st.dictionaries(
    st.text("abcxyz_", min_size=1, max_size=5),
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.lists(st.integers(), max_size=3), max_size=4)
_configs = st.builds(
    AgentConfig, container=st.text("abc-0", min_size=1, max_size=6),
    task=st.sampled_from(["noop", "etl", "pkg.mod:run"]), params=_params,
    seed=st.integers(0, 2**31), tasks=st.integers(1, 10**6),
    poison=st.lists(st.integers(0, 1000), max_size=3).map(tuple),
    max_attempts=st.integers(1, 9), telemetry=st.booleans(),
    pool=st.none() | st.sampled_from(list(PoolKind)),
    processes=st.none() | st.just("auto") | st.integers(1, 64),
    preload=st.none() | st.booleans(), queue=st.none() | st.sampled_from(list(QueueKind)),
    prefetch=st.none() | st.integers(1, 100), acks_late=st.none() | st.booleans(),
    visibility_timeout=st.none() | st.floats(0.5, 1e4))


@settings(max_examples=200, deadline=None)
@given(_configs)
def test_both_forms_read_back_as_the_same_configuration(cfg: AgentConfig) -> None:
    from_json = AgentConfig.from_json(cfg.to_json())
    assert AgentConfig.from_env(cfg.to_env(), hostname="other") == from_json == cfg


@pytest.mark.parametrize("key,value", [("TOPO_TASKS", "many"), ("TOPO_TELEMETRY", "yes"),
                                       ("TOPO_QUEUE", "fifo"), ("TOPO_POISON", "1,x")])
def test_an_unreadable_variable_is_a_protocol_error_naming_it(key: str, value: str) -> None:
    with pytest.raises(ProtocolError, match="unreadable agent configuration"):
        AgentConfig.from_env({**WORKER_ENV, key: value}, hostname="h")


_LOAD = "from topo.agent.protocol import AgentConfig; print(AgentConfig.load().to_json())"


def test_an_agent_without_topo_config_reads_the_variables_and_its_host_name() -> None:
    env = {"PATH": "/usr/bin:/bin", **WORKER_ENV}
    out = subprocess.run([sys.executable, "-c", _LOAD], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert json.loads(out)["container"] == socket.gethostname()
    both = {**env, "TOPO_CONFIG": WORKER.to_json()}  # topo's own runs: the JSON wins
    out = subprocess.run([sys.executable, "-c", _LOAD], env=both, capture_output=True,
                         text=True, check=True).stdout
    assert AgentConfig.from_json(out) == WORKER
