"""A scenario's Python dependencies, resolved on the host into a wheelhouse.

Builds have no network (``network_mode="none"``), so whatever a worker image installs must be
in its build context. ``pip download`` runs here, on the host, for the worker image's Python
and platform (not the host's), with ``--only-binary=:all:``: topo never builds a source
distribution, because a build would need compilers and headers the image may not have and
its result would depend on the host. A package that has no wheel for that platform is
refused, naming it.

Each wheelhouse lives under the user's cache directory, keyed by the requirements and the
target, and is reused as is: a second use contacts no index at all. Besides the wheels it
holds pip's own wheel, which the build runs straight from the zip (``python3 pip.whl/pip``),
so an image without pip can install them, and pip inside the image re-checks every wheel's
tags against the image's real interpreter.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from topo.errors import ImageError, RequirementError

MIN_MANYLINUX_MINOR = 5  # manylinux_2_5 is manylinux1, the oldest tag there is
LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
PIP_TIMEOUT = 900.0  # seconds for one pip download (numpy and pandas on a slow line)
MANIFEST = "manifest.json"

# argv, working directory -> (exit status, stdout and stderr together)
Runner = Callable[[Sequence[str], Path], tuple[int, str]]


@dataclass(frozen=True)
class Target:
    """The interpreter and platform wheels are chosen for: the worker image's, not the host's."""

    python: tuple[int, int]  # (3, 11)
    machine: str  # as uname -m says inside the image: x86_64, aarch64
    libc: str = "glibc"  # glibc | musl
    libc_version: tuple[int, int] = (2, 17)
    full_version: str = ""  # "3.11.2": environment markers compare it; "" = X.Y.0

    @property
    def abi(self) -> str:
        return f"cp{self.python[0]}{self.python[1]}"

    def platforms(self) -> list[str]:
        """Every platform tag the image accepts, newest first. pip does not widen a
        ``manylinux_2_36`` it is given to the older glibc tags, so all are listed."""
        major, minor = self.libc_version
        if self.libc == "musl":
            return [f"musllinux_{major}_{m}_{self.machine}" for m in range(minor, 0, -1)]
        # the legacy names are aliases: manylinux1 = 2_5, 2010 = 2_12, 2014 = 2_17 (x86 only
        # for the first two)
        legacy = LEGACY_MANYLINUX if self.machine in ("x86_64", "i686") else {17: "manylinux2014"}
        tags = []
        for m in range(minor, MIN_MANYLINUX_MINOR - 1, -1):
            tags.append(f"manylinux_{major}_{m}_{self.machine}")
            if m in legacy:
                tags.append(f"{legacy[m]}_{self.machine}")
        return tags

    def markers(self) -> dict[str, str]:
        """The environment markers of the image's interpreter (PEP 508), as pip would see
        them there; pip itself evaluates markers against the host's Python."""
        full = self.full_version or f"{self.python[0]}.{self.python[1]}.0"
        return {"implementation_name": "cpython", "implementation_version": full,
                "os_name": "posix", "platform_machine": self.machine,
                "platform_python_implementation": "CPython", "platform_system": "Linux",
                "python_full_version": full, "python_version": f"{self.python[0]}.{self.python[1]}",
                "sys_platform": "linux", "platform_release": "", "platform_version": "", "extra": ""}

    def describe(self) -> str:
        """How messages name it: ``cp311 manylinux_2_36_x86_64``."""
        return f"{self.abi} {self.platforms()[0]}"


@dataclass(frozen=True)
class Wheelhouse:
    """Wheels resolved for one requirements text and one target, ready for a build."""

    folder: Path  # holds wheels/ and tool/
    wheels: tuple[str, ...]  # file names under folder/wheels, sorted
    installer: str  # pip's wheel, under folder/tool
    digest: str  # sha256 of the requirements and of every wheel's bytes

    def packages(self) -> list[str]:
        """``name version`` of each wheel, for labels and `topo doctor`."""
        return [" ".join(w.split("-")[:2]) for w in self.wheels]


