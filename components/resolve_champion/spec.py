"""What resolve_champion takes and gives: the declaration the entry program's parser and the KFP component are made
of."""

from __future__ import annotations

from ctloop.components.declaration import CONFIG, Component, OutputParameter

# Outputs: validate_data's inputs of the same names. Empty text means none (no champion, or registered without it).
CHAMPION_VERSION = "champion_version"
CHAMPION_SCHEMA_URI = "champion_schema_uri"
CHAMPION_STATISTICS_URI = "champion_statistics_uri"
CHAMPION_VERDICT_URI = "champion_verdict_uri"
SERVING_DATA_URI = "serving_data_uri"

COMPONENT = Component(
    name="resolve_champion",
    image="train",
    description="Find the champion's registered schema, training statistics and data verdict, and the serving data "
    "the drift watcher logged, for validate_data.",
    inputs=[CONFIG],
    outputs=[
        OutputParameter(CHAMPION_VERSION, str, "champion_version.txt", "the version behind `champion`, or empty"),
        OutputParameter(CHAMPION_SCHEMA_URI, str, "champion_schema_uri.txt", "its registered schema (text proto)"),
        OutputParameter(CHAMPION_STATISTICS_URI, str, "champion_statistics_uri.txt",
                        "its training span's statistics (binary proto)"),
        OutputParameter(CHAMPION_VERDICT_URI, str, "champion_verdict_uri.txt",
                        "its training span's data verdict, with the span's figures (JSON)"),
        OutputParameter(SERVING_DATA_URI, str, "serving_data_uri.txt",
                        "the requests the drift watcher logged, a folder per day, for skew"),
    ],
)  # fmt: skip
