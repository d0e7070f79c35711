"""The model logic of the server: a model folder, request rows validated against its feature spec, scores,
decisions and explanations. numpy and XGBoost's inplace_predict on the hot path: no pandas per request."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ctloop import artifacts, model_format, policy
from ctloop.errors import BadInputError

MAX_ROWS = 10_000


@dataclass
class Scored:
    scores: np.ndarray  # P(positive), the value, or class probabilities
    decisions: np.ndarray | None  # object array of decision names (binary classification)
    rules: np.ndarray | None  # the rule behind each decision ("" for the threshold)
    contributions: list[dict] | None = None


class ScoringModel:
    """A loaded model folder; ``score`` takes rows as (names, rows) and answers or raises BadInputError."""

    def __init__(self, folder: str):
        self.folder = folder
        booster_bytes = artifacts.read_bytes(artifacts.join(folder, model_format.BOOSTER))
        loaded = model_format.load(folder)
        self.booster = loaded.booster
        self.spec = loaded.spec
        self.policy = loaded.policy
        self.metadata = loaded.metadata
        self.features = [f["name"] for f in self.spec["features"]]
        self.index = {name: i for i, name in enumerate(self.features)}
        self.codes = {f["name"]: {c: i for i, c in enumerate(f["categories"])}
                      for f in self.spec["features"] if f["type"] == "categorical"}  # fmt: skip
        best = self.metadata.get("best_iteration")
        self.iteration_range = (0, best + 1) if best is not None else (0, 0)
        self.content_version = hashlib.sha256(booster_bytes).hexdigest()[:12]
        self.policy_version = self.policy.get("version") or policy.version(self.policy)
        self.binary = self.spec["task"] == "binary_classification"

    # -- validation

    def _column(self, name: str, values: list) -> np.ndarray:
        if name in self.codes:
            codes = self.codes[name]
            out = np.empty(len(values))
            for i, value in enumerate(values):
                if value is None:
                    out[i] = np.nan
                elif not isinstance(value, str):
                    raise BadInputError(f"feature {name!r} is categorical: expected a string, got {value!r}")
                elif value in codes:
                    out[i] = codes[value]
                elif self.spec["unseen_category"] == "missing":
                    out[i] = np.nan
                else:
                    raise BadInputError(f"feature {name!r}: category {value!r} was never seen in training")
            return out
        for value in values:
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise BadInputError(f"feature {name!r} is numeric: expected a number, got {value!r}")
        try:
            column = np.array([np.nan if v is None else v for v in values], dtype=float)
        except OverflowError:  # an integer of hundreds of digits: JSON allows it, a float cannot hold it
            raise BadInputError(f"feature {name!r}: a number too large for a float") from None
        if np.isinf(column).any():
            raise BadInputError(f"feature {name!r}: infinity is not a value (use null for missing)")
        return column

    def matrix(self, names: list, rows: list) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The model's input matrix, and the raw columns the decision rules read."""
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadInputError("data.names must be a list of feature names")
        if not isinstance(rows, list) or not rows:
            raise BadInputError("no rows: send at least one row")
        if len(rows) > MAX_ROWS:
            raise BadInputError(f"too many rows: {len(rows)} (at most {MAX_ROWS} a request)")
        duplicated = sorted({n for n in names if names.count(n) > 1})
        missing = [f for f in self.features if f not in names]
        unknown = [n for n in names if n not in self.index]
        if duplicated or missing or unknown:
            parts = [f"{label} feature(s) {items}" for label, items in
                     (("duplicated", duplicated), ("missing", missing), ("unknown", unknown)) if items]  # fmt: skip
            raise BadInputError("; ".join(parts))
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != len(names):
                raise BadInputError(f"row {i} must be a list of {len(names)} values, one per name")
        position = {n: i for i, n in enumerate(names)}
        x = np.empty((len(rows), len(self.features)))
        raw = {}
        for j, name in enumerate(self.features):
            values = [row[position[name]] for row in rows]
            x[:, j] = self._column(name, values)
            raw[name] = np.array(values, dtype=object) if name in self.codes else x[:, j]
        return x, raw

    # -- scoring

    def score(self, names: list, rows: list, explain: bool = False) -> Scored:
        x, raw = self.matrix(names, rows)
        scores = self.booster.inplace_predict(x, iteration_range=self.iteration_range)
        decisions = rules = None
        if self.binary:
            decisions, rules = policy.decide(self.policy, scores, raw)
        contributions = self.contributions(x) if explain else None
        return Scored(np.asarray(scores), decisions, rules, contributions)

    def contributions(self, x: np.ndarray) -> list[dict]:
        """Per-feature contributions to the margin (XGBoost's SHAP values), with the bias."""
        import xgboost as xgb

        matrix = xgb.DMatrix(x, feature_names=self.features, feature_types=self.booster.feature_types,
                             enable_categorical=True)  # fmt: skip
        values = self.booster.predict(matrix, pred_contribs=True, iteration_range=self.iteration_range)
        return [{**{f: round(float(v), 6) for f, v in zip(self.features, row[:-1])}, "bias": float(row[-1])}
                for row in values]  # fmt: skip


def as_json(scored: Scored) -> list[list]:
    if scored.decisions is None:
        return scored.scores.tolist() if scored.scores.ndim == 2 else [[float(s)] for s in scored.scores]
    return [[float(s), str(d)] for s, d in zip(scored.scores, scored.decisions)]
