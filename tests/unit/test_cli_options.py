"""The command line itself: --version, --format choices and usage errors (exit 2, one line)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def topo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "topo.cli", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def test_version_prints_the_installed_distributions_version() -> None:
    p = topo("--version")
    assert p.returncode == 0, p.stderr
    # The package's own literal, read as text: the wheel's metadata is built from it.
    source = re.search(r'__version__ = "([^"]+)"', (ROOT / "topo" / "__init__.py").read_text())
    assert source and metadata.version("topo") == source[1]
    assert p.stdout == f"topo {source[1]}\n" and p.stderr == ""
