"""Seldon's request logger, as the executor does it: CloudEvents 1.0 in HTTP binary mode, a new Ce-Id per event,
the request's puid as Ce-Requestid, the predictor as Ce-Endpoint; delivered at most once (errors are logged)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import httpx

log = logging.getLogger(__name__)

REQUEST = "io.seldon.serving.inference.request"
RESPONSE = "io.seldon.serving.inference.response"
FEEDBACK = "io.seldon.serving.feedback"


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


async def send(client: httpx.AsyncClient, url: str, body: bytes, event_headers: dict[str, str]) -> None:
    try:
        await client.post(url, content=body, headers=event_headers, timeout=5.0)
    except httpx.HTTPError as e:  # at most once, as Seldon's logger: the watcher tolerates gaps
        log.warning("request logger %s: %s", url, e)
