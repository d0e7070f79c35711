"""What train takes and gives."""

from __future__ import annotations

IMAGE = "train"
ENTRY = ["python", "-m", "ctloop.components.train"]

# Inputs
DATA_URI = "data_uri"
CONFIG = "config"
SCHEMA_JSON = "schema_json"  # artifact from validate_data: the categorical domains
PARAMS_JSON = "params_json"  # parameter: one trial's hyper-parameters, merged over the config's

# Outputs
MODEL = "model"  # folder: see ctloop.model_format
METRICS = "metrics"  # system.Metrics
CLASSIFICATION_METRICS = "classification_metrics"  # system.ClassificationMetrics (binary only)
REFERENCE_SAMPLE = "reference_sample"  # Parquet: stratified training rows with the model's scores, for drift
SCORE_DISTRIBUTION = "score_distribution"  # JSON: histogram and quantiles of the scores on the test split
TEST_SPLIT = "test_split"  # Parquet: the held-out rows, every column, for validate_segments
VALIDATION_METRIC = "validation_metric"  # parameter: the early-stopping metric, higher is better
MLFLOW_RUN_ID = "mlflow_run_id"  # parameter

FILES = {
    METRICS: "metrics.json",
    CLASSIFICATION_METRICS: "classification_metrics.json",
    REFERENCE_SAMPLE: "reference.parquet",
    SCORE_DISTRIBUTION: "score_distribution.json",
    TEST_SPLIT: "test.parquet",
    VALIDATION_METRIC: "validation_metric.txt",
    MLFLOW_RUN_ID: "mlflow_run_id.txt",
}
