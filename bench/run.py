"""Benchmarks of the shared core (dev environment): demo data generation and atomic artifact writes.

python bench/run.py --out bench/results [--repeat 5]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import case, write

from ctloop import artifacts
from ctloop.local import demo_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ctloop-bench-"))
    rows = 200_000
    frame, _ = demo_data.generate(rows=rows, seed=1)
    payload, files = b"x" * 256 * 1024, 50

    def ctloop_writes():
        for i in range(files):
            artifacts.write_bytes(str(tmp / f"a{i}.bin"), payload)

    def plain_writes():
        for i in range(files):
            (tmp / f"b{i}.bin").write_bytes(payload)

    results = [
        case(
            f"demo data, {rows:,} rows, generate + Parquet",
            rows,
            "rows/s",
            (lambda: demo_data.write_span(str(tmp / "span"), rows=rows, seed=1), "ctloop write_span"),
            (lambda: frame.to_parquet(tmp / "x.parquet", index=False), "pandas to_parquet of a ready frame"),
            args.repeat,
        ),
        case(
            f"artifact writes, {files} x 256 KiB",
            files,
            "files/s",
            (ctloop_writes, "artifacts.write_bytes (temp file, fsync, rename)"),
            (plain_writes, "Path.write_bytes (no fsync, not atomic)"),
            args.repeat,
        ),
    ]
    write(Path(args.out), "core", "Shared core", results)


if __name__ == "__main__":
    main()
