"""What select_trial takes and gives: the declaration the entry program's parser and the KFP component are made of."""

from __future__ import annotations

from ctloop.components.declaration import Component, OutputParameter, Parameter

# Outputs
BEST_PARAMS = "best_params"
BEST_METRIC = "best_metric"

COMPONENT = Component(
    name="select_trial",
    image="train",
    description="Pick the hyper-parameter trial with the best validation metric.",
    inputs=[
        Parameter("metrics", list[float], "JSON list of validation metrics, one per trial."),
        Parameter("trials", list[str], "JSON list of the trials' parameters (objects or JSON texts)."),
    ],
    outputs=[
        OutputParameter(BEST_PARAMS, str, "best_params.json", "the winning trial's parameters, JSON text"),
        OutputParameter(BEST_METRIC, float, "best_metric.txt", "the winning trial's validation metric"),
    ],
)
