"""Seldon's message format as ctloop's model server speaks it, and as everything that reads its traffic parses it.

A request carries named rows: ``data.names`` with ``data.ndarray`` (one row may be sent flat), or ``jsonData``
(one object of named features, or a list of them). An answer carries ``data.names`` ``["score", "decision"]``
(``["score"]`` without a decision policy, one column per class for multiclass) and, in ``meta.tags``, the model
version that answered. Feedback carries the truth in ``truth.data.ndarray``, one per row, and the answer it is
about in ``response``.

The model server parses requests and feedback with these functions; the drift watcher parses the same messages
from the request logger's CloudEvents, so both refuse the same inputs with the same words.
"""

from __future__ import annotations

import math

from ctloop.errors import BadInputError

__all__ = ["DECISION", "MAX_BYTES", "MODEL_VERSION_TAG", "POLICY_VERSION_TAG", "SCORE", "answer", "rows", "truths"]

SCORE, DECISION = "score", "decision"
# The largest message the model server and the local gateway read (about 16,000 rows of the demo's 14 features);
# larger is a 413 before the body is read, so that no client makes a worker hold more.
MAX_BYTES = 16 * 1024 * 1024
MODEL_VERSION_TAG, POLICY_VERSION_TAG = "model_version", "policy_version"


def rows(payload) -> tuple[list | None, list]:
    """The names and rows of a request; BadInputError names the field that is wrong."""
    if not isinstance(payload, dict):
        raise BadInputError("the request must be a JSON object (a SeldonMessage)")
    if "jsonData" in payload:
        records = payload["jsonData"]
        records = [records] if isinstance(records, dict) else records
        if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
            raise BadInputError("jsonData must be an object of named features, or a list of such objects")
        names = list(records[0])
        for i, record in enumerate(records):
            if set(record) != set(names):
                raise BadInputError(f"jsonData row {i} names other features than row 0")
        return names, [[record[n] for n in names] for record in records]
    data = payload.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("ndarray"), list):
        raise BadInputError("data.ndarray: missing; send data.names with data.ndarray, or jsonData with named features")
    found = data["ndarray"]
    if found and not isinstance(found[0], list):
        found = [found]  # one row sent flat
    return data.get("names"), found


def tags(payload: dict) -> dict:
    """``meta.tags`` of a message ({} when absent); any other shape is a BadInputError naming the field."""
    meta = payload.get("meta")
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise BadInputError(f"meta: expected an object, got {type(meta).__name__}")
    found = meta.get("tags")
    if found is None:
        return {}
    if not isinstance(found, dict):
        raise BadInputError(f"meta.tags: expected an object, got {type(found).__name__}")
    return found


def answer(payload) -> dict:
    """An answer's model version, scores (the positive class's, or the top class's for multiclass) and, where
    present, decisions and classes."""
    if not isinstance(payload, dict):
        raise BadInputError("the answer must be a JSON object (a SeldonMessage)")
    names, found = rows(payload)
    names = names or [SCORE]
    out = {MODEL_VERSION_TAG: str(tags(payload).get(MODEL_VERSION_TAG, ""))}
    try:
        if SCORE in names:
            out["scores"] = [float(r[names.index(SCORE)]) for r in found]
        else:  # multiclass: one probability per class
            out["scores"] = [max(float(v) for v in r) for r in found]
            out["classes"] = [max(range(len(r)), key=lambda j: float(r[j])) for r in found]
        if DECISION in names:
            out["decisions"] = [str(r[names.index(DECISION)]) for r in found]
    except (TypeError, ValueError, IndexError, OverflowError) as e:
        raise BadInputError(f"data.ndarray: not the model server's answer ({e})") from None
    if not all(math.isfinite(s) for s in out["scores"]):  # one NaN would make a histogram's sum NaN for good
        raise BadInputError("data.ndarray: a score that is NaN or infinite")
    return out


def truths(feedback) -> list[float]:
    """The labels of a feedback message, one per answered row; NaN and infinities are no labels."""
    truth = ((feedback.get("truth") or {}).get("data") or {}).get("ndarray") if isinstance(feedback, dict) else None
    if not isinstance(truth, list) or not truth:
        raise BadInputError("truth.data.ndarray: feedback without the truth")
    try:
        values = [float(t[0] if isinstance(t, list) else t) for t in truth]
    except (TypeError, ValueError, IndexError, OverflowError) as e:
        raise BadInputError(f"truth.data.ndarray: not numbers ({e})") from None
    if not all(math.isfinite(v) for v in values):
        raise BadInputError("truth.data.ndarray: NaN and infinity are not labels")
    return values
