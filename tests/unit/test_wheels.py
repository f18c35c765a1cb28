"""Host-side resolution: pip's command line, its errors, and the wheelhouse cache, with a fake
pip (no network). The pip outputs below were copied from real runs of pip 23.2 against PyPI."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Sequence

import pytest

from topo import wheels
from topo.errors import ImageError, RequirementError
from topo.wheels import Target

BOOKWORM = Target(python=(3, 11), machine="x86_64", libc_version=(2, 36))

TYPO = """\
WARNING: Location 'file:///opt/pypi-more/simple/nosuchpkgzz/' is ignored: it is neither a file nor a directory.
ERROR: Could not find a version that satisfies the requirement nosuchpkgzz (from versions: none)
ERROR: No matching distribution found for nosuchpkgzz
"""
SDIST_ONLY = TYPO.replace("nosuchpkgzz", "docopt")
NO_VERSION = """\
ERROR: Could not find a version that satisfies the requirement numpy==99.1 (from versions: 1.26.4, 2.0.0, 2.4.5, 2.4.6)
ERROR: No matching distribution found for numpy==99.1
"""
DEPENDENCY = """\
Collecting team-lib==1.0
  Using cached team_lib-1.0-py3-none-any.whl (2.0 kB)
ERROR: Could not find a version that satisfies the requirement docopt>=0.6 (from team-lib) (from versions: none)
ERROR: No matching distribution found for docopt>=0.6
"""
INDEX_FOUND = "docopt (0.6.2)\nAvailable versions: 0.6.2, 0.6.1, 0.6.0\n"
INDEX_MISSING = "ERROR: No matching distribution found for nosuchpkgzz\n"
OFFLINE = ("WARNING: Retrying (Retry(total=4)) after connection broken by 'NewConnectionError(...)'\n"
           "ERROR: Could not find a version that satisfies the requirement tabulate\n")


def wheel(*requires: str, note: str = "") -> bytes:
    """The bytes of a wheel whose METADATA declares ``requires`` (Requires-Dist lines)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x-1.dist-info/METADATA", "Metadata-Version: 2.1\nName: x\n" + note
                   + "".join(f"Requires-Dist: {r}\n" for r in requires))
    return buf.getvalue()


TABULATE = {"tabulate-0.9.0-py3-none-any.whl": wheel()}


class FakePip:
    """Stands in for `python -m pip`: ``download`` saves into --dest the wheels of its first
    call (``wheels``), then those of ``later`` one call at a time; ``index versions`` answers
    from ``index``; every call is recorded."""

    def __init__(self, wheels: dict[str, bytes] | None = None, fail: str = "", index: str = "",
                 later: list[dict[str, bytes]] | None = None) -> None:
        self.wheels = wheels if wheels is not None else TABULATE
        self.fail, self.index, self.later = fail, index, list(later or [])
        self.calls: list[tuple[list[str], Path]] = []

    def __call__(self, argv: Sequence[str], cwd: Path) -> tuple[int, str]:
        argv = list(argv)
        self.calls.append((argv, cwd))
        if argv[3:5] == ["index", "versions"]:
            return (0 if "Available" in self.index else 1), self.index
        if self.fail and "--requirement" in argv:
            return 1, self.fail
        dest = Path(argv[argv.index("--dest") + 1])
        dest.mkdir(parents=True, exist_ok=True)
        if argv[-1] == "pip":
            saved = {"pip-24.0-py3-none-any.whl": b"pip"}
        elif "--constraint" in argv:
            saved = self.later.pop(0)
        else:
            saved = self.wheels
        for name, data in saved.items():
            (dest / name).write_bytes(data)
        return 0, "Successfully downloaded"


def test_platform_tags_of_bookworm_go_down_to_manylinux1() -> None:
    tags = BOOKWORM.platforms()
    # 2_36 .. 2_5 is 32 glibc tags, plus the three legacy aliases of x86_64
    assert len(tags) == 32 + 3
    assert tags[:2] == ["manylinux_2_36_x86_64", "manylinux_2_35_x86_64"]
    assert tags[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]
    assert tags.index("manylinux2014_x86_64") == tags.index("manylinux_2_17_x86_64") + 1
    assert tags.index("manylinux2010_x86_64") == tags.index("manylinux_2_12_x86_64") + 1
    arm = Target(python=(3, 9), machine="aarch64", libc_version=(2, 28)).platforms()
    assert "manylinux2014_aarch64" in arm and not any(t.startswith("manylinux1") for t in arm)
    musl = Target(python=(3, 12), machine="x86_64", libc="musl", libc_version=(1, 2)).platforms()
    assert musl == ["musllinux_1_2_x86_64", "musllinux_1_1_x86_64"]
    assert BOOKWORM.describe() == "cp311 manylinux_2_36_x86_64"


