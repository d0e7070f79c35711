"""Seldon's request logger: CloudEvents 1.0 in HTTP binary mode, as Seldon's executor posts them to the logger URL
of each predictor (``seldon.logger_url``), and as the drift watcher reads them.

One event per request, answer and feedback, each with a new ``Ce-Id``; the request's puid as ``Ce-Requestid`` (the
events of one request share it); the predictor as ``Ce-Endpoint`` (main, canary, shadow); the deployment as
``Ce-Inferenceservicename``. Delivered at most once: a reader deduplicates on ``Ce-Id`` and tolerates gaps.
The local gateway sends them with ``headers``; the watcher turns each into a plain record with ``parse`` (a
JSON-able dict, because records are what its journal keeps).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from datetime import UTC, datetime

from ctloop.contracts import seldon_message
from ctloop.errors import BadInputError

__all__ = ["FEEDBACK", "KINDS", "REQUEST", "RESPONSE", "headers", "parse"]

REQUEST = "io.seldon.serving.inference.request"
RESPONSE = "io.seldon.serving.inference.response"
FEEDBACK = "io.seldon.serving.feedback"
KINDS = {REQUEST: "request", RESPONSE: "response", FEEDBACK: "feedback"}
REQUIRED_HEADERS = ("ce-id", "ce-type", "ce-requestid")


def headers(kind: str, puid: str, deployment: str, namespace: str, predictor: str, model: str) -> dict[str, str]:
    return {
        "Ce-Specversion": "1.0",
        "Ce-Id": str(uuid.uuid4()),
        "Ce-Type": kind,
        "Ce-Source": f"http://ctloop-gateway/{namespace}/{deployment}/{predictor}/",
        "Ce-Time": datetime.now(UTC).isoformat(),
        "Ce-Modelid": model,
        "Ce-Requestid": puid,
        "Ce-Inferenceservicename": deployment,
        "Ce-Namespace": namespace,
        "Ce-Endpoint": predictor,
        "Ce-Protocol": "seldon",
        "Content-Type": "application/json",
    }


def _event_time(value: str | None, received: float) -> float:
    if not value:
        return received
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise BadInputError(f"Ce-Time: not an RFC 3339 time: {value!r}") from None


def _finite(value):
    """A feature as the watcher keeps it: a string, or a number a float can hold. Anything else (NaN, infinities,
    integers beyond a float, lists, objects: what the executor logs before the model refuses it) is missing."""
    if isinstance(value, str) or value is None:
        return value
    if not isinstance(value, int | float):
        return None
    try:
        return value if math.isfinite(float(value)) else None
    except OverflowError:
        return None


def parse(event_headers, body: bytes, received: float | None = None) -> dict:
    """One CloudEvent (headers case-insensitive) -> a record; BadInputError names what is wrong."""
    received = time.time() if received is None else received
    lower = {k.lower(): v for k, v in event_headers.items()}
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
    except RecursionError:
        raise BadInputError("body: nested too deeply") from None
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
        names, found = seldon_message.rows(payload)
        if not names or not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadInputError("data.names: the watcher needs named features (a list of strings)")
        if any(not isinstance(r, list) or len(r) != len(names) for r in found):
            raise BadInputError("data.ndarray: every row needs one value per name")
        record["rows"] = [dict(zip(names, map(_finite, row))) for row in found]
    elif kind == "response":
        record.update(seldon_message.answer(payload))
    else:
        record["truths"] = seldon_message.truths(payload)
    return record
