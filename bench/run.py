"""ctloop's benchmarks: each case runs side by side with a comparator, several times, and reports medians.

    python bench/run.py --out bench/results [--repeat 5]

Writes results.json and results.md under --out. The machine may be shared and noisy: read the medians and the
ratios, not single runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ctloop import artifacts, demo_data


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def case(name: str, unit_count: int, unit: str, subject, comparator, repeat: int) -> dict:
    """Alternate subject and comparator so that background load hits both alike."""
    subject_fn, subject_label = subject
    comparator_fn, comparator_label = comparator
    subject_times, comparator_times = [], []
    subject_fn(), comparator_fn()  # warm-up: imports, caches, page cache
    for _ in range(repeat):
        subject_times.append(timed(subject_fn))
        comparator_times.append(timed(comparator_fn))
    s, c = statistics.median(subject_times), statistics.median(comparator_times)
    return {
        "case": name,
        "subject": subject_label,
        "comparator": comparator_label,
        "repeat": repeat,
        "subject_median_s": s,
        "comparator_median_s": c,
        "ratio": s / c,
        "subject_rate": unit_count / s,
        "comparator_rate": unit_count / c,
        "unit": unit,
    }


def bench_generator(repeat: int, rows: int) -> list[dict]:
    frame, _ = demo_data.generate(rows=rows, seed=1)
    return [
        case(
            f"demo data, {rows:,} rows, generate + Parquet",
            rows,
            "rows/s",
            (lambda: demo_data.write_span(tmp("p"), rows=rows, seed=1, fmt="parquet"), "ctloop write_span"),
            (lambda: frame.to_parquet(Path(tmp("q")) / "x.parquet", index=False), "pandas to_parquet of a ready frame"),
            repeat,
        )
    ]


def bench_atomic_write(repeat: int, size: int, files: int) -> list[dict]:
    payload = b"x" * size
    folder = Path(tmp("w"))

    def ctloop_writes():
        for i in range(files):
            artifacts.write_bytes(str(folder / f"a{i}.bin"), payload)

    def plain_writes():
        for i in range(files):
            (folder / f"b{i}.bin").write_bytes(payload)

    return [
        case(
            f"artifact writes, {files} x {size // 1024} KiB",
            files,
            "files/s",
            (ctloop_writes, "artifacts.write_bytes (temp file, fsync, rename)"),
            (plain_writes, "Path.write_bytes (no fsync, not atomic)"),
            repeat,
        )
    ]


_tmp_root = tempfile.mkdtemp(prefix="ctloop-bench-")


def tmp(name: str) -> str:
    path = Path(_tmp_root) / name
    path.mkdir(exist_ok=True)
    return str(path)


def markdown(results: list[dict], meta: dict) -> str:
    lines = [
        "# ctloop benchmarks",
        "",
        f"{meta['when']} on {meta['machine']} ({meta['cpus']} CPUs), Python {meta['python']}; "
        f"medians of {meta['repeat']} alternating runs.",
        "",
        "| case | subject | median | comparator | median | ratio |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['case']} | {r['subject']} | {r['subject_median_s'] * 1000:.1f} ms ({r['subject_rate']:,.0f} "
            f"{r['unit']}) | {r['comparator']} | {r['comparator_median_s'] * 1000:.1f} ms | {r['ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import os

    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "repeat": args.repeat,
    }
    results = bench_generator(args.repeat, rows=200_000) + bench_atomic_write(args.repeat, size=256 * 1024, files=50)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    (out / "results.md").write_text(markdown(results, meta))
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
