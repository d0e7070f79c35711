"""What validate_segments takes and gives."""

from __future__ import annotations

IMAGE = "train"
ENTRY = ["python", "-m", "ctloop.components.validate_segments"]
CHAMPION = "champion"

# Outputs
BLESSING = "blessing"  # JSON: blessed, every check with its numbers, the failed ones, insufficient segments
REPORT_HTML = "report"
REPORT_MD = "summary"
METRICS = "metrics"  # system.Metrics: overall metrics and counts of checks
BLESSED = "blessed"  # parameter (bool): what the pipeline's dsl.If reads

FILES = {
    BLESSING: "blessing.json",
    REPORT_HTML: "segments.html",
    REPORT_MD: "segments.md",
    METRICS: "metrics.json",
    BLESSED: "blessed.txt",
}
