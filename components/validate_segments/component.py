"""The KFP container component of validate_segments. Imports kfp: used where pipelines are compiled.

No `from __future__ import annotations` here: kfp reads the parameter annotations as objects.
"""

from kfp import dsl

from ctloop.components.validate_segments import spec


def make(image: str):
    """The component, running ``image`` (the train image, with its registry and tag)."""

    @dsl.container_component
    def validate_segments(
        config: str,
        model: dsl.Input[dsl.Model],
        test_split: dsl.Input[dsl.Dataset],
        blessing: dsl.Output[dsl.Artifact],
        report: dsl.Output[dsl.HTML],
        summary: dsl.Output[dsl.Markdown],
        metrics: dsl.Output[dsl.Metrics],
        blessed: dsl.OutputPath(bool),
    ):
        """Judge the candidate per segment against floors, the champion and fairness limits; emit a blessing."""
        return dsl.ContainerSpec(
            image=image,
            command=spec.ENTRY,
            args=[
                "--config-yaml", config,
                "--model", model.path,
                "--test-split", test_split.path,
                "--blessing-out", blessing.path,
                "--report-out", report.path,
                "--summary-out", summary.path,
                "--metrics-out", metrics.path,
                "--metrics-uri", metrics.uri,
                "--blessed-out", blessed,
                "--executor-output", dsl.PIPELINE_TASK_EXECUTOR_OUTPUT_PATH_PLACEHOLDER,
            ],
        )  # fmt: skip

    return validate_segments
