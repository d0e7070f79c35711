"""Entry program of the register step (train image).

    python -m ctloop.components.register --model DIR --blessing URI --mlflow-run-id ID --data URI
        --fingerprint JSON (--config FILE | --config-yaml TEXT) [--reference-sample URI] [--schema URI]
        [--segment-report URI] [--pipeline-run-id ID] [--model-version-out FILE] [--model-uri-out FILE]

Exit status: 0 registered (or found already registered); 1 not blessed, or the registry failed; 2 bad input.
"""

from __future__ import annotations

import os
import sys

from ctloop import artifacts, mlflow_client
from ctloop.components.register import executor, spec
from ctloop.contracts.span import Fingerprint
from ctloop.entrypoint import load_settings
from ctloop.errors import CtloopError


def parse_args(argv):
    return spec.COMPONENT.parser().parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args)
        fingerprint = Fingerprint.from_json(args.fingerprint, "--fingerprint")
        request = executor.Request(
            model_dir=args.model,
            blessing=args.blessing,
            mlflow_run_id=args.mlflow_run_id,
            data_uri=args.data_uri,
            fingerprint=fingerprint,
            pipeline_run_id=args.pipeline_run_id or os.environ.get("CTLOOP_PIPELINE_RUN_ID", ""),
            reference_sample=args.reference_sample,
            schema=args.schema,
            segment_report=args.segment_report,
            statistics=args.statistics,
            data_verdict=args.anomalies_summary,
            accept_label_change=settings.gates.segments.accept_label_change,
        )
        executor.read_blessing(args.blessing)  # bad input fails before the registry is contacted
        client = mlflow_client.connect(settings)
        done = executor.register(client, settings.endpoints.mlflow.registered_model, request)
        values = {spec.MODEL_VERSION: done.version, spec.MODEL_URI: done.source}
        for name, path in spec.COMPONENT.output_paths(args).items():
            artifacts.write_bytes(path, values[name].encode())
    except CtloopError as e:
        print(f"register: {e}", file=sys.stderr)
        return e.exit_code
    how = "registered" if done.created else "already registered (same training run)"
    print(f"register: {done.name} version {done.version} {how}; alias candidate; source {done.source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
