"""What train takes and gives: the declaration the entry program's parser and the KFP component are made of."""

from __future__ import annotations

from ctloop.components.declaration import CONFIG, Artifact, Component, OutputArtifact, OutputParameter, Parameter

# Outputs
MODEL = "model"
METRICS = "metrics"
CLASSIFICATION_METRICS = "classification_metrics"
REFERENCE_SAMPLE = "reference_sample"
SCORE_DISTRIBUTION = "score_distribution"
TEST_SPLIT = "test_split"
VALIDATION_METRIC = "validation_metric"
MLFLOW_RUN_ID = "mlflow_run_id"

COMPONENT = Component(
    name="train",
    image="train",
    description="Train XGBoost with early stopping; report metrics; record an MLflow run.",
    inputs=[
        Parameter("data_uri", str, "The validated span: CSV/Parquet file or folder.", flag="--data"),
        CONFIG,
        Artifact("schema_json", "Artifact", "validate_data's schema.json: categorical domains.", optional=True),
        Parameter("params_json", str, "This trial's hyper-parameters, merged over model.params.", default="{}"),
        Parameter("fingerprint", str, "validate_data's fingerprint: a cache key; checked if given.", default=""),
        Parameter("pipeline_run_id", str, "For lineage (empty: $CTLOOP_PIPELINE_RUN_ID).", default=""),
    ],
    outputs=[
        OutputArtifact(MODEL, "Model", "model", "the model folder (ctloop.model_format)"),
        OutputArtifact(METRICS, "Metrics", "metrics.json", "test metrics", uri=True),
        OutputArtifact(CLASSIFICATION_METRICS, "ClassificationMetrics", "classification_metrics.json",
                       "ROC curve and confusion matrix (binary only)", uri=True),
        OutputArtifact(REFERENCE_SAMPLE, "Dataset", "reference.parquet",
                       "stratified training rows with the model's scores, for drift"),
        OutputArtifact(SCORE_DISTRIBUTION, "Artifact", "score_distribution.json",
                       "histogram and quantiles of the scores on the test split"),
        OutputArtifact(TEST_SPLIT, "Dataset", "test.parquet", "the held-out rows, every column, for validate_segments"),
        OutputParameter(VALIDATION_METRIC, float, "validation_metric.txt",
                        "the early-stopping metric, higher is better"),
        OutputParameter(MLFLOW_RUN_ID, str, "mlflow_run_id.txt", "the MLflow run (empty with --no-mlflow)"),
    ],
    executor_output=True,
)  # fmt: skip