def test_download_command_asks_for_wheels_of_the_image_not_the_host(tmp_path: Path) -> None:
    target = Target(python=(3, 9), machine="aarch64", libc_version=(2, 17))
    cmd = wheels.download_command(target, tmp_path / "req.txt", ["redis"], tmp_path / "out")
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--only-binary=:all:" in cmd and "--no-binary" not in " ".join(cmd)
    pairs = list(zip(cmd, cmd[1:]))
    assert ("--python-version", "3.9") in pairs and ("--implementation", "cp") in pairs
    assert [b for a, b in pairs if a == "--abi"] == ["cp39", "abi3", "none"]
    assert [b for a, b in pairs if a == "--platform"] == [
        f"manylinux_2_{m}_aarch64" for m in (17,)] + ["manylinux2014_aarch64"] + [
        f"manylinux_2_{m}_aarch64" for m in range(16, 4, -1)]
    assert ("--dest", str(tmp_path / "out")) in pairs
    assert cmd[-3:] == ["--requirement", str(tmp_path / "req.txt"), "redis"]


def test_resolve_once_then_from_the_cache_without_pip(tmp_path: Path) -> None:
    req = tmp_path / "req.txt"
    req.write_text("tabulate\n")
    pip = FakePip()
    house = wheels.resolve(BOOKWORM, req, ("psutil",), cache=tmp_path / "cache", run=pip)
    assert house.wheels == ("tabulate-0.9.0-py3-none-any.whl",)
    assert house.installer == "pip-24.0-py3-none-any.whl"
    assert (house.folder / "wheels" / house.wheels[0]).read_bytes() == TABULATE[house.wheels[0]]
    assert house.folder.parent == tmp_path / "cache"
    assert len(pip.calls) == 2  # the requirements, then pip's own wheel
    assert all(cwd.parent == tmp_path / "cache" for _, cwd in pip.calls)  # never the cwd
    manifest = json.loads((house.folder / wheels.MANIFEST).read_text())
    assert manifest["sha256"][house.wheels[0]] == hashlib.sha256(TABULATE[house.wheels[0]]).hexdigest()

    def no_pip(argv: Sequence[str], cwd: Path) -> tuple[int, str]:
        raise AssertionError("pip was run although the wheelhouse is cached")

    again = wheels.resolve(BOOKWORM, req, ("psutil",), cache=tmp_path / "cache", run=no_pip)
    assert again == house
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [house.folder.name]  # no partials


def test_wheelhouse_digest_follows_wheel_bytes_and_key_follows_inputs(tmp_path: Path) -> None:
    req = tmp_path / "req.txt"
    req.write_text("tabulate\n")
    a = wheels.resolve(BOOKWORM, req, (), cache=tmp_path / "a", run=FakePip())
    b = wheels.resolve(BOOKWORM, req, (), cache=tmp_path / "b",
                       run=FakePip({"tabulate-0.9.0-py3-none-any.whl": wheel(note="Summary: other\n")}))
    assert a.folder.name == b.folder.name and a.digest != b.digest
    key = wheels.cache_key(BOOKWORM, "tabulate\n", ())
    assert key != wheels.cache_key(BOOKWORM, "tabulate==0.9\n", ())
    assert key != wheels.cache_key(Target((3, 12), "x86_64", libc_version=(2, 36)), "tabulate\n", ())
    assert key != wheels.cache_key(BOOKWORM, "tabulate\n", ("redis",))