def cache_dir() -> Path:
    """Where wheelhouses are kept: ``$XDG_CACHE_HOME/topo/wheels`` or ``~/.cache/topo/wheels``.
    Never the repository or the current directory."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "topo" / "wheels"


def target_args(target: Target) -> list[str]:
    """pip's options that pick wheels for ``target`` and refuse anything else."""
    args = ["--only-binary=:all:", "--python-version", f"{target.python[0]}.{target.python[1]}",
            "--implementation", "cp"]
    for abi in (target.abi, "abi3", "none"):
        args += ["--abi", abi]
    for platform in target.platforms():
        args += ["--platform", platform]
    return args


def download_command(target: Target, requirements: Path | None, extra: Sequence[str],
                     dest: Path) -> list[str]:
    """The ``pip download`` of a scenario's requirements (and the agent's ``extra`` packages)."""
    reqs = ["--requirement", str(requirements)] if requirements is not None else []
    return _pip_download(target, dest) + reqs + list(extra)


def installer_command(target: Target, dest: Path) -> list[str]:
    """The ``pip download`` of pip's own wheel, which installs the others inside the build."""
    return _pip_download(target, dest) + ["--no-deps", "pip"]


def _pip_download(target: Target, dest: Path) -> list[str]:
    return [sys.executable, "-m", "pip", "download", "--no-input", "--progress-bar", "off",
            "--disable-pip-version-check", *target_args(target), "--dest", str(dest)]


def cache_key(target: Target, requirements_text: str, extra: Sequence[str]) -> str:
    """Names a wheelhouse: the same requirements for the same target share one."""
    doc = json.dumps([target.abi, target.full_version, target.platforms()[0], requirements_text,
                      sorted(extra)])
    return hashlib.sha256(doc.encode()).hexdigest()[:20]


def run_pip(argv: Sequence[str], cwd: Path) -> tuple[int, str]:
    """Run pip in ``cwd`` (an empty folder: a stray relative write lands nowhere that matters)."""
    try:
        p = subprocess.run(list(argv), cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=PIP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ImageError(f"pip download took longer than {PIP_TIMEOUT:g}s; is the package index reachable?")
    return p.returncode, p.stdout + p.stderr


def resolve(target: Target, requirements: Path | None, extra: Sequence[str] = (),
            cache: Path | None = None, run: Runner = run_pip) -> Wheelhouse:
    """The wheelhouse of ``requirements`` plus ``extra`` for ``target``, from the cache when
    it is there (no pip, no network), else downloaded once. Raises RequirementError naming
    the requirement that does not resolve or has no wheel for ``target``."""
    try:
        text = requirements.read_text(encoding="utf-8") if requirements else ""
    except (OSError, UnicodeDecodeError) as e:
        raise RequirementError(f"workload.requirements: cannot read {requirements}: {e}") from None
    refuse_sources(text)
    cache = cache or cache_dir()
    folder = cache / cache_key(target, text, extra)
    if (folder / MANIFEST).is_file():
        return _load(folder)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".partial-", dir=cache) as tmp:
        part = Path(tmp) / "house"
        _download(download_command(target, requirements, extra, part / "wheels"), target, run, Path(tmp))
        _complete(part / "wheels", target, run, Path(tmp))
        _download(installer_command(target, part / "tool"), target, run, Path(tmp))
        _write_manifest(part, text)
        try:
            os.rename(part, folder)  # whole or not at all, even with two topo runs at once
        except OSError:
            if not (folder / MANIFEST).is_file():
                raise
    return _load(folder)


def _download(argv: list[str], target: Target, run: Runner, cwd: Path) -> None:
    status, output = run(argv, cwd)
    if status != 0:
        raise _failure(output, target, run, cwd)


