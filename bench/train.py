"""train and validate_segments (train environment).

    python bench/train.py --out bench/results [--repeat 3] [--rows 100000,1000000]

Training: the component's executor (read the span, split, encode, train with early stopping, score, sample)
against a bare xgboost.train in the same process with the same parameters and rounds on data already in
memory: their ratio is the component's overhead. Evaluation: validate_segments' per-segment metrics with
200 bootstrap resamples and a champion, against the number of segment values.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import xgboost as xgb
from common import case, timed, write

from ctloop import config, model_format
from ctloop.components.train import executor
from ctloop.components.validate_segments import metrics
from ctloop.local import demo_data
from ctloop.segments import segment_masks

ROOT = Path(__file__).resolve().parents[1]


def bench_training(rows: int, repeat: int, tmp: Path) -> dict:
    settings = config.load(ROOT / "ctloop.yaml", environ={})
    span = str(tmp / f"span-{rows}")
    demo_data.write_span(span, rows=rows, seed=1)
    first = executor.train(executor.Request(span, settings))
    # The bare comparator trains exactly as many rounds as the component's early stopping did.
    rounds = first.model.metadata["best_iteration"] + settings.model.early_stopping_rounds + 1
    params = dict(first.params)
    x = model_format.encode(first.frame, first.model.spec)
    y = first.frame[settings.data.label].to_numpy()
    train_rows, valid_rows = first.parts["train"], first.parts["validation"]
    dtrain = xgb.DMatrix(x.iloc[train_rows], label=y[train_rows], enable_categorical=True)
    dvalid = xgb.DMatrix(x.iloc[valid_rows], label=y[valid_rows], enable_categorical=True)

    def component():
        executor.train(executor.Request(span, settings))

    def bare():
        xgb.train(params, dtrain, num_boost_round=rounds, evals=[(dvalid, "validation")], verbose_eval=False)

    result = case(f"train, {rows:,} rows", rows, "rows/s", (component, "train executor"),
                  (bare, f"bare xgboost.train, {rounds} rounds"), repeat, warm_up=False)  # fmt: skip
    result["rounds"] = rounds
    return result


def bench_evaluation(repeat: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = 20_000
    frame = demo_data.generate(rows=rows, seed=3)[0]
    y = frame["default"].to_numpy()
    score = np.clip(0.2 + 0.3 * y + rng.normal(0, 0.2, rows), 0, 1)
    champion = np.clip(score + rng.normal(0, 0.05, rows), 0, 1)
    layouts = {
        "overall only": [],
        "1 column": [{"name": "region", "column": "region"}],
        "3 columns": [{"name": c, "column": c} for c in ("region", "product", "age_band")],
        "3 columns + a cross": [{"name": c, "column": c} for c in ("region", "product", "age_band")]
        + [{"name": "rxp", "cross": ["region", "product"]}],
    }
    out = []
    for label, segments in layouts.items():
        values = len(segment_masks(frame, segments))
        times = sorted(
            timed(lambda s=segments: metrics.evaluate(frame, y, score, 0.3, s, champion_score=champion, resamples=200))
            for _ in range(repeat)
        )
        out.append({"layout": label, "segment_values": values, "median_s": times[len(times) // 2]})
        print(f"evaluation, {label}: {values} values, {out[-1]['median_s']:.2f}s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", default="100000,1000000")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ctloop-bench-train-"))
    results = [bench_training(int(r), args.repeat, tmp) for r in args.rows.split(",")]
    evaluation = bench_evaluation(args.repeat)
    notes = [
        "## validate_segments: evaluation time against segment values (20,000 rows, 200 resamples, with champion)",
        "",
        "| layout | segment values | median |",
        "| --- | --- | --- |",
        *[f"| {e['layout']} | {e['segment_values']} | {e['median_s']:.2f} s |" for e in evaluation],
    ]
    write(Path(args.out), "train", "train and validate_segments", results, notes)
    Path(args.out, "train_evaluation.json").write_text(json.dumps(evaluation, indent=2) + "\n")


if __name__ == "__main__":
    main()
