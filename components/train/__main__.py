"""Entry program of the train container.

    python -m ctloop.components.train --data URI (--config FILE | --config-yaml TEXT) [--schema-json URI]
        [--params-json JSON] [--no-mlflow] [--out DIR] [--model-out DIR ...] [--executor-output FILE]
        [--metrics-uri URI --classification-metrics-uri URI]

Exit status: 0 trained; 1 a dependency failed (MLflow unreachable); 2 bad input (nothing is written).
"""

from __future__ import annotations

import io
import json
import os
import sys

from ctloop import artifacts, kfp_outputs, model_format
from ctloop.components.train import spec
from ctloop.contracts.span import Fingerprint
from ctloop.entrypoint import load_settings
from ctloop.errors import BadInputError, CtloopError


def parse_args(argv):
    p = spec.COMPONENT.parser()
    p.add_argument("--no-mlflow", action="store_true", help="Do not record an MLflow run.")
    return p.parse_args(argv)


def _parquet(frame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args)
        try:
            params = json.loads(args.params_json)
        except json.JSONDecodeError as e:
            raise BadInputError(f"--params-json is not JSON: {e}") from None
        if not isinstance(params, dict):
            raise BadInputError("--params-json must be a JSON object of XGBoost parameters")
        from ctloop.components.train import executor, tracking

        request = executor.Request(args.data_uri, settings, args.schema_json, params)
        result = executor.train(request)
        validated = Fingerprint.from_json(args.fingerprint, "--fingerprint") if args.fingerprint else None
        if validated and validated.sha256 != result.fingerprint.sha256:
            # The span changed between validation and training: what was validated is not what was trained on.
            raise BadInputError(f"{args.data_uri}: its content changed after validation (fingerprints differ)")
        pipeline_run_id = args.pipeline_run_id or os.environ.get("CTLOOP_PIPELINE_RUN_ID")
        run_id = "" if args.no_mlflow else tracking.log_run(settings, request, result, pipeline_run_id)
        metrics_doc = {k: float(v) for k, v in result.metrics.items()}
        outputs = {
            spec.METRICS: json.dumps(metrics_doc, indent=2).encode(),
            spec.CLASSIFICATION_METRICS: json.dumps({"roc": result.roc, "confusion": result.confusion}).encode(),
            spec.REFERENCE_SAMPLE: _parquet(result.reference),
            spec.SCORE_DISTRIBUTION: json.dumps(
                executor.score_distribution(result.test_scores, settings.data.task.value), indent=2
            ).encode(),
            spec.TEST_SPLIT: _parquet(result.frame.iloc[result.parts["test"]].reset_index(drop=True)),
            spec.VALIDATION_METRIC: repr(result.validation_metric).encode(),
            spec.MLFLOW_RUN_ID: run_id.encode(),
        }
        paths = spec.COMPONENT.output_paths(args)
        if spec.MODEL in paths:
            model_format.write(paths[spec.MODEL], result.model.booster, result.model.spec, result.model.policy,
                               result.model.metadata)  # fmt: skip
        for name, data in outputs.items():
            if name in paths:
                artifacts.write_bytes(paths[name], data)
        if args.executor_output:
            reported = {spec.METRICS: (args.metrics_uri, kfp_outputs.metrics_metadata(metrics_doc))}
            if result.roc:
                reported[spec.CLASSIFICATION_METRICS] = (
                    args.classification_metrics_uri,
                    kfp_outputs.classification_metadata(
                        result.roc["fpr"], result.roc["tpr"], result.roc["thresholds"],
                        result.confusion["categories"], result.confusion["matrix"],
                    ),
                )  # fmt: skip
            kfp_outputs.write(args.executor_output, reported)
    except CtloopError as e:
        print(f"train: {e}", file=sys.stderr)
        return e.exit_code
    summary = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    print(f"train: best iteration {result.model.metadata['best_iteration']}; test {summary}")
    if run_id:
        print(f"train: MLflow run {run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