def _complete(folder: Path, target: Target, run: Runner, cwd: Path, rounds: int = 10) -> None:
    """Add the dependencies pip left out because it evaluated their markers against the
    host's Python, not the image's: ``redis`` needs ``async-timeout`` below Python 3.11.3,
    backports are needed below some 3.X. What is there already is pinned, so each round
    only adds wheels."""
    for _ in range(rounds):
        have = {_canonical(w.name.split("-")[0]): w.name.split("-")[1] for w in folder.glob("*.whl")}
        wanted = sorted({r for r in _needs(folder, target) if _canonical(r) not in have})
        if not wanted:
            return
        pins = cwd / "pins.txt"
        pins.write_text("".join(f"{name}=={version}\n" for name, version in sorted(have.items())))
        _download(download_command(target, None, ["--constraint", str(pins), *wanted], folder),
                  target, run, cwd)
    raise RequirementError("workload.requirements: the dependencies for the image's Python did not "
                           f"settle after {rounds} rounds of pip download")


def _needs(folder: Path, target: Target) -> list[str]:
    """Every dependency the wheels in ``folder`` declare for ``target`` (markers evaluated
    for the image's interpreter), without its marker."""
    from packaging.requirements import InvalidRequirement, Requirement

    needs = []
    for wheel in folder.glob("*.whl"):
        for line in _requires_dist(wheel):
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is None or req.marker.evaluate(target.markers()):
                req.marker = None
                needs.append(str(req))
    return needs


def _requires_dist(wheel: Path) -> list[str]:
    try:
        with zipfile.ZipFile(wheel) as z:
            name = next((n for n in z.namelist() if n.endswith(".dist-info/METADATA")), None)
            text = z.read(name).decode("utf-8", "replace") if name else ""
    except (OSError, zipfile.BadZipFile) as e:
        raise ImageError(f"pip download saved {wheel.name}, which is not a readable wheel: {e}") from None
    return [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Requires-Dist:")]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", project_name(name)).lower()


def refuse_sources(text: str) -> None:
    """Refuse requirement lines pip would build on the host to learn their metadata: local
    paths, editables, URLs and VCS links. Only projects on an index, as wheels, are taken."""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-") and not line.startswith(("-e", "--editable")):
            continue  # options (an index URL, find-links, -r) are pip's business
        if line.endswith(".whl"):
            continue  # a wheel by path or URL needs no build
        if line.startswith(("-", ".", "/", "~")) or "://" in line or " @ " in line:
            raise RequirementError(
                f"workload.requirements: line {number}: {line[:80]}: topo installs wheels from the "
                "package index only (no paths, URLs or VCS links); build that one into your own image")


def _write_manifest(part: Path, requirements_text: str) -> None:
    wheels = sorted(p.name for p in (part / "wheels").glob("*.whl")) if (part / "wheels").is_dir() else []
    tools = sorted(p.name for p in (part / "tool").glob("pip-*.whl"))
    if not tools:
        raise ImageError("pip download saved no wheel of pip itself, which the build installs with")
    hashes = {w: _sha256(part / "wheels" / w) for w in wheels}
    hashes[tools[-1]] = _sha256(part / "tool" / tools[-1])
    doc = {"requirements": requirements_text, "wheels": wheels, "installer": tools[-1], "sha256": hashes}
    (part / MANIFEST).write_text(json.dumps(doc, indent=1, sort_keys=True))


def _load(folder: Path) -> Wheelhouse:
    raw = (folder / MANIFEST).read_bytes()
    doc = json.loads(raw)
    return Wheelhouse(folder=folder, wheels=tuple(doc["wheels"]), installer=doc["installer"],
                      digest=hashlib.sha256(raw).hexdigest())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- pip's errors

