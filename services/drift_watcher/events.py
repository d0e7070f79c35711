"""Seldon's request-logger CloudEvents (HTTP binary mode) turned into plain records.

A request event carries the features a client sent, a response event the scores, decisions and the model version
(``meta.tags.model_version``), a feedback event the truth. Events of one request share ``Ce-Requestid`` (the puid);
``Ce-Endpoint`` names the predictor. Each record is a JSON-able dict, because records are what the journal keeps.
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime

from ctloop.errors import BadInputError

REQUEST = "io.seldon.serving.inference.request"
RESPONSE = "io.seldon.serving.inference.response"
FEEDBACK = "io.seldon.serving.feedback"
KINDS = {REQUEST: "request", RESPONSE: "response", FEEDBACK: "feedback"}
REQUIRED_HEADERS = ("ce-id", "ce-type", "ce-requestid")


def _event_time(value: str | None, received: float) -> float:
    if not value:
        return received
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise BadInputError(f"Ce-Time: not an RFC 3339 time: {value!r}") from None


def _rows(payload: dict) -> tuple[list[str] | None, list[list]]:
    """Named rows of a SeldonMessage: data.names + data.ndarray, or jsonData (one object or a list)."""
    if "jsonData" in payload:
        records = payload["jsonData"]
        records = [records] if isinstance(records, dict) else records
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise BadInputError("jsonData: must be an object of named features or a list of them")
        names = list(records[0]) if records else []
        return names, [[r.get(n) for n in names] for r in records]
    data = payload.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("ndarray"), list):
        raise BadInputError("data.ndarray: missing; the watcher reads data.names + data.ndarray or jsonData")
    rows = data["ndarray"]
    if rows and not isinstance(rows[0], list):
        rows = [rows]
    return data.get("names"), rows


def _finite(value):
    """JSON cannot carry NaN; features that are not finite numbers are kept as missing."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def parse(headers, body: bytes, received: float | None = None) -> dict:
    """One CloudEvent (headers case-insensitive) -> a record; BadInputError names what is wrong."""
    received = time.time() if received is None else received
    lower = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in REQUIRED_HEADERS if not lower.get(h)]
    if missing:
        raise BadInputError(f"missing CloudEvent headers: {', '.join(h.title() for h in missing)}")
    kind = KINDS.get(lower["ce-type"])
    if kind is None:
        raise BadInputError(f"Ce-Type: {lower['ce-type']!r} is not one of {', '.join(KINDS)}")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInputError(f"body: not JSON ({e})") from None
    if not isinstance(payload, dict):
        raise BadInputError("body: must be a JSON object (a SeldonMessage)")
    record = {
        "kind": kind,
        "id": lower["ce-id"],
        "puid": lower["ce-requestid"],
        "deployment": lower.get("ce-inferenceservicename", ""),
        "namespace": lower.get("ce-namespace", ""),
        "predictor": lower.get("ce-endpoint", ""),
        "time": _event_time(lower.get("ce-time"), received),
        "received": received,
    }
    if kind == "request":
        names, rows = _rows(payload)
        if not names:
            raise BadInputError("data.names: the watcher needs named features")
        if any(not isinstance(r, list) or len(r) != len(names) for r in rows):
            raise BadInputError("data.ndarray: every row needs one value per name")
        record["rows"] = [dict(zip(names, map(_finite, row))) for row in rows]
    elif kind == "response":
        names, rows = _rows(payload)
        names = names or ["score"]
        tags = (payload.get("meta") or {}).get("tags") or {}
        record["model_version"] = str(tags.get("model_version", ""))
        try:
            if "score" in names:
                i = names.index("score")
                record["scores"] = [float(r[i]) for r in rows]
            else:  # multiclass: one probability per class
                record["scores"] = [max(float(v) for v in r) for r in rows]
                record["classes"] = [max(range(len(r)), key=lambda j: float(r[j])) for r in rows]
            if "decision" in names:
                record["decisions"] = [str(r[names.index("decision")]) for r in rows]
        except (TypeError, ValueError, IndexError) as e:
            raise BadInputError(f"data.ndarray: not the model server's answer ({e})") from None
    else:
        truth = ((payload.get("truth") or {}).get("data") or {}).get("ndarray")
        if not isinstance(truth, list) or not truth:
            raise BadInputError("truth.data.ndarray: feedback without the truth")
        try:
            record["truths"] = [float(t[0] if isinstance(t, list) else t) for t in truth]
        except (TypeError, ValueError, IndexError) as e:
            raise BadInputError(f"truth.data.ndarray: not numbers ({e})") from None
    return record
