"""Shared set-up of the unit tests: ``tests.fakes`` importable however pytest is started."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # tests/unit/__init__.py normally makes pytest add it
    sys.path.insert(0, str(ROOT))
