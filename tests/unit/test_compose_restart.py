"""single.restart: the single container's restart policy, from the scenario to the engine,
to the fake engine's behaviour and to both Compose flavours."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from tests.fakes import FakeRuntime, scenario
from tests.unit.test_compose import started_by_runtime
from topo import compose
from topo import plan as planning
from topo.model import PoolKind, Role, TopologyPlan

POLICIES = ("no", "on-failure", "always", "unless-stopped")
# What the Docker API is given for each policy and what a stack file says, written by hand
# from Docker's documentation (on-failure without a retry cap: as multi's workers get it).
ENGINE = {"no": None, "on-failure": {"Name": "on-failure", "MaximumRetryCount": 0},
          "always": {"Name": "always"}, "unless-stopped": {"Name": "unless-stopped"}}
SWARM = {"no": "none", "on-failure": "on-failure", "always": "any", "unless-stopped": "any"}


def single_plan(restart: str, pool: str = "process-pool") -> TopologyPlan:
    sc = scenario(topologies=("single",))
    assert sc.single is not None
    sc = dataclasses.replace(sc, single=dataclasses.replace(sc.single, restart=restart,
                                                            pool=PoolKind(pool)))
    return planning.plan(sc, "single", "r1", "topo-r1-s0", "img:1", "pw")


@pytest.mark.parametrize("restart", POLICIES)
def test_the_fake_engine_restarts_a_killed_single_container_as_its_policy_says(
        tmp_path: Path, restart: str) -> None:
    runtime = FakeRuntime()
    deployment = runtime.deploy(single_plan(restart), str(tmp_path))
    runtime.kill(deployment, "topo-r1-s0-single")
    state = runtime.states(deployment)["topo-r1-s0-single"]
    assert (state.running, state.restarts) == ((False, 0) if restart == "no" else (True, 1))


@pytest.mark.parametrize("restart", POLICIES)
def test_the_docker_runtime_gives_the_single_container_its_policy(restart: str) -> None:
    (started,) = started_by_runtime(single_plan(restart)).values()
    assert started["restart_policy"] == ENGINE[restart]


@pytest.mark.parametrize("restart", POLICIES)
def test_both_compose_flavours_carry_the_single_containers_policy(restart: str) -> None:
    plan = single_plan(restart)
    sc = scenario(topologies=("single",))
    plain = yaml.safe_load(compose.render(plan, sc))["services"]["single"]
    stack = yaml.safe_load(compose.render(plan, sc, swarm=True))["services"]["single"]
    assert plain["restart"] == restart
    assert stack["deploy"]["restart_policy"] == {"condition": SWARM[restart]}


def test_celery_prefork_gives_its_single_container_the_policy_too() -> None:
    plan = single_plan("always", pool="celery-prefork")
    roles = {c.role: c.restart for c in plan.containers}
    assert roles[Role.SINGLE] == "always"
    assert roles[Role.FEEDER] == "no"  # the feeder exits once the batch is queued
