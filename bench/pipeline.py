"""The local pipeline on 100k rows (dev environment; starts the local stack if it is down).

    python bench/pipeline.py --out bench/results [--rows 100000]

Subject: `ctloop pipeline run --local`'s runner, every task a process in its image's environment, no cache.
Comparator: the same entry programs with the same arguments (taken from the tasks' logs), called in one
process per environment after their imports are warm: what is left of the subject's time is orchestration
(process start, imports, placeholder and artifact handling). register's replay finds the version already
registered, so its comparator time is a lower bound.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

from ctloop import config
from ctloop.local import demo_data, stack
from ctloop.local import runner as local_runner
from ctloop.pipelines import continuous_training as ct

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    settings = config.load(ROOT / "ctloop.yaml")
    stack.up(settings)
    tmp = Path(tempfile.mkdtemp(prefix="ctloop-bench-pipeline-"))
    span = str(tmp / "span")
    demo_data.write_span(span, rows=args.rows, seed=1)
    interpreter = local_runner.interpreter_for_images(Path(settings.local.venvs_dir))
    runner = local_runner.LocalRunner(local_runner.load_ir(ct.COMPILED), tmp / "root", interpreter, cache=False)
    started = time.perf_counter()
    runner.run({"data_uri": span, "config": settings.json()})
    total = time.perf_counter() - started
    assert not runner.failed(), [r.reason for r in runner.failed()]

    by_python: dict[str, list] = {}
    for record in runner.records.values():
        if not record.log:
            continue
        first = Path(record.log).read_text().splitlines()[0][2:]
        python, _, module, *argv = shlex.split(first)
        by_python.setdefault(python, []).append({"task": record.name, "module": module, "argv": argv})
    direct = {}
    for python, calls in by_python.items():
        (tmp / "calls.json").write_text(json.dumps(calls))
        output = subprocess.run([python, str(ROOT / "bench" / "replay.py"), str(tmp / "calls.json")],
                                capture_output=True, text=True, check=True).stdout  # fmt: skip
        direct |= {t["task"]: t["seconds"] for t in json.loads(output.strip().splitlines()[-1])}

    rows = [{"task": r.name, "runner_s": r.seconds, "direct_s": direct.get(r.name)} for r in runner.records.values()
            if r.state == "succeeded"]  # fmt: skip
    direct_total = sum(r["direct_s"] or 0 for r in rows)
    result = {"rows": args.rows, "total_s": total, "direct_total_s": direct_total, "ratio": total / direct_total,
              "tasks": rows}  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pipeline.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Local pipeline, {args.rows:,} rows",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; one run, no cache. Total {total:.1f} s with the "
        f"local runner, {direct_total:.1f} s for the same calls in one process per environment: ratio "
        f"{total / direct_total:.2f}.",
        "",
        "| task | local runner | same call in process | ratio |",
        "| --- | --- | --- | --- |",
        *[
            f"| {r['task']} | {r['runner_s']:.1f} s | {r['direct_s']:.1f} s | {r['runner_s'] / r['direct_s']:.2f} |"
            for r in rows
            if r["direct_s"]
        ],  # fmt: skip
        "",
        "register's replay finds its version already registered: its in-process time is a lower bound.",
    ]
    (out / "pipeline.md").write_text("\n".join(lines) + "\n")
    print((out / "pipeline.md").read_text())


if __name__ == "__main__":
    main()
