"""What deploy takes and gives."""

from __future__ import annotations

IMAGE = "control"
ENTRY = ["python", "-m", "ctloop.components.deploy"]

# Inputs (parameters): config, model_version and model_uri (register's outputs).
# Outputs (parameters)
ACTION = "action"  # first_deployment | declared | unchanged
