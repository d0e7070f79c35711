"""What select_trial takes and gives."""

from __future__ import annotations

IMAGE = "train"
ENTRY = ["python", "-m", "ctloop.components.select_trial"]
BEST_PARAMS = "best_params"  # parameter: the winning trial's parameters, JSON text
BEST_METRIC = "best_metric"  # parameter (float)
