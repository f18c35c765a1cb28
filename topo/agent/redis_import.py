"""redis-py, imported for a worker's start-up at less CPU than its package's own import.

A multi worker starts on a small share of a CPU (2/64 among 64 workers), and importing
redis-py was most of what it did before it was ready: its package's ``__init__`` pulls in
asyncio (``redis.commands.cluster`` imports it for its async cluster commands, which a
worker never runs) and calls ``importlib.metadata.version("redis")`` (which imports
importlib.metadata with email, zipfile, csv..., and parses the metadata). Here:

- asyncio stands in as a module that imports the real one at the first read of any of its
  attributes (so a redis-py that does use it while it is imported simply imports it), and
  leaves ``sys.modules`` once redis-py is in: a later ``import asyncio`` is the real one, and
  redis-py's own reference still reaches it;
- ``importlib.metadata.version(name)`` is answered from the distribution's metadata file,
  found the way importlib.metadata finds it (the first ``<name>-*.dist-info`` or
  ``.egg-info`` along ``sys.path``, its ``Version`` header); anything else it is asked, or
  anything this lookup cannot settle exactly, goes to the real importlib.metadata.

Nothing changes for a process that has redis-py already (the harness, the tests), and
nothing of redis-py itself is changed: ``redis.__version__`` is what its own import says.
Standard library only: it runs inside the containers.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import types
from typing import Any

_LATER = ("asyncio",)
_METADATA = "importlib.metadata"


class _Later(types.ModuleType):
    """A module imported when one of its attributes is first read."""

    def __getattr__(self, attr: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]  # read during the import: import it now
        return getattr(importlib.import_module(self.__name__), attr)


class _Metadata(_Later):
    """``importlib.metadata``, whose ``version`` reads a metadata file when it can."""

    def version(self, name: str) -> Any:
        found = metadata_version(name)
        if found is not None:
            return found
        return self.__getattr__("version")(name)


def _normalized(name: str) -> str:
    # importlib.metadata's Prepared.normalize (PEP 503, with "_"), and its legacy form
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def metadata_version(name: str) -> str | None:
    """``importlib.metadata.version(name)`` where the answer is plain: no finder but the
    standard one, a directory along sys.path holding a matching dist-info or egg-info
    (directory or file) first. None when not (the caller then asks importlib.metadata)."""
    import importlib.machinery

    for finder in sys.meta_path:
        if finder is not importlib.machinery.PathFinder and hasattr(finder, "find_distributions"):
            return None
    wanted = _normalized(name)
    for entry in sys.path:
        root = entry or "."
        if root.lower().endswith(".egg"):
            return None  # an egg's own layout
        if not os.path.isdir(root):
            if os.path.exists(root):
                return None  # a zip or egg on the path: importlib.metadata reads those
            continue
        try:
            children = os.listdir(root)
        except OSError:
            continue
        for child in children:
            base, ext = os.path.splitext(child.lower())
            if ext not in (".dist-info", ".egg-info"):
                continue
            if _normalized(base.partition("-")[0]) != wanted:
                continue
            return _version_in(os.path.join(root, child))
    return None


def _version_in(path: str) -> str | None:
    files = ("METADATA", "PKG-INFO") if os.path.isdir(path) else ("",)
    for file in files:
        try:
            with open(os.path.join(path, file) if file else path, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        if not text:
            continue
        lines = text.splitlines()
        for i, line in enumerate(lines):
            key, sep, value = line.partition(":")
            if not line.strip() or not sep or line[0].isspace():
                return None  # the headers end, or a line the email parser reads its own way
            if key.lower() == "version":
                if i + 1 < len(lines) and lines[i + 1][:1] in (" ", "\t"):
                    return None  # folded over lines
                return value.lstrip(" \t") or None
        return None
    return None


def import_redis() -> types.ModuleType:
    """Import redis-py (once) as described above, and return it."""
    if "redis" in sys.modules:
        return sys.modules["redis"]
    stand_ins: dict[str, types.ModuleType] = {}
    for name in _LATER:
        if name not in sys.modules:
            stand_ins[name] = sys.modules[name] = _Later(name)
    if _METADATA not in sys.modules:
        stand_ins[_METADATA] = sys.modules[_METADATA] = _Metadata(_METADATA)
    try:
        return importlib.import_module("redis")
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
