"""KFP's ExecutorOutput, written by container components to ``{{$.outputs.output_file}}``.

The KFP launcher merges each artifact's ``metadata`` from this file into the output artifact: that is how a
container component reports ``system.Metrics`` and ``system.ClassificationMetrics`` to the KFP UI.
"""

from __future__ import annotations

import json

from ctloop import artifacts


def metrics_metadata(values: dict[str, float]) -> dict:
    return {k: float(v) for k, v in values.items()}


def classification_metadata(fpr, tpr, thresholds, categories: list[str], matrix) -> dict:
    """The layout of kfp.dsl.ClassificationMetrics' log_roc_curve and log_confusion_matrix."""
    return {
        "confidenceMetrics": [
            {"confidenceThreshold": float(t), "recall": float(r), "falsePositiveRate": float(f)}
            for f, r, t in zip(fpr, tpr, thresholds)
        ],
        "confusionMatrix": {
            "annotationSpecs": [{"displayName": c} for c in categories],
            "rows": [{"row": [int(v) for v in row]} for row in matrix],
        },
    }


def write(path: str, artifact_metadata: dict[str, tuple[str, dict]]) -> None:
    """``artifact_metadata``: output name -> (artifact URI, metadata)."""
    output = {
        "artifacts": {
            name: {"artifacts": [{"name": name, "uri": uri, "metadata": metadata}]}
            for name, (uri, metadata) in artifact_metadata.items()
        }
    }
    artifacts.write_bytes(path, json.dumps(output, indent=2).encode())
