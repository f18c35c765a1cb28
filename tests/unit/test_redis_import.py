"""topo.agent.redis_import: redis-py imported by the worker without asyncio and without
importlib.metadata, and nothing about it different. The expected answers come from the real
importlib.metadata and from a plain ``import redis`` in a fresh interpreter."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from topo.agent import redis_import
from topo.agent.redis_import import metadata_version

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True).stdout
    doc: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return doc


def test_every_installed_distribution_has_the_version_importlib_metadata_says() -> None:
    names = {d.metadata["Name"] for d in importlib.metadata.distributions()}
    assert {"redis", "psutil", "pytest"} <= names
    for name in sorted(names):
        assert metadata_version(name) == importlib.metadata.version(name), name


def test_the_worker_imports_the_same_redis_py_and_leaves_asyncio_real() -> None:
    plain = _python("import json, redis; print(json.dumps({'version': redis.__version__}))")
    worker = _python(
        "import json, sys, types\n"
        "import topo.agent.worker\n"
        "import redis\n"
        "later = [n for n, m in sys.modules.items()\n"
        "         if isinstance(m, topo.agent.redis_import._Later)]\n"
        "import asyncio\n"
        "print(json.dumps({'version': redis.__version__, 'later': later,\n"
        "                  'asyncio': type(asyncio).__name__,\n"
        "                  'gather': asyncio.gather is __import__('asyncio').gather,\n"
        "                  'client': redis.Redis.__module__}))\n")
    assert worker == {"version": plain["version"], "later": [], "asyncio": "module",
                      "gather": True, "client": "redis.client"}


def test_asyncio_stands_in_until_read_and_then_is_the_real_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    later = redis_import._Later("json")  # any module not imported through it
    monkeypatch.setitem(sys.modules, "json", later)
    assert later.dumps([1]) == "[1]"  # read while standing in: imported then
    assert sys.modules["json"] is not later and sys.modules["json"].dumps is later.dumps


def _dist(site: Path, folder: str, files: dict[str, str]) -> None:
    if folder.endswith(".egg-info") and "" in files:  # an old egg-info file
        (site / folder).write_text(files[""], encoding="utf-8")
        return
    (site / folder).mkdir()
    for name, text in files.items():
        (site / folder / name).write_text(text, encoding="utf-8")


CASES = {
    "plain": ("plain-1.0.dist-info", {"METADATA": "Metadata-Version: 2.1\nName: plain\n"
                                                  "Version: 1.0\n\nVersion: 9\n"}),
    "Dotted.Name": ("dotted_name-2.0.dist-info", {"METADATA": "Name: Dotted.Name\n"
                                                              "Version: 2.0\n"}),
    "eggdir": ("eggdir-3.0-py3.11.egg-info", {"PKG-INFO": "Name: eggdir\nversion:\t3.0\n"}),
    "eggfile": ("eggfile-4.0.egg-info", {"": "Name: eggfile\nVersion: 4.0\n"}),
    "fallback": ("fallback-5.0.dist-info", {"METADATA": "", "PKG-INFO": "Name: fallback\n"
                                                                     "Version: 5.0\n"}),
    "folded": ("folded-6.0.dist-info", {"METADATA": "Name: folded\nVersion: 6.0\n 7\n"}),
    "noversion": ("noversion-1.dist-info", {"METADATA": "Name: noversion\n\nVersion: 8\n"}),
    "spaces": ("spaces-1.dist-info", {"METADATA": "Name: spaces\nVersion: 1.0  \n"}),
}


def test_metadata_files_of_every_shape_read_as_importlib_metadata_reads_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    for folder, files in CASES.values():
        _dist(first, folder, files)
    _dist(second, "plain-0.1.dist-info", {"METADATA": "Name: plain\nVersion: 0.1\n"})
    monkeypatch.setattr(sys, "path", [str(first), str(second)])
    answered = {}
    for name in CASES:
        real = importlib.metadata.version(name)
        mine = metadata_version(name)
        assert mine is None or mine == real, name  # None: importlib.metadata is asked
        answered[name] = mine
    assert answered == {"plain": "1.0", "Dotted.Name": "2.0", "eggdir": "3.0",
                        "eggfile": "4.0", "fallback": "5.0", "folded": None,
                        "noversion": None, "spaces": "1.0  "}
    assert metadata_version("absent") is None


def test_a_zip_on_the_path_is_left_to_importlib_metadata(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zipped = tmp_path / "lib.zip"
    zipped.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    monkeypatch.setattr(sys, "path", [str(zipped), *sys.path])
    assert metadata_version("redis") is None
