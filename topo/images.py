"""What goes into a worker image, decided on the host: the facts of the image it is built
on, its tag, and its Dockerfile. Pure; the Docker adapter runs the probe and the build.

A worker image is ``FROM`` topo's base image or the team's own image (``workload.image``),
plus a thin layer: topo's agent, the scenario's code folder, and the wheels of the scenario's
requirements (the agent itself needs only the standard library). Its tag
is a hash of everything that goes in, so an unchanged set is never built twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import topo
from topo.errors import UnusableImageError
from topo.wheels import Target, Wheelhouse

MIN_PYTHON = (3, 9)
BASE_IMAGE = os.environ.get("TOPO_BASE_IMAGE", "topo-base:bookworm")
# What topo.agent imports besides the standard library: nothing. Its own Redis client
# (topo.agent.resp) and /proc reader (topo.agent.telemetry) replace redis-py and psutil, so a
# team's image gets no package of topo's beside its own requirements.
AGENT_PACKAGES: tuple[str, ...] = ()
# The queue libraries a scenario may run instead of topo's queue (model.PEER_QUEUES), pinned:
# a figure measured for "celery" means this Celery. Installed from wheels like a workload's
# requirements, with the redis-py each one requires (the redis extras, or rq's own).
PEER_PACKAGES = {"celery": "celery[redis]==5.7.0", "rq": "rq==3.0.0",
                 "dramatiq": "dramatiq[redis]==2.2.1"}
SITE = "/opt/topo/site"  # where the wheels are installed in the worker image
# topo-base:bookworm is Debian bookworm (glibc 2.36) with Debian's python3 (3.11) and
# python3-redis, python3-psutil, however scripts/bootstrap.sh built it; the label says which
# image is one.
BASE_LABEL = ("topo.image", "base")
BASE_PYTHON = "3.11.2"  # bookworm's; the official 3.11 image is newer: markers then err on the safe side
BASE_GLIBC = (2, 36)
DOCKER_ARCH = {"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "ppc64le": "ppc64le",
               "s390x": "s390x", "arm": "armv7l"}

# Run as `python3 -c PROBE` in a short-lived container of the image: one JSON line.
PROBE = r"""
import importlib, json, os, platform, sys
libc = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else None
if not libc:
    musl = [f for d in ("/lib", "/usr/lib") if os.path.isdir(d) for f in os.listdir(d) if f.startswith("ld-musl")]
    libc = "musl 1.2" if musl else ""
found = {}
for name in ("redis", "psutil"):
    try:
        found[name] = getattr(importlib.import_module(name), "__version__", "?")
    except Exception:
        pass
print(json.dumps({"python": platform.python_version(), "implementation": sys.implementation.name,
                  "machine": platform.machine(), "libc": libc, "packages": found}))
""".strip()


@dataclass(frozen=True)
class ImageFacts:
    """What a worker image's base offers: its Python, platform and the agent's packages."""

    python: str  # "3.11.2" (or "3.11" when known from the base image's recipe)
    machine: str  # x86_64
    libc: str = "glibc"
    libc_version: tuple[int, int] = (2, 17)
    packages: Mapping[str, str] = field(default_factory=dict)  # agent package -> version
    implementation: str = "cpython"
    recorded: bool = False  # known from the image's label, not probed

    @property
    def python_version(self) -> tuple[int, int]:
        major, minor = self.python.split(".")[:2]
        return int(major), int(minor)

    def target(self) -> Target:
        full = self.python if self.python.count(".") == 2 else ""
        return Target(python=self.python_version, machine=self.machine, libc=self.libc,
                      libc_version=self.libc_version, full_version=full)

    def missing(self) -> tuple[str, ...]:
        """The agent's packages the image lacks: topo adds their wheels."""
        return tuple(p for p in AGENT_PACKAGES if p not in self.packages)


def wheels_wanted(facts: ImageFacts, peers: tuple[str, ...]) -> tuple[str, ...]:
    """What topo adds as wheels besides the workload's requirements: the agent's packages the
    image lacks, and the pinned queue libraries the scenario runs (``Scenario.peers``)."""
    return facts.missing() + tuple(PEER_PACKAGES[p] for p in peers)


def base_facts(labels: Mapping[str, str], architecture: str) -> ImageFacts | None:
    """The facts of topo's own base image, known from how it is made; None for other images."""
    if labels.get(BASE_LABEL[0]) != BASE_LABEL[1]:
        return None
    return ImageFacts(python=BASE_PYTHON, machine=DOCKER_ARCH.get(architecture, architecture),
                      libc_version=BASE_GLIBC, packages={p: "debian" for p in AGENT_PACKAGES},
                      recorded=True)


def parse_probe(image: str, output: str) -> ImageFacts:
    """The facts in the probe's output; UnusableImageError when topo cannot use this Python."""
    try:
        doc = json.loads(output.strip().splitlines()[-1])
        libc_name, _, libc_ver = str(doc.get("libc") or "").partition(" ")
        major, minor = (int(x) for x in libc_ver.split(".")[:2])
        facts = ImageFacts(python=str(doc["python"]), machine=str(doc["machine"]),
                           libc="musl" if libc_name == "musl" else "glibc",
                           libc_version=(major, minor), packages=dict(doc.get("packages") or {}),
                           implementation=str(doc.get("implementation", "cpython")))
        facts.python_version  # noqa: B018 - it must parse
    except (ValueError, KeyError, IndexError, TypeError):
        raise UnusableImageError(f"workload.image {image}: its python3 did not say what it is "
                                 f"(got {output.strip()[-120:]!r})") from None
    check(image, facts)
    return facts


