"""The scenario JSON Schema: generated from the validator's field tables, shipped in the
package, and agreeing with the validator on every scenario topo ships and on broken ones."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from topo import scenario
from topo.errors import ScenarioError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted([*ROOT.glob("scenarios/*.yaml"), *ROOT.glob("examples/**/*.yaml"),
                  *ROOT.glob("tests/golden/gate/*.yaml")])
VALIDATOR = jsonschema.Draft202012Validator(scenario.schema())


def test_the_shipped_schema_is_the_generated_one() -> None:
    shipped = resources.files("topo").joinpath("schema/scenario.schema.json").read_text("utf-8")
    assert shipped == scenario.schema_text(), "regenerate: topo schema -o topo/schema/scenario.schema.json"


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(scenario.schema())


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT)) for p in SHIPPED])
def test_every_shipped_scenario_passes_both(path: Path) -> None:
    scenario.load(path)
    VALIDATOR.validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    first = path.read_text(encoding="utf-8").splitlines()[0]
    # editors (yaml-language-server) find the schema from this line
    assert first.startswith("# yaml-language-server: $schema=")
    target = (path.parent / first.split("$schema=", 1)[1]).resolve()
    assert target == ROOT / "topo" / "schema" / "scenario.schema.json"


GOOD = "name: etl\nworkers: 2\nworkload: {task: cpu, tasks: 10}\n"


@pytest.mark.parametrize(("extra", "field"), [
    ("workers: four\n", "workers"),
    ("workers: 0\n", "workers"),
    ("wrokers: 2\n", "wrokers"),
    ("topologies: {single: {pool: threads}}\n", "topologies.single.pool"),
    ("resources: {memory: lots}\n", "resources.memory"),
    ("resources: {cpus: 0}\n", "resources.cpus"),
    ("run: {repeat: 101}\n", "run.repeat"),
    ("run: {timeout: soon}\n", "run.timeout"),
    ("faults: [{name: x, kind: explode, at: 50%}]\n", "faults[0].kind"),
    ("faults: [{name: x, kind: pause, at: later, duration: 1s}]\n", "faults[0].at"),
    ("name: 'no spaces allowed'\n", "name"),
])
def test_a_broken_scenario_fails_both(extra: str, field: str) -> None:
    text = GOOD.replace("workers: 2\n", "") if extra.startswith("workers") else GOOD
    text = text.replace("name: etl\n", "") if extra.startswith("name") else text
    text += extra
    VALIDATOR.validate(yaml.safe_load(GOOD))  # the unbroken one passes
    with pytest.raises(ScenarioError, match=field.replace("[", r"\[").replace("]", r"\]")):
        scenario.parse(text)
    assert list(VALIDATOR.iter_errors(yaml.safe_load(text))), text


def test_a_field_added_to_a_table_reaches_the_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    # how a new field flows: one Field in a table, and the schema has it, with its rules
    monkeypatch.setitem(scenario._RUN, "cooldown", scenario.Field(scenario._int(0, 5), 0, "x"))
    run = scenario.schema()["properties"]["run"]["properties"]
    assert run["cooldown"] == {"description": "x", "type": "integer", "minimum": 0,
                               "maximum": 5, "default": 0}


def test_topo_schema_prints_it() -> None:
    from .test_report_cli import topo

    p = topo("schema")
    assert p.returncode == 0 and json.loads(p.stdout) == scenario.schema()
