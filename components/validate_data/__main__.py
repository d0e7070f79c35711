"""Entry program of the validate_data container (and of `ctloop validate`).

    python -m ctloop.components.validate_data --data URI (--config FILE | --config-yaml TEXT)
        [--schema URI] [--previous-statistics URI] [--serving-statistics URI] [--reference URI]
        [--beam [--beam-arg ARG ...]] [--out DIR] [--statistics-out URI ...]

Outputs go to the URIs given one by one (what KFP passes) or, for those not given, under --out.
Exit status: 0 passed, 1 ERROR anomalies (the outputs are written, the list is printed), 2 bad input
(nothing is written).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from ctloop.components.validate_data import spec
from ctloop.entrypoint import load_settings
from ctloop.errors import CtloopError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = spec.COMPONENT.parser()
    # For people (`ctloop validate`); the pipeline passes the previous span's statistics instead.
    p.add_argument("--reference", help="The previous span's data: schema inferred from it, drift measured against it.")
    p.add_argument("--beam", action="store_true", help="Compute statistics with an Apache Beam pipeline.")
    p.add_argument("--beam-arg", action="append", default=[], help="A Beam pipeline option, e.g. --runner=...")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args)
        # Imported here: TFDV takes seconds to import, and a bad command line should fail at once.
        # TensorFlow's start-up chatter and Google's Python-version notices would bury the summary.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        warnings.filterwarnings("ignore", category=FutureWarning)
        from ctloop.components.validate_data import executor

        request = executor.Request(
            data_uri=args.data_uri,
            settings=settings,
            # An empty value is what a pipeline passes for "none".
            pinned_schema=args.pinned_schema_uri or None,
            previous_statistics=args.previous_statistics_uri or None,
            serving_statistics=args.serving_statistics_uri or None,
            serving_data=args.serving_data_uri or None,
            reference_uri=args.reference or None,
            champion=executor.Champion.of(
                args.champion_version,
                args.champion_schema_uri,
                args.champion_statistics_uri,
                args.champion_verdict_uri,
            ),
            beam_args=args.beam_arg if args.beam else None,
        )
        result = executor.run(request)
        executor.write_outputs(result, spec.COMPONENT.output_paths(args))
    except CtloopError as e:
        print(f"validate_data: {e}", file=sys.stderr)
        return spec.EXIT_BAD_INPUT if e.exit_code == 2 else e.exit_code
    print(result.outputs()[spec.SUMMARY_MD].decode())
    if not result.passed:
        print(f"validate_data: {len(result.errors)} ERROR anomalies:", file=sys.stderr)
        for p in result.errors:
            print(f"  {p.feature}: {p.kind}: {p.description}", file=sys.stderr)
        return spec.EXIT_ANOMALIES
    return spec.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
