"""The model folder: what train writes, validate_segments and register read, and Seldon's storage initializer
copies to /mnt/models for the model server.

    model.json             XGBoost booster (JSON)
    feature_spec.json      task, label, features in order with types and categories, unseen-category policy
    decision_policy.json   threshold, decisions and rules (ctloop.policy), versioned by content hash
    metadata.json          training facts: parameters, best iteration, dataset fingerprint, metrics

Categorical features use XGBoost's native categorical support; their categories are fixed here, in order, so
that the code of a value is the same in training, evaluation and serving. xgboost and pandas are imported
where needed: the module itself stays importable in every image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ctloop import artifacts, policy
from ctloop.errors import BadInputError

BOOSTER, FEATURES, POLICY, METADATA = "model.json", "feature_spec.json", "decision_policy.json", "metadata.json"
FORMAT_VERSION = 1


def feature_spec(settings, categories: dict[str, list[str]]) -> dict:
    return {
        "format": FORMAT_VERSION,
        "task": settings.data.task.value,
        "objective": settings.model.objective,
        "label": settings.data.label,
        "unseen_category": settings.model.unseen_category,
        "features": [
            {"name": f.name, "type": f.type, **({"categories": categories[f.name]} if f.type == "categorical" else {})}
            for f in settings.features
        ],
    }


def policy_document(settings) -> dict:
    doc = json.loads(settings.model.policy.json())
    return {**doc, "version": policy.version(doc)}


def encode(frame, spec: dict):
    """The model's input frame: features in order, numbers as float, categories with the fixed category list
    (a value outside it becomes missing; serving applies its own unseen-category policy before this)."""
    import pandas as pd

    missing = [f["name"] for f in spec["features"] if f["name"] not in frame.columns]
    if missing:
        raise BadInputError(f"features missing from the data: {missing}")
    columns = {}
    for f in spec["features"]:
        values = frame[f["name"]]
        if f["type"] == "categorical":
            columns[f["name"]] = pd.Categorical(values.astype("string").astype(object), categories=f["categories"])
        else:
            try:
                columns[f["name"]] = pd.to_numeric(values, errors="raise").astype("float64")
            except (ValueError, TypeError):
                raise BadInputError(f"feature {f['name']!r} is numeric but holds non-numbers") from None
    return pd.DataFrame(columns, index=frame.index)


@dataclass
class Model:
    booster: Any
    spec: dict
    policy: dict
    metadata: dict

    def predict(self, frame):
        """Scores: P(positive) for binary classification, the value for regression, class probabilities for
        multiclass."""
        import xgboost as xgb

        data = xgb.DMatrix(encode(frame, self.spec), enable_categorical=True)
        best = self.metadata.get("best_iteration")
        kwargs = {"iteration_range": (0, best + 1)} if best is not None else {}
        return self.booster.predict(data, **kwargs)


def write(folder: str, booster, spec: dict, policy_doc: dict, metadata: dict) -> None:
    artifacts.write_bytes(artifacts.join(folder, BOOSTER), bytes(booster.save_raw("json")))
    for name, doc in ((FEATURES, spec), (POLICY, policy_doc), (METADATA, metadata)):
        artifacts.write_bytes(artifacts.join(folder, name), json.dumps(doc, indent=2, sort_keys=True).encode())


def load(folder: str) -> Model:
    import xgboost as xgb

    def document(name: str) -> dict:
        try:
            return json.loads(artifacts.read_bytes(artifacts.join(folder, name)))
        except json.JSONDecodeError as e:
            raise BadInputError(f"{artifacts.join(folder, name)}: not valid JSON: {e}") from None

    spec = document(FEATURES)
    if spec.get("format") != FORMAT_VERSION:
        raise BadInputError(f"{folder}: model folder format {spec.get('format')!r}, expected {FORMAT_VERSION}")
    booster = xgb.Booster()
    booster.load_model(bytearray(artifacts.read_bytes(artifacts.join(folder, BOOSTER))))
    return Model(booster, spec, document(POLICY), document(METADATA))
