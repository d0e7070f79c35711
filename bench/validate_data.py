"""validate_data (validate environment): statistics plus validation for 100k and 1M rows by 30 features.

    python bench/validate_data.py --out bench/results [--repeat 3] [--rows 100000,1000000]

The subject is the component's executor on a Parquet span (read, statistics, schema inference and curation,
validation, every output serialised); the comparator is TFDV's own generate_statistics_from_dataframe called
directly on the same data, already in memory. Their ratio is the component's overhead.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow_data_validation as tfdv  # noqa: E402
from common import case, write  # noqa: E402

from ctloop import config  # noqa: E402
from ctloop.components.validate_data import executor  # noqa: E402

NUMERIC, CATEGORICAL = 20, 10


def table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns = {f"n{i}": rng.normal(i, 1 + i % 3, rows) for i in range(NUMERIC)}
    levels = np.array([f"level_{j}" for j in range(4 + CATEGORICAL)])
    columns |= {f"c{i}": levels[rng.integers(0, 4 + i, rows)] for i in range(CATEGORICAL)}
    columns["label"] = rng.integers(0, 2, rows)
    return pd.DataFrame(columns)


def settings_for(frame: pd.DataFrame) -> config.Settings:
    features = [{"name": c, "type": "numeric" if c.startswith("n") else "categorical"} for c in frame if c != "label"]
    return config.parse({"data": {"uri": "unused", "label": "label"}, "features": features}, environ={})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", default="100000,1000000")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ctloop-bench-validate-"))
    results = []
    for rows in [int(r) for r in args.rows.split(",")]:
        frame = table(rows)
        span = tmp / f"span-{rows}"
        span.mkdir()
        frame.to_parquet(span / "data.parquet", index=False)
        settings = settings_for(frame)

        def direct(frame=frame):
            return tfdv.generate_statistics_from_dataframe(frame)

        for label, beam_args in (("in memory", None), ("Beam DirectRunner", ["--runner=DirectRunner"])):

            def component(span=span, settings=settings, beam_args=beam_args):
                result = executor.run(executor.Request(str(span), settings, beam_args=beam_args))
                result.outputs()

            repeat = args.repeat if beam_args is None or rows <= 100_000 else 1
            results.append(
                case(
                    f"{rows:,} rows x 30 features, {label}",
                    rows,
                    "rows/s",
                    (component, f"validate_data executor ({label})"),
                    (direct, "tfdv.generate_statistics_from_dataframe"),
                    repeat,
                    warm_up=rows <= 100_000,
                )
            )
    notes = [
        "The executor also reads the Parquet file, infers and curates a schema, validates, and renders the HTML and",
        "Markdown reports; the comparator computes statistics of a frame already in memory. Beam's DirectRunner",
        "runs on one machine and shows the cost of the Beam path itself; its worth is on Flink, Spark or Dataflow.",
        "The 1M-row Beam case runs once (no warm-up) to keep `make bench` short.",
    ]
    write(Path(args.out), "validate_data", "validate_data: statistics and validation", results, notes)


if __name__ == "__main__":
    main()