def check(image: str, facts: ImageFacts) -> None:
    """Refuse a Python topo's agent cannot run on, or wheels cannot be chosen for."""
    if facts.implementation != "cpython":
        raise UnusableImageError(f"workload.image {image}: python3 is {facts.implementation}; "
                                 "topo needs CPython (wheels are chosen for it)")
    if facts.python_version < MIN_PYTHON:
        raise UnusableImageError(f"workload.image {image}: python3 is {facts.python}; topo needs "
                                 f"Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer")


def facts_to_json(facts: ImageFacts) -> str:
    return json.dumps({"python": facts.python, "machine": facts.machine, "libc": facts.libc,
                       "libc_version": list(facts.libc_version), "packages": dict(facts.packages),
                       "implementation": facts.implementation, "recorded": facts.recorded})


def facts_from_json(text: str) -> ImageFacts:
    doc = json.loads(text)
    return ImageFacts(**{**doc, "libc_version": tuple(doc["libc_version"])})


# --------------------------------------------------------------------------- the worker image


def worker_tag(repo: str, from_id: str, files: Mapping[str, Path], house: Wheelhouse | None,
               recipe: str = "") -> str:
    """``repo:<hash>`` of everything a worker image is made of: the image it is built on (by
    id, so a rebuilt base makes a new worker), agent and code files, the wheelhouse (its
    manifest names the requirements and every wheel's sha256) and the Dockerfile (``recipe``:
    a changed recipe builds anew rather than reusing an image made the old way)."""
    digest = hashlib.sha256(from_id.encode())
    for rel, src in sorted(files.items()):
        digest.update(rel.encode() + b"\0" + src.read_bytes() + b"\0")
    if house is not None:
        digest.update(b"wheels\0" + house.digest.encode())
    if recipe:
        digest.update(b"recipe\0" + recipe.encode())
    return f"{repo}:{digest.hexdigest()[:16]}"


# Run in the build stage: every module under /opt/topo (topo's agent, the workload's code, the
# wheels' packages) gets its .pyc, checked by the source's hash rather than its mtime. Workers
# run with a read-only root and PYTHONDONTWRITEBYTECODE, so a module without one is compiled
# again at every start of every container, on a CPU quota as small as 1/64 of the host. A
# file that does not compile is left as it is: it fails at import, as it would without this.
# Packages pip already compiled (timestamp pycs, whose mtimes COPY keeps) are left as they are.
COMPILE = ("import compileall, py_compile; compileall.compile_dir('/opt/topo', quiet=2, "
           "invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)")


def dockerfile(from_image: str, house: Wheelhouse | None, stage_labels: Mapping[str, str]) -> str:
    """The worker image's Dockerfile. A first stage, as root, installs the wheels with pip
    run from its own wheel and no index at all, adds topo's agent and the workload's code,
    and compiles them; only /opt/topo reaches the worker image, so it grows by what is
    installed, not by the wheels as well, and keeps the user of the image it is built on."""
    labels = " ".join(f"{k}={v}" for k, v in sorted(stage_labels.items()))
    lines = [
        f"FROM {from_image} AS build",
        *([f"LABEL {labels}"] if labels else []),
        "USER root",  # a team's image may default to a user who cannot write /opt
    ]
    if house is not None and house.wheels:
        install = ["python3", f"/tmp/topo/tool/{house.installer}/pip", "install", "--no-index",
                   "--find-links", "/tmp/topo/wheels", "--target", SITE, "--no-cache-dir",
                   "--disable-pip-version-check", "--no-warn-script-location",
                   *(f"/tmp/topo/wheels/{w}" for w in house.wheels)]
        lines += [
            "ENV PIP_NO_INDEX=1 PIP_CONFIG_FILE=/dev/null",  # nothing but the wheels here
            "COPY wheels /tmp/topo/wheels",
            "COPY tool /tmp/topo/tool",
            f"RUN {json.dumps(install)}",  # exec form: the image needs no shell
        ]
    lines += [
        "COPY app /opt/topo/",
        f"RUN {json.dumps(['python3', '-c', COMPILE])}",
        f"FROM {from_image}",
        "COPY --from=build /opt/topo /opt/topo",
        # a team's image may set PYTHONPATH itself: keep it, after topo's own folders
        f"ENV PYTHONPATH=/opt/topo:/opt/topo/workloads:{SITE}${{PYTHONPATH:+:$PYTHONPATH}} "
        "PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1",
        "WORKDIR /opt/topo",
        "ENTRYPOINT []",  # a team's image may have one; topo gives every container its command
    ]
    return "\n".join(lines) + "\n"


def added(facts: ImageFacts, from_image: str, has_code: bool, house: Wheelhouse | None) -> str:
    """What topo put on top of ``from_image``, as `topo doctor` shows it."""
    parts = ["topo agent"] + (["workload code"] if has_code else [])
    if house is not None and house.wheels:
        parts.append("wheels: " + ", ".join(house.packages()))
    # the base image's patch level is assumed, not measured: say only what is known
    python = ".".join(facts.python.split(".")[:2]) if facts.recorded else facts.python
    return f"from {from_image} (python {python}): " + "; ".join(parts)


def agent_files() -> Iterator[tuple[str, Path]]:
    """The part of topo that runs inside containers, keyed by its path in the image (under
    /opt/topo): what topo builds into a worker image and writes beside the Compose files."""
    root = Path(topo.__file__).parent
    yield "topo/__init__.py", root / "__init__.py"
    yield "topo/workloads.py", root / "workloads.py"
    for f in sorted((root / "agent").glob("*.py")):
        yield f"topo/agent/{f.name}", f


def folder_files(folder: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    """Every file under ``folder`` (no bytecode caches), keyed by ``prefix``/its path."""
    for f in sorted(folder.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            yield f"{prefix}/{f.relative_to(folder).as_posix()}", f
