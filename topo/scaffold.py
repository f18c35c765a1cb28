"""``topo init``: a first scenario for the user's own ``module:function``, as commented YAML.

It looks for the module under the current folder (so ``workload.path`` points at the folder
it imports from) and for a ``requirements.txt`` beside it or above it, and leaves the data
folder commented out. Pure apart from looking at files: the CLI validates the text with
topo's own loader and writes it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

SEARCH_DEPTH = 3  # folders below the current one where the module is looked for
SKIP = {".git", ".venv", "venv", "__pycache__", "node_modules", "site-packages", ".tox",
        "build", "dist"}
_TASK_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


@dataclass(frozen=True)
class Found:
    """Where the pieces of a user's workload are, as absolute paths (None: not found)."""

    task: str
    root: Path | None  # the folder that holds the module's top package or file
    requirements: Path | None


def valid_task(task: str) -> bool:
    return _TASK_RE.fullmatch(task) is not None


def find(task: str, cwd: Path) -> Found:
    """Look for ``task``'s module under ``cwd`` (``cwd`` itself first, then up to
    SEARCH_DEPTH folders down, in name order), and for a requirements.txt in the folder
    found or one of its parents up to ``cwd``."""
    module = Path(*task.partition(":")[0].split("."))
    wanted = (module.with_suffix(".py"), module / "__init__.py")
    root = next((d for d in _folders(cwd) if any((d / w).is_file() for w in wanted)), None)
    requirements = None
    if root is not None:
        for folder in (root, *root.parents):
            if (folder / "requirements.txt").is_file():
                requirements = folder / "requirements.txt"
                break
            if folder == cwd:
                break
    return Found(task=task, root=root, requirements=requirements)


def _folders(cwd: Path) -> list[Path]:
    out = []
    for top, dirs, _ in os.walk(cwd):
        dirs[:] = sorted(d for d in dirs if d not in SKIP and not d.startswith("."))
        if len(Path(top).relative_to(cwd).parts) >= SEARCH_DEPTH:
            dirs[:] = []
        out.append(Path(top))
    return out


def _relative(path: Path, base: Path) -> str:
    rel = os.path.relpath(path, base)
    return rel if rel.startswith("..") else f"./{rel}"


def name_of(task: str) -> str:
    """A scenario name from the module's last part (names go into container names)."""
    last = task.partition(":")[0].split(".")[-1]
    return (re.sub(r"[^A-Za-z0-9_-]", "-", last).lstrip("-_") or "workload")[:40]


def render(found: Found, out: Path, cpus: int) -> str:
    """The scenario text; paths are written relative to the folder of ``out``."""
    base = out.resolve().parent
    module, _, function = found.task.partition(":")
    top = module.split(".")[0]
    if found.root is not None:
        path = f"  path: {_relative(found.root, base)}  # copied into the worker image; {module} imports from here"
    else:
        path = f"  # path: ./src  # NOT FOUND under the current folder: the folder that holds {top}"
    if found.requirements is not None:
        req = (f"  requirements: {_relative(found.requirements, base)}  # resolved on the host"
               " into wheels; no network in the build")
    else:
        req = "  # requirements: ./requirements.txt  # its dependencies, if it has any"
    return TEMPLATE.format(task=found.task, name=name_of(found.task), function=function,
                           out=out, path=path, requirements=req, cpus=cpus)


TEMPLATE = """\
# A scenario for {task}, written by `topo init`. Edit it, then:
#   topo validate {out}
#   topo compare {out}
# Every field: docs/scenario-format.md
version: 1
name: {name}
description: {task} as one container with N processes, and as N containers with a queue.

workload:
  task: {task}  # {function}() gets task_id, seed and data_dir if its signature names them
{path}
{requirements}
  # data: ./data  # a folder mounted read-only at /data in every worker (data_dir, TOPO_DATA)
  tasks: 200  # task ids 0..199, the same in both topologies
  params: {{}}  # keyword arguments every call gets
  seed: 1

workers: 4  # processes in `single`, worker containers in `multi`

resources:  # the TOTAL budget of each topology
  cpus: {cpus}
  memory: 2g

topologies:
  single:
    pool: process-pool  # process-pool | mp-pool | supervisor
    preload: false  # true: import the module once before forking (pages shared copy-on-write)
  multi:
    queue: reliable  # reliable | simple

run:
  repeat: 3  # runs per topology, alternating
  timeout: 300s
"""