@pytest.mark.parametrize("output, index, expected", [
    (TYPO, INDEX_MISSING,
     "workload.requirements: nosuchpkgzz: no such package on the index (check the spelling)"),
    (SDIST_ONLY, INDEX_FOUND,
     "workload.requirements: docopt has no wheel for cp311 manylinux_2_36_x86_64 (only source "
     "distributions, and topo never builds from source); pick a version that ships wheels, or "
     "build the wheel yourself into your own image"),
    (NO_VERSION, "",
     "workload.requirements: numpy==99.1: no version with a wheel for cp311 manylinux_2_36_x86_64 "
     "matches (wheels exist for 1.26.4, 2.0.0, 2.4.5, 2.4.6)"),
    (DEPENDENCY, INDEX_FOUND, "workload.requirements: docopt has no wheel for cp311"),
    ("ERROR: Invalid requirement: 'numpy ==> 1' (from line 1 of /x/req.txt)\n", "",
     "workload.requirements: invalid requirement: 'numpy ==> 1' (from line 1 of /x/req.txt)"),
    ("ERROR: Cannot install a==1 and b==2 because these package versions have conflicting "
     "dependencies.\n", "", "workload.requirements: conflicting requirements: a==1 and b==2"),
])
def test_pip_failures_name_the_requirement(tmp_path: Path, output: str, index: str, expected: str) -> None:
    req = tmp_path / "req.txt"
    req.write_text("x\n")
    pip = FakePip(fail=output, index=index)
    with pytest.raises(RequirementError) as err:
        wheels.resolve(BOOKWORM, req, (), cache=tmp_path / "cache", run=pip)
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)
    assert not any((tmp_path / "cache").iterdir())  # nothing half-made is kept


def test_unreachable_index_is_not_blamed_on_the_requirements(tmp_path: Path) -> None:
    req = tmp_path / "req.txt"
    req.write_text("tabulate\n")
    with pytest.raises(ImageError, match="cannot reach the package index") as err:
        wheels.resolve(BOOKWORM, req, (), cache=tmp_path / "cache", run=FakePip(fail=OFFLINE))
    assert not isinstance(err.value, RequirementError)


@pytest.mark.parametrize("line", ["-e ./lib", "./lib", "/src/lib", "lib @ git+https://x/lib.git",
                                  "git+https://example.org/lib.git"])
def test_sources_are_refused_before_pip(tmp_path: Path, line: str) -> None:
    req = tmp_path / "req.txt"
    req.write_text(f"# team deps\ntabulate\n{line}\n")
    with pytest.raises(RequirementError, match=r"^workload.requirements: line 3: .*package index only"):
        wheels.resolve(BOOKWORM, req, (), cache=tmp_path / "c", run=FakePip())


def test_options_and_wheel_paths_are_left_to_pip() -> None:
    wheels.refuse_sources("--index-url https://pypi.example/simple\n-r base.txt\n"
                          "./vendor/lib-1.0-py3-none-any.whl\nnumpy>=2  # pinned later\n")


def test_cache_dir_is_the_users(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert wheels.cache_dir() == tmp_path / "xdg" / "topo" / "wheels"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert wheels.cache_dir() == tmp_path / "home" / ".cache" / "topo" / "wheels"


REDIS = {"redis-8.1.0-py3-none-any.whl": wheel('async-timeout>=4.0.3; python_full_version < "3.11.3"',
                                               'hiredis>=3; extra == "hiredis"')}


def test_dependencies_are_chosen_by_the_images_python_not_the_hosts(tmp_path: Path) -> None:
    # pip evaluates markers against the Python it runs on; bookworm's 3.11.2 needs what the
    # host's 3.11.7 would not: topo asks for it in a second round, pinned to the first.
    old = Target(python=(3, 11), machine="x86_64", libc_version=(2, 36), full_version="3.11.2")
    pip = FakePip(REDIS, later=[{"async_timeout-5.0.1-py3-none-any.whl": wheel()}])
    house = wheels.resolve(old, None, ("redis",), cache=tmp_path / "old", run=pip)
    assert house.wheels == ("async_timeout-5.0.1-py3-none-any.whl", "redis-8.1.0-py3-none-any.whl")
    second = pip.calls[1][0]
    assert second[-3:] == ["--constraint", str(pip.calls[1][1] / "pins.txt"), "async-timeout>=4.0.3"]
    assert len(pip.calls) == 3  # the requirements, the missing dependency, pip's own wheel

    new = Target(python=(3, 11), machine="x86_64", libc_version=(2, 36), full_version="3.11.9")
    pip = FakePip(REDIS)
    house = wheels.resolve(new, None, ("redis",), cache=tmp_path / "new", run=pip)
    assert house.wheels == ("redis-8.1.0-py3-none-any.whl",) and len(pip.calls) == 2


def test_unreadable_requirements_file_is_one_line(tmp_path: Path) -> None:
    req = tmp_path / "req.txt"
    req.write_bytes(b"caf\xe9\n")
    with pytest.raises(RequirementError, match=r"^workload.requirements: cannot read .*req.txt: 'utf-8' codec"):
        wheels.resolve(BOOKWORM, req, (), cache=tmp_path / "c", run=FakePip())
    assert not (tmp_path / "c").exists()
