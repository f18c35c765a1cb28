"""Write the example's input: PARTS gzipped CSV partitions of ROWS orders each, into data/.

Deterministic (a fixed seed, gzip headers without a time or a file name), so the files in
the repository are exactly what this script writes: ``python3 make_data.py`` rewrites them
byte for byte, and ``python3 make_data.py --parts 64 --rows 50000 --out /tmp/big`` makes a
larger set to point ``workload.data`` at. Standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import random
from pathlib import Path

PARTS = 8
ROWS = 3000
SEED = 2026
REGIONS = ("north", "south", "east", "west", "centre")
PRODUCTS = tuple(f"P{i:02d}" for i in range(40))


def partition(index: int, rows: int, seed: int = SEED) -> str:
    """One partition as CSV text: order id, day, region, product, unit price, quantity."""
    rng = random.Random(seed * 1_000 + index)
    lines = ["order_id,day,region,product,price,qty"]
    for i in range(rows):
        lines.append(
            f"{index * rows + i},2026-01-{rng.randint(1, 28):02d},{rng.choice(REGIONS)},"
            f"{rng.choice(PRODUCTS)},{rng.uniform(1, 200):.2f},{rng.randint(1, 12)}"
        )
    return "\n".join(lines) + "\n"


def write(out: Path, parts: int = PARTS, rows: int = ROWS) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(parts):
        path = out / f"part-{index:03d}.csv.gz"
        with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
            f.write(partition(index, rows).encode("ascii"))
        path.chmod(0o644)  # the containers' user (uid 10001) reads it through a bind mount
        written.append(path)
    out.chmod(0o755)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=PARTS)
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "data")
    args = parser.parse_args()
    paths = write(args.out, args.parts, args.rows)
    print(f"{len(paths)} partitions of {args.rows} rows in {args.out}")


if __name__ == "__main__":
    main()
