"""What goes into a worker image: the facts of the image it is built on, its tag, its
Dockerfile. No Docker here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from topo import images
from topo.errors import UnusableImageError
from topo.wheels import Wheelhouse

HOUSE = Wheelhouse(folder=Path("/cache/k"), wheels=("numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl",
                                                    "tabulate-0.9.0-py3-none-any.whl"),
                   installer="pip-24.0-py3-none-any.whl", digest="d1")


def probe_line(python: str = "3.12.4", libc: str = "glibc 2.36", **packages: str) -> str:
    return json.dumps({"python": python, "implementation": "cpython", "machine": "x86_64",
                       "libc": libc, "packages": packages})


def test_probe_of_a_usable_image() -> None:
    facts = images.parse_probe("team/etl:1", "some banner\n" + probe_line(psutil="5.9.8"))
    assert (facts.python_version, facts.libc_version, facts.machine) == ((3, 12), (2, 36), "x86_64")
    assert facts.missing() == ()  # the agents need no package of the image's: none is added
    assert facts.target().describe() == "cp312 manylinux_2_36_x86_64"
    assert images.facts_from_json(images.facts_to_json(facts)) == facts
    musl = images.parse_probe("alpine-py", probe_line(libc="musl 1.2"))
    assert musl.target().platforms()[0] == "musllinux_1_2_x86_64"


@pytest.mark.parametrize("output, message", [
    (probe_line(python="3.8.10"), "workload.image old:1: python3 is 3.8.10; topo needs Python 3.9 or newer"),
    ("Python 2.7.18\n", "workload.image old:1: its python3 did not say what it is (got 'Python 2.7.18')"),
    ("", "workload.image old:1: its python3 did not say what it is (got '')"),
    (probe_line().replace("cpython", "pypy"), "workload.image old:1: python3 is pypy; topo needs CPython"),
])
def test_unusable_python_is_one_line(output: str, message: str) -> None:
    with pytest.raises(UnusableImageError) as err:
        images.parse_probe("old:1", output)
    assert str(err.value).startswith(message)
    assert err.value.exit_code == 2


def test_base_image_facts_come_from_its_label() -> None:
    facts = images.base_facts({"topo.image": "base", "topo.managed": "true"}, "arm64")
    assert facts is not None and facts.recorded
    assert (facts.python_version, facts.libc_version, facts.machine) == ((3, 11), (2, 36), "aarch64")
    assert facts.missing() == ()
    assert images.base_facts({"topo.image": "worker"}, "amd64") is None
    assert images.base_facts({}, "amd64") is None


def test_tag_changes_with_every_input_and_only_then(tmp_path: Path) -> None:
    code = tmp_path / "job.py"
    code.write_text("def run(): pass\n")
    files = {"workloads/job.py": code}
    tag = images.worker_tag("topo-worker", "sha256:aa", files, HOUSE)
    assert tag == images.worker_tag("topo-worker", "sha256:aa", dict(files), HOUSE)
    assert tag.startswith("topo-worker:") and len(tag.split(":")[1]) == 16
    others = {
        images.worker_tag("topo-worker", "sha256:bb", files, HOUSE),  # another base image id
        images.worker_tag("topo-worker", "sha256:aa", files, None),  # no wheels
        images.worker_tag("topo-worker", "sha256:aa", files, Wheelhouse(HOUSE.folder, HOUSE.wheels,
                                                                         HOUSE.installer, "d2")),
        images.worker_tag("topo-worker", "sha256:aa", {"workloads/other.py": code}, HOUSE),
        images.worker_tag("topo-worker", "sha256:aa", files, HOUSE, "FROM x\n"),  # another recipe
    }
    code.write_text("def run(): return 1\n")
    others.add(images.worker_tag("topo-worker", "sha256:aa", files, HOUSE))
    assert tag not in others and len(others) == 6


def test_dockerfile_installs_the_wheels_offline_in_a_stage_of_their_own() -> None:
    text = images.dockerfile("team/etl:1", HOUSE, {"topo.managed": "true", "topo.image": "worker-deps"})
    lines = text.splitlines()
    assert lines[0] == "FROM team/etl:1 AS build"
    assert "LABEL topo.image=worker-deps topo.managed=true" in lines
    run = json.loads(next(ln for ln in lines if ln.startswith("RUN "))[4:])  # exec form: no shell
    assert run[:3] == ["python3", "/tmp/topo/tool/pip-24.0-py3-none-any.whl/pip", "install"]
    assert "--no-index" in run and run[run.index("--target") + 1] == images.SITE
    assert run[-2:] == [f"/tmp/topo/wheels/{w}" for w in HOUSE.wheels]
    final = lines[lines.index("FROM team/etl:1"):]
    assert images.SITE.startswith("/opt/topo/")  # so the one COPY brings the installed wheels
    assert final[1] == "COPY --from=build /opt/topo /opt/topo"
    assert not any("wheels" in ln for ln in final)  # the wheels themselves stay behind
    assert not any(ln.startswith(("USER", "RUN")) for ln in final)  # the team's user is kept
    assert "ENTRYPOINT []" in final
    assert any(ln.startswith("ENV PYTHONPATH=/opt/topo:/opt/topo/workloads:/opt/topo/site${PYTHONPATH:+")
               for ln in final)


def test_dockerfile_without_wheels_installs_nothing_and_still_compiles() -> None:
    lines = images.dockerfile("topo-base:bookworm", None, {}).splitlines()
    assert lines[0] == "FROM topo-base:bookworm AS build"
    assert not any("pip" in ln or "wheels" in ln for ln in lines)
    runs = [json.loads(ln[4:]) for ln in lines if ln.startswith("RUN ")]
    assert runs == [["python3", "-c", images.COMPILE]]
    assert lines.index("COPY app /opt/topo/") < lines.index(f"RUN {json.dumps(runs[0])}")


def test_compile_step_writes_hash_checked_pycs_and_survives_a_broken_file(tmp_path: Path) -> None:
    """The build's compile step, run here on a copy of its folder: every module gets a pyc
    that the interpreter accepts without its mtime (checked-hash: flags 0b11 in the header,
    PEP 552), and a file that does not compile does not fail it."""
    import importlib.util
    import subprocess
    import sys

    root = tmp_path / "opt" / "topo"
    (root / "topo" / "agent").mkdir(parents=True)
    (root / "topo" / "agent" / "worker.py").write_text("X = 1\n")
    (root / "workloads").mkdir()
    (root / "workloads" / "broken.py").write_text("def (:\n")
    script = images.COMPILE.replace("'/opt/topo'", repr(str(root)))
    assert script != images.COMPILE
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    pyc = Path(importlib.util.cache_from_source(str(root / "topo" / "agent" / "worker.py")))
    header = pyc.read_bytes()[:8]
    assert header[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(header[4:8], "little") == 0b11  # hash-based, checked
    assert not Path(importlib.util.cache_from_source(str(root / "workloads" / "broken.py"))).exists()


def test_added_says_what_topo_put_on_top() -> None:
    facts = images.parse_probe("team/etl:1", probe_line())
    assert images.added(facts, "team/etl:1", True, HOUSE) == (
        "from team/etl:1 (python 3.12.4): topo agent; workload code; wheels: numpy 2.4.6, tabulate 0.9.0")
    base = images.base_facts({"topo.image": "base"}, "amd64")
    assert base is not None
    assert images.added(base, "topo-base:bookworm", False, None) == "from topo-base:bookworm (python 3.11): topo agent"
