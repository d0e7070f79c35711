"""The KFP container component of train. Imports kfp: used where pipelines are compiled.

No `from __future__ import annotations` here: kfp reads the parameter annotations as objects.
"""

from kfp import dsl

from ctloop.components.train import spec


def make(image: str):
    """The component, running ``image`` (the train image, with its registry and tag)."""

    @dsl.container_component
    def train(
        data_uri: str,
        config: str,
        model: dsl.Output[dsl.Model],
        metrics: dsl.Output[dsl.Metrics],
        classification_metrics: dsl.Output[dsl.ClassificationMetrics],
        reference_sample: dsl.Output[dsl.Dataset],
        score_distribution: dsl.Output[dsl.Artifact],
        test_split: dsl.Output[dsl.Dataset],
        validation_metric: dsl.OutputPath(float),
        mlflow_run_id: dsl.OutputPath(str),
        schema_json: dsl.Input[dsl.Artifact] = None,
        params_json: str = "{}",
        fingerprint: str = "",
        pipeline_run_id: str = "",
    ):
        """Train XGBoost with early stopping; report metrics; record an MLflow run."""
        return dsl.ContainerSpec(
            image=image,
            command=spec.ENTRY,
            args=[
                "--data", data_uri,
                "--config-yaml", config,
                dsl.IfPresentPlaceholder(input_name=spec.SCHEMA_JSON, then=["--schema-json", schema_json.path]),
                "--params-json", params_json,
                "--fingerprint", fingerprint,
                "--pipeline-run-id", pipeline_run_id,
                "--model-out", model.path,
                "--metrics-out", metrics.path,
                "--metrics-uri", metrics.uri,
                "--classification-metrics-out", classification_metrics.path,
                "--classification-metrics-uri", classification_metrics.uri,
                "--reference-sample-out", reference_sample.path,
                "--score-distribution-out", score_distribution.path,
                "--test-split-out", test_split.path,
                "--validation-metric-out", validation_metric,
                "--mlflow-run-id-out", mlflow_run_id,
                "--executor-output", dsl.PIPELINE_TASK_EXECUTOR_OUTPUT_PATH_PLACEHOLDER,
            ],
        )  # fmt: skip

    return train
