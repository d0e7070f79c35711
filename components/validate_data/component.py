"""The KFP container component of validate_data. Imports kfp: used where pipelines are compiled.

No `from __future__ import annotations` here: kfp reads the parameter annotations as objects.
"""

from kfp import dsl

from ctloop.components.validate_data import spec


def _out(name: str) -> str:
    return f"--{name.replace('_', '-')}-out"


def make(image: str):
    """The component, running ``image`` (the validate image, with its registry and tag)."""

    @dsl.container_component
    def validate_data(
        data_uri: str,
        config: str,
        statistics: dsl.Output[dsl.Artifact],
        schema: dsl.Output[dsl.Artifact],
        schema_json: dsl.Output[dsl.Artifact],
        anomalies: dsl.Output[dsl.Artifact],
        anomalies_summary: dsl.Output[dsl.Artifact],
        report: dsl.Output[dsl.HTML],
        summary: dsl.Output[dsl.Markdown],
        fingerprint: dsl.OutputPath(str),
        pinned_schema_uri: str = "",
        previous_statistics_uri: str = "",
        serving_statistics_uri: str = "",
    ):
        """Validate a data span with TFDV; fails on ERROR anomalies so nothing downstream runs."""
        return dsl.ContainerSpec(
            image=image,
            command=spec.ENTRY,
            args=[
                "--data", data_uri,
                "--config-yaml", config,
                "--schema", pinned_schema_uri,
                "--previous-statistics", previous_statistics_uri,
                "--serving-statistics", serving_statistics_uri,
                _out(spec.STATISTICS), statistics.path,
                _out(spec.SCHEMA), schema.path,
                _out(spec.SCHEMA_JSON), schema_json.path,
                _out(spec.ANOMALIES), anomalies.path,
                _out(spec.ANOMALIES_JSON), anomalies_summary.path,
                _out(spec.REPORT_HTML), report.path,
                _out(spec.SUMMARY_MD), summary.path,
                _out(spec.FINGERPRINT), fingerprint,
            ],
        )  # fmt: skip

    return validate_data
