"""What validate_segments takes and gives: the declaration the entry program's parser and the KFP component are made
of."""

from __future__ import annotations

from ctloop.components.declaration import CONFIG, Artifact, Component, OutputArtifact, OutputParameter

# Outputs
BLESSING = "blessing"
REPORT_HTML = "report"
REPORT_MD = "summary"
METRICS = "metrics"
BLESSED = "blessed"

COMPONENT = Component(
    name="validate_segments",
    image="train",
    description="Judge the candidate per segment against floors, the champion and fairness limits; emit a blessing.",
    inputs=[
        CONFIG,
        Artifact("model", "Model", "The candidate's model folder."),
        Artifact("test_split", "Dataset", "The held-out rows from train (Parquet)."),
    ],
    outputs=[
        OutputArtifact(BLESSING, "Artifact", "blessing.json",
                       "blessed, every check with its numbers, the failed ones, insufficient segments"),
        OutputArtifact(REPORT_HTML, "HTML", "segments.html", "the report"),
        OutputArtifact(REPORT_MD, "Markdown", "segments.md", "the report in Markdown"),
        OutputArtifact(METRICS, "Metrics", "metrics.json", "overall metrics and counts of checks", uri=True),
        OutputParameter(BLESSED, bool, "blessed.txt", "what the pipeline's dsl.If reads"),
    ],
    executor_output=True,
)  # fmt: skip
