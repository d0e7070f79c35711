"""The decision policy: data shipped with a model (decision_policy.json), applied to a batch of scores.

Rules come first, in order, first match wins; rows no rule matches are decided by the threshold. numpy only:
it runs on the serving hot path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import numpy as np

_OPS = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


def version(policy: Mapping) -> str:
    """A short content hash: the policy version reported with every response."""
    canonical = json.dumps(policy, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:12]


def _holds(condition: Mapping, scores: np.ndarray, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    values = scores if condition["field"] == "score" else np.asarray(columns[condition["field"]])
    op, target = condition["op"], condition["value"]
    if op in ("in", "not_in"):
        inside = np.isin(values, np.asarray(target, dtype=values.dtype if values.dtype != object else object))
        return inside if op == "in" else ~inside
    with np.errstate(invalid="ignore"):  # NaN compares False: a missing value never satisfies a rule
        return _OPS[op](values, target)


def decide(policy: Mapping, scores: np.ndarray, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Decisions and the rule that made each one ("" for the threshold)."""
    scores = np.asarray(scores, dtype=float)
    decisions = np.where(scores >= policy["threshold"], policy["above"], policy["below"]).astype(object)
    rule_names = np.full(len(scores), "", dtype=object)
    undecided = np.ones(len(scores), dtype=bool)
    for rule in policy.get("rules", []):
        match = undecided.copy()
        for condition in rule["when"]:
            match &= _holds(condition, scores, columns)
        decisions[match] = rule["decision"]
        rule_names[match] = rule["name"]
        undecided &= ~match
    return decisions, rule_names
