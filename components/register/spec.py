"""What register takes and gives: the declaration the entry program's parser and the KFP component are made of."""

from __future__ import annotations

from ctloop.components.declaration import CONFIG, Artifact, Component, OutputParameter, Parameter

# Outputs
MODEL_VERSION = "model_version"
MODEL_URI = "model_uri"

COMPONENT = Component(
    name="register",
    image="train",
    description="Register a blessed model in MLflow with lineage tags and the alias `candidate`.",
    inputs=[
        CONFIG,
        Artifact("model", "Model", "The model folder from train."),
        Artifact("blessing", "Artifact", "The blessing JSON from validate_segments."),
        # Logged into the training run when given; the pipeline always gives them.
        Artifact("reference_sample", "Dataset", "train's reference sample.", optional=True),
        Artifact("schema", "Artifact", "validate_data's schema.", optional=True),
        # The next span is judged against these (resolve_champion hands them to validate_data).
        Artifact("statistics", "Artifact", "validate_data's statistics of the training span.", optional=True),
        Artifact(
            "anomalies_summary", "Artifact", "validate_data's data verdict, with the span's figures.", optional=True
        ),
        Artifact("segment_report", "HTML", "validate_segments' report.", optional=True),
        Parameter("data_uri", str, "The dataset URI the model was trained on.", flag="--data"),
        Parameter("fingerprint", str, "validate_data's fingerprint (JSON)."),
        Parameter("mlflow_run_id", str, "The training run."),
        Parameter("pipeline_run_id", str, "For lineage (empty: $CTLOOP_PIPELINE_RUN_ID).", default=""),
    ],
    outputs=[
        OutputParameter(MODEL_VERSION, str, "model_version.txt", "the registered version"),
        # The physical artifact location, which Seldon's storage initializer can read (not models:/...).
        OutputParameter(MODEL_URI, str, "model_uri.txt", "the version's artifact location"),
    ],
)
