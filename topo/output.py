"""Text that reaches any terminal or file: encodable everywhere, cut at words, files named.

topo's reports use a few non-ASCII characters (≥, ×, —, µ). A console or a redirected
stream whose encoding lacks them (``PYTHONIOENCODING=cp1252``, ``ascii``, a Windows console
redirected to a file) would raise UnicodeEncodeError mid-report; ``make_encodable`` gives
the standard streams an error handler that writes an ASCII equivalent instead.
"""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path
from typing import TextIO

ERRORS = "topo-ascii"
# What each character topo prints becomes where the stream cannot encode it.
ASCII = {
    "≥": ">=", "≤": "<=", "≠": "!=", "≈": "~", "±": "+/-", "×": "x", "÷": "/", "·": "*",
    "—": "-", "–": "-", "−": "-", "→": "->", "←": "<-", "…": "...", "µ": "u", "°": " deg",
    "‘": "'", "’": "'", "“": '"', "”": '"', "█": "#", "▏": "|", "│": "|", "─": "-",
    "✓": "ok", "✗": "x", "\u00a0": " ", "\u2009": " ", "\u202f": " ",
}


def _ascii_equivalent(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    bad = error.object[error.start:error.end]
    return "".join(ASCII.get(c, "?") for c in bad), error.end


codecs.register_error(ERRORS, _ascii_equivalent)


def make_encodable(*streams: TextIO) -> None:
    """Let ``streams`` (text streams such as sys.stdout) write any text: characters their
    encoding lacks become ASCII equivalents (≥ -> >=) instead of an exception."""
    for stream in streams:
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:  # a test's StringIO has none, and encodes everything
            reconfigure(errors=ERRORS)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, with "..." when cut,
    so that a message never ends mid-word."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    space = cut.rfind(" ")
    if space > limit // 2:  # a long unbroken token (a digest) is cut where it must be
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "..."


# --------------------------------------------------------------------------- what a file is

_SCHEMA_RE = re.compile(rb'"schema"\s*:\s*"(topo\.[a-z]+)"')
KINDS = {
    "topo.result": ("a topo result file", "use topo report or topo diff"),
    "topo.comparison": ("a topo comparison (topo report --format json)",
                        "give the result.json it was made from"),
    "topo.diff": ("a topo diff (topo diff --format json)", "give the result.json files"),
}


def file_kind(path: Path, head: int = 65536) -> str | None:
    """The schema of a JSON file topo wrote (``topo.result``...), judged from its first
    and last bytes; "json" for other JSON, "scenario" for YAML with a ``workload`` key; None for
    anything else or an unreadable file."""
    try:
        with open(path, "rb") as f:
            data = f.read(head)
            f.seek(max(f.tell(), f.seek(0, 2) - head))  # topo writes keys sorted: schema last
            tail = f.read(head)
    except OSError:
        return None
    found = _SCHEMA_RE.search(data) or _SCHEMA_RE.search(tail)
    if found:
        return found[1].decode()
    if data.lstrip().startswith((b"{", b"[")):
        try:
            json.loads(data)
        except ValueError:
            return "json" if len(data) == head else None
        return "json"
    if re.search(rb"(?m)^workload\s*:", data):
        return "scenario"
    return None


def not_a(expected: str, path: str, kind: str | None) -> str | None:
    """The message for ``path`` given where ``expected`` ("scenario" or "result") was
    wanted, when it is recognisably something else; None when it may be what was asked."""
    if kind is None or kind == expected or (expected == "result" and kind == "topo.result"):
        return None
    if kind == "scenario":
        return f"{path}: this is a topo scenario file, not a result: use topo compare {path}"
    what, advice = KINDS.get(kind, ("a JSON file", "give a scenario YAML file"
                                    if expected == "scenario" else "give a result.json"))
    noun = "a scenario" if expected == "scenario" else "a result file"
    return f"{path}: this is {what}, not {noun}: {advice}"
