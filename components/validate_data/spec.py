"""What validate_data takes and gives: the declaration the entry program's parser and the KFP component are made of."""

from __future__ import annotations

from ctloop.components.declaration import CONFIG, Component, OutputArtifact, OutputParameter, Parameter

# Outputs
STATISTICS = "statistics"
SCHEMA = "schema"
SCHEMA_JSON = "schema_json"
ANOMALIES = "anomalies"
ANOMALIES_JSON = "anomalies_summary"
REPORT_HTML = "report"
SUMMARY_MD = "summary"
FINGERPRINT = "fingerprint"

COMPONENT = Component(
    name="validate_data",
    image="validate",
    description="Validate a data span with TFDV; fails on ERROR anomalies so nothing downstream runs.",
    inputs=[
        Parameter("data_uri", str, "Dataset URI: a CSV/Parquet file or a span folder.", flag="--data"),
        CONFIG,
        # Optional inputs are URIs (empty: none), read through ctloop.artifacts: a pipeline parameter can then name
        # the previous span's statistics wherever they are, without an importer step.
        Parameter("pinned_schema_uri", str, "A pinned schema (text proto) to validate against.", default="",
                  flag="--schema"),
        Parameter("previous_statistics_uri", str, "Statistics of the previous span (binary proto), for drift.",
                  default="", flag="--previous-statistics"),
        Parameter("serving_statistics_uri", str, "Statistics of logged serving data (binary proto), for skew.",
                  default="", flag="--serving-statistics"),
        # What production knows (resolve_champion's outputs): used where nothing above is given.
        Parameter("champion_version", str, "The registered champion the span is held to.", default=""),
        Parameter("champion_schema_uri", str, "The champion's registered schema (text proto).", default=""),
        Parameter("champion_statistics_uri", str, "Statistics of the champion's training span (binary proto).",
                  default=""),
        Parameter("champion_verdict_uri", str, "The champion's data verdict, with its span's figures (JSON).",
                  default=""),
        Parameter("serving_data_uri", str, "Requests the drift watcher logged: skew is measured against them.",
                  default=""),
    ],
    outputs=[
        OutputArtifact(STATISTICS, "Artifact", "stats.pb", "binary DatasetFeatureStatisticsList"),
        OutputArtifact(SCHEMA, "Artifact", "schema.pbtxt",
                       "text Schema: the pinned one, or the inferred and curated one for review"),
        OutputArtifact(SCHEMA_JSON, "Artifact", "schema.json",
                       "the same Schema as JSON, for steps whose image has no TFDV (train reads domains)"),
        OutputArtifact(ANOMALIES, "Artifact", "anomalies.pbtxt", "text Anomalies"),
        OutputArtifact(ANOMALIES_JSON, "Artifact", "anomalies.json", "the verdict as JSON"),
        OutputArtifact(REPORT_HTML, "HTML", "statistics.html", "TFDV's statistics view (the KFP UI renders HTML)"),
        OutputArtifact(SUMMARY_MD, "Markdown", "summary.md", "Markdown summary"),
        OutputParameter(FINGERPRINT, str, "fingerprint.json", 'the span\'s content, JSON {"sha256", "rows", "files"}'),
    ],
)  # fmt: skip
OUTPUT_FILES = COMPONENT.output_files

# Exit statuses of the entry program
EXIT_OK = 0
EXIT_ANOMALIES = 1  # the data failed validation: ERROR anomalies
EXIT_BAD_INPUT = 2  # the input could not be validated at all
