"""What register takes and gives."""

from __future__ import annotations

IMAGE = "train"
ENTRY = ["python", "-m", "ctloop.components.register"]
CANDIDATE = "candidate"

# Inputs: model, blessing, reference_sample, schema, segment_report (artifacts); data_uri, fingerprint,
# mlflow_run_id, pipeline_run_id, config (parameters).
# Outputs (parameters)
MODEL_VERSION = "model_version"
MODEL_URI = "model_uri"  # the physical artifact location, which Seldon's storage initializer can read
