"""What a command writes to a terminal: a pseudo-terminal on one stream, the other discarded."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def run_on_a_terminal(args: list[str], *, stream: str, env: dict[str, str],
                      cwd: Path | None = None) -> str:
    master, slave = os.openpty()
    streams = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, stream: slave}
    try:
        subprocess.run(args, timeout=120, env=env, cwd=cwd, **streams)  # type: ignore[call-overload]
    finally:
        os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other end is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return b"".join(chunks).decode()
