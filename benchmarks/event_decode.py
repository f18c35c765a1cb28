"""How fast the harness reads event lines: one EventLog.poll over a file of task lines.

The reader parses every line the agents write, up to millions per run; this times it on
N task lines (as a pool worker writes them) plus one ready line, in one file, and prints
the best of a few passes, in wall time and in this process's CPU time (steadier than wall
time when other work shares the machine). No Docker.

Usage: .venv/bin/python benchmarks/event_decode.py [--lines N] [--passes K] [--root DIR]
``--root`` reads with the topo of another checkout (e.g. an older commit's worktree), to
compare before and after a change on the same machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def write_lines(folder: Path, n: int) -> None:
    """``n`` task lines (every 10th a failure) and a ready line, as the agents write them."""
    with open(folder / "c-1.jsonl", "w", encoding="utf-8") as f:
        f.write(json.dumps({"ev": "ready", "w": "c/1", "c": "c", "t": 1.0, "cpu_count": 2,
                            "affinity": 2, "quota": 1.0, "tid": 7},
                           separators=(",", ":")) + "\n")
        for i in range(n):
            ok = i % 10 != 0
            t0 = 1_764_000_000.0 + i * 0.001
            f.write(json.dumps({"ev": "task", "id": i, "w": "c/1", "ok": ok, "t0": t0,
                                "t1": t0 + 0.0009, "cpu": 0.000812, "core": i % 2,
                                "err": None if ok else "ValueError: bad input"},
                               separators=(",", ":")) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[1]))
    args = ap.parse_args()
    sys.path.insert(0, args.root)
    from topo.events import EventLog  # the checkout chosen by --root

    with tempfile.TemporaryDirectory(prefix="topo-bench-") as tmp:
        folder = Path(tmp)
        write_lines(folder, args.lines)
        wall = cpu = float("inf")
        for _ in range(args.passes):
            log = EventLog(folder, args.lines)
            t, c = time.perf_counter(), time.process_time()
            read = log.poll()
            cpu = min(cpu, time.process_time() - c)
            wall = min(wall, time.perf_counter() - t)
            assert read == args.lines + 1 and len(log.records) == args.lines, read
            assert not log.errors, log.errors[:3]
    print(f"topo from {args.root}")
    print(f"{args.lines} task lines, best of {args.passes} passes: wall {wall:.3f} s "
          f"({wall / args.lines * 1e6:.2f} us/line), CPU {cpu:.3f} s "
          f"({cpu / args.lines * 1e6:.2f} us/line)")


if __name__ == "__main__":
    main()
