"""The KFP container component of register. Imports kfp: used where pipelines are compiled.

No `from __future__ import annotations` here: kfp reads the parameter annotations as objects.
"""

from kfp import dsl

from ctloop.components.register import spec


def make(image: str):
    """The component, running ``image`` (the train image, with its registry and tag)."""

    @dsl.container_component
    def register(
        config: str,
        model: dsl.Input[dsl.Model],
        blessing: dsl.Input[dsl.Artifact],
        reference_sample: dsl.Input[dsl.Dataset],
        schema: dsl.Input[dsl.Artifact],
        segment_report: dsl.Input[dsl.HTML],
        data_uri: str,
        fingerprint: str,
        mlflow_run_id: str,
        model_version: dsl.OutputPath(str),
        model_uri: dsl.OutputPath(str),
        pipeline_run_id: str = "",
    ):
        """Register a blessed model in MLflow with lineage tags and the alias `candidate`."""
        return dsl.ContainerSpec(
            image=image,
            command=spec.ENTRY,
            args=[
                "--config-yaml", config,
                "--model", model.path,
                "--blessing", blessing.path,
                "--reference-sample", reference_sample.path,
                "--schema", schema.path,
                "--segment-report", segment_report.path,
                "--data", data_uri,
                "--fingerprint", fingerprint,
                "--mlflow-run-id", mlflow_run_id,
                "--pipeline-run-id", pipeline_run_id,
                "--model-version-out", model_version,
                "--model-uri-out", model_uri,
            ],
        )  # fmt: skip

    return register
