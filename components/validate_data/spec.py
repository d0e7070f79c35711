"""What validate_data takes and gives: one place for the names shared by the entry program and the KFP component."""

from __future__ import annotations

IMAGE = "validate"
ENTRY = ["python", "-m", "ctloop.components.validate_data"]

# Inputs
DATA_URI = "data_uri"  # parameter: a file or span folder, path, file:// or s3://
CONFIG = "config"  # parameter: the text of ctloop.yaml
# Optional inputs are URIs (empty: none), read through ctloop.artifacts: a pipeline parameter can then name the
# previous span's statistics wherever they are, without an importer step.
PINNED_SCHEMA = "pinned_schema_uri"  # a reviewed schema (text proto)
PREVIOUS_STATISTICS = "previous_statistics_uri"  # the previous span's statistics (drift)
SERVING_STATISTICS = "serving_statistics_uri"  # statistics of logged serving data (skew)

# Outputs
STATISTICS = "statistics"  # binary DatasetFeatureStatisticsList
SCHEMA = "schema"  # text Schema: the pinned one, or the inferred and curated one for review
SCHEMA_JSON = "schema_json"  # the same Schema as JSON, for steps whose image has no TFDV (train reads domains)
ANOMALIES = "anomalies"  # text Anomalies
ANOMALIES_JSON = "anomalies_summary"  # JSON summary
REPORT_HTML = "report"  # TFDV's statistics view (the KFP UI renders HTML)
SUMMARY_MD = "summary"  # Markdown summary
FINGERPRINT = "fingerprint"  # parameter: JSON {"sha256", "rows", "files"}

OUTPUT_FILES = {
    STATISTICS: "stats.pb",
    SCHEMA: "schema.pbtxt",
    SCHEMA_JSON: "schema.json",
    ANOMALIES: "anomalies.pbtxt",
    ANOMALIES_JSON: "anomalies.json",
    REPORT_HTML: "statistics.html",
    SUMMARY_MD: "summary.md",
    FINGERPRINT: "fingerprint.json",
}

# Exit statuses of the entry program
EXIT_OK = 0
EXIT_ANOMALIES = 1  # the data failed validation: ERROR anomalies
EXIT_BAD_INPUT = 2  # the input could not be validated at all
