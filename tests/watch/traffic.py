"""Seldon request-logger traffic for the watcher's tests and benchmark: demo rows turned into the CloudEvents the
gateway (or Seldon's executor) posts, with a stand-in score so that no model is needed."""

from __future__ import annotations

import json
import math

import pandas as pd

from ctloop import config
from ctloop.contracts import cloudevents
from ctloop.local import demo_data

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
SETTINGS = config.load(ROOT / "ctloop.yaml")
FEATURES = [f.name for f in SETTINGS.features]


def score(row: dict) -> float:
    """A fixed, smooth function of a few features, standing in for the model."""
    z = 3.0 * (row["utilization"] or 0) + 2.0 * (row["debt_to_income"] or 0) - 2.5
    return 1.0 / (1.0 + math.exp(-z))


def rows(n: int, seed: int, drift: str | None = None) -> list[dict]:
    frame, _ = demo_data.generate(max(n, 1000), seed, drift=drift)
    frame = frame.head(n)
    out = []
    for record, label in zip(frame[FEATURES].to_dict("records"), frame[SETTINGS.data.label]):
        record = {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}
        out.append({"features": record, "label": int(label)})
    return out


def reference(n: int, seed: int) -> pd.DataFrame:
    """What the train component registers as the reference sample: training rows with their scores."""
    frame = pd.DataFrame([r["features"] for r in rows(n, seed)])
    frame["score"] = [score(r) for r in frame.to_dict("records")]
    return frame


def _headers(kind: str, puid: str, predictor: str) -> dict[str, str]:
    """The headers the gateway's request logger sends (the gateway's own function)."""
    return cloudevents.headers(kind, puid, "credit-risk", "ctloop", predictor, "model")


def request_event(puid: str, features: dict, predictor: str = "main") -> tuple[dict, bytes]:
    body = {"data": {"names": list(features), "ndarray": [list(features.values())]}}
    return _headers("io.seldon.serving.inference.request", puid, predictor), json.dumps(body).encode()


def response_event(puid: str, features: dict, version: str, predictor: str = "main", shift: float = 0.0):
    s = min(max(score(features) + shift, 0.0), 1.0)
    decision = "decline" if s >= SETTINGS.model.policy.threshold else "approve"
    body = {
        "data": {"names": ["score", "decision"], "ndarray": [[s, decision]]},
        "meta": {"tags": {"model_version": version, "policy_version": "p1"}},
    }
    return _headers("io.seldon.serving.inference.response", puid, predictor), json.dumps(body).encode()


def feedback_event(puid: str, label: int, predictor: str = "main") -> tuple[dict, bytes]:
    body = {"truth": {"data": {"ndarray": [[label]]}}, "reward": 1}
    return _headers("io.seldon.serving.feedback", puid, predictor), json.dumps(body).encode()


def events_for(row: dict, puid: str, version: str, feedback: bool = True) -> list[tuple[dict, bytes]]:
    out = [request_event(puid, row["features"]), response_event(puid, row["features"], version)]
    if feedback:
        out.append(feedback_event(puid, row["label"]))
    return out