_NOT_FOUND = re.compile(r"Could not find a version that satisfies the requirement (.+?) \(from versions: (.*?)\)\s*$", re.M)
_NO_MATCH = re.compile(r"No matching distribution found for (\S+)")
_INVALID = re.compile(r"ERROR: Invalid requirement: (.+)$", re.M)
_NO_FILE = re.compile(r"ERROR: Could not open requirements file: (.+)$", re.M)
_CONFLICT = re.compile(r"ERROR: Cannot install (.+?) because these package versions have conflicting dependencies")
_OFFLINE = ("NewConnectionError", "Max retries exceeded", "Temporary failure in name resolution",
            "Network is unreachable", "Could not fetch URL")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def project_name(requirement: str) -> str:
    """``numpy`` of ``numpy>=2 ; python_version>'3'`` or ``numpy[extra]==1``."""
    match = _NAME.match(requirement.strip())
    return match.group(0) if match else requirement.strip()


def _failure(output: str, target: Target, run: Runner, cwd: Path) -> Exception:
    """The one-line error for a failed pip download: which requirement, and why."""
    found = _NOT_FOUND.search(output)
    name = found.group(1) if found else (m.group(1) if (m := _NO_MATCH.search(output)) else None)
    if name is not None:
        versions = found.group(2).strip() if found else "none"
        return RequirementError(explain_missing(name, versions, target, _exists(project_name(name), run, cwd)))
    for pattern, what in ((_INVALID, "invalid requirement"), (_NO_FILE, "cannot open"),
                          (_CONFLICT, "conflicting requirements")):
        if m := pattern.search(output):
            return RequirementError(f"workload.requirements: {what}: {m.group(1).strip()}")
    if any(sign in output for sign in _OFFLINE):
        return ImageError("pip download cannot reach the package index (is the network up?): "
                          + _last_error(output))
    return RequirementError(f"workload.requirements: pip download failed: {_last_error(output)}")


def explain_missing(requirement: str, versions: str, target: Target, on_index: bool | None) -> str:
    """Why ``requirement`` did not resolve. ``versions`` is pip's "from versions" list (only
    versions with a usable wheel); ``on_index`` says whether the project exists at all."""
    name = project_name(requirement)
    if versions and versions != "none":
        return (f"workload.requirements: {requirement}: no version with a wheel for "
                f"{target.describe()} matches (wheels exist for {_newest(versions)})")
    if on_index:
        return (f"workload.requirements: {name} has no wheel for {target.describe()} (only "
                "source distributions, and topo never builds from source); pick a version "
                "that ships wheels, or build the wheel yourself into your own image")
    return (f"workload.requirements: {requirement}: no such package on the index "
            "(check the spelling)")


def _exists(name: str, run: Runner, cwd: Path) -> bool | None:
    """Whether the index has the project in any form (source included); None = cannot tell."""
    status, output = run([sys.executable, "-m", "pip", "index", "versions", "--no-input",
                          "--disable-pip-version-check", name], cwd)
    if status == 0 and "Available versions" in output:
        return True
    if "No matching distribution found" in output:
        return False
    return None


def _last_error(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip().startswith("ERROR")]
    line = lines[-1] if lines else (output.strip().splitlines() or ["no output"])[-1]
    return line.removeprefix("ERROR: ")[:300]


def _newest(versions: str, count: int = 5) -> str:
    """The last few of pip's "from versions" list (oldest first): the ones a user wants."""
    names = [v.strip() for v in versions.split(",")]
    return ", ".join(names[-count:]) if len(names) <= count else "..., " + ", ".join(names[-count:])


def copy_into(house: Wheelhouse, context: Path) -> None:
    """Put the wheelhouse into a build context (hard links when the disk allows)."""
    for sub, names in (("wheels", house.wheels), ("tool", (house.installer,))):
        (context / sub).mkdir(parents=True, exist_ok=True)
        for name in names:
            src, dest = house.folder / sub / name, context / sub / name
            try:
                os.link(src, dest)
            except OSError:
                shutil.copyfile(src, dest)
