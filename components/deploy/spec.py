"""What deploy takes and gives: the declaration the entry program's parser and the KFP component are made of."""

from __future__ import annotations

from ctloop.components.declaration import CONFIG, Component, OutputParameter, Parameter

# Outputs
ACTION = "action"

COMPONENT = Component(
    name="deploy",
    image="control",
    description="Make the registered version the SeldonDeployment's candidate; the rollout controller takes over.",
    inputs=[
        CONFIG,
        Parameter("model_version", str, "The registered version (register's output)."),
        Parameter("model_uri", str, "Its physical artifact location (register's output)."),
    ],
    outputs=[OutputParameter(ACTION, str, "action.txt", "first_deployment, declared or unchanged")],
)
