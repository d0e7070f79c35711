"""Entry program of select_trial: the trial with the highest validation metric (train reports it so that higher
is better for every task).

    python -m ctloop.components.select_trial --metrics JSON --trials JSON --best-params-out FILE
        [--best-metric-out FILE]

The metrics arrive in the order of the trials (KFP collects a ParallelFor's outputs by iteration).
Exit status: 0 chosen; 2 bad input (lists of different lengths, no finite metric).
"""

from __future__ import annotations

import json
import math
import sys

from ctloop import artifacts
from ctloop.components.select_trial import spec
from ctloop.errors import BadInputError


def parse_args(argv):
    return spec.COMPONENT.parser().parse_args(argv)


def select(metrics: list, trials: list) -> tuple[int, dict, float]:
    if len(metrics) != len(trials) or not trials:
        raise BadInputError(f"{len(metrics)} metrics for {len(trials)} trials: they must match, one each")
    finite = [(float(m), i) for i, m in enumerate(metrics) if m is not None and math.isfinite(float(m))]
    if not finite:
        raise BadInputError("no trial produced a finite validation metric")
    best_metric, index = max(finite, key=lambda pair: (pair[0], -pair[1]))  # ties: the first trial
    return index, trials[index], best_metric


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        try:
            metrics, trials = json.loads(args.metrics), json.loads(args.trials)
        except json.JSONDecodeError as e:
            raise BadInputError(f"--metrics and --trials must be JSON lists: {e}") from None
        # A pipeline passes each trial as JSON text (a protobuf Struct would not keep key order stable).
        trials = [json.loads(t) if isinstance(t, str) else t for t in trials]
        index, params, metric = select(metrics, trials)
        values = {spec.BEST_PARAMS: json.dumps(params), spec.BEST_METRIC: repr(metric)}
        for name, path in spec.COMPONENT.output_paths(args).items():
            artifacts.write_bytes(path, values[name].encode())
    except BadInputError as e:
        print(f"select_trial: {e}", file=sys.stderr)
        return e.exit_code
    print(f"select_trial: trial {index} of {len(trials)} wins with {metric:.5f}: {json.dumps(params)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
