"""Entry program of the register step (train image).

    python -m ctloop.components.register --model DIR --blessing URI --mlflow-run-id ID --data URI
        --fingerprint JSON (--config FILE | --config-yaml TEXT) [--reference-sample URI] [--schema URI]
        [--segment-report URI] [--pipeline-run-id ID] [--model-version-out FILE] [--model-uri-out FILE]

Exit status: 0 registered (or found already registered); 1 not blessed, or the registry failed; 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ctloop import artifacts, mlflow_client
from ctloop.components.register import executor
from ctloop.entrypoint import add_config_arguments, load_settings
from ctloop.errors import BadInputError, CtloopError


def parse_args(argv):
    p = argparse.ArgumentParser(prog="register", description=__doc__.split("\n\n")[0])
    add_config_arguments(p)
    p.add_argument("--model", required=True, help="The model folder from train.")
    p.add_argument("--blessing", required=True, help="The blessing JSON from validate_segments.")
    p.add_argument("--mlflow-run-id", required=True, help="The training run.")
    p.add_argument("--data", required=True, help="The dataset URI the model was trained on.")
    p.add_argument("--fingerprint", required=True, help="validate_data's fingerprint (JSON).")
    p.add_argument("--reference-sample")
    p.add_argument("--schema")
    p.add_argument("--segment-report")
    p.add_argument("--pipeline-run-id", default=os.environ.get("CTLOOP_PIPELINE_RUN_ID", ""))
    p.add_argument("--model-version-out")
    p.add_argument("--model-uri-out")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args)
        try:
            fingerprint = json.loads(args.fingerprint)
        except json.JSONDecodeError as e:
            raise BadInputError(f"--fingerprint is not JSON: {e}") from None
        request = executor.Request(
            model_dir=args.model,
            blessing=args.blessing,
            mlflow_run_id=args.mlflow_run_id,
            data_uri=args.data,
            fingerprint=fingerprint,
            pipeline_run_id=args.pipeline_run_id,
            reference_sample=args.reference_sample,
            schema=args.schema,
            segment_report=args.segment_report,
        )
        executor.read_blessing(args.blessing)  # bad input fails before the registry is contacted
        client = mlflow_client.connect(settings)
        done = executor.register(client, settings.endpoints.mlflow.registered_model, request)
        for path, value in ((args.model_version_out, done.version), (args.model_uri_out, done.source)):
            if path:
                artifacts.write_bytes(path, value.encode())
    except CtloopError as e:
        print(f"register: {e}", file=sys.stderr)
        return e.exit_code
    how = "registered" if done.created else "already registered (same training run)"
    print(f"register: {done.name} version {done.version} {how}; alias candidate; source {done.source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
